/**
 * The reading the exec wrapper appends to stderr:
 * `\x1ehandoff-oom <nonce> <before> <after> <rc> [<crc> <bytes>]\n`, where before/after are the
 * cgroup's `oom_kill` counter around the command (empty when the kernel has none), `<rc>` the
 * command's exit status (the wrapper exits with it too, so the engine need not be asked), and
 * `<crc> <bytes>` is the `cksum` of a listing of /workspace/out (size, mtime, path of each entry)
 * taken after the command: the same fingerprint twice means no output changed in between.
 * OomTrailer sits between the exec's stderr and everything that sees it: it
 * passes every byte through except the first line carrying this exec's nonce, which it parses
 * and strips. A command cannot forge that line (it never learns the nonce) and cannot remove it
 * (the wrapper writes it after the command's whole process group is dead); a look-alike with any
 * other nonce is ordinary output.
 */
export interface OomReading {
  /** `oom_kill` before the command; undefined when the cgroup does not expose the counter. */
  before: number | undefined;
  /** `oom_kill` after the command's process group was killed. */
  after: number | undefined;
  /** The command's exit status, which is the wrapper's own. */
  exitCode: number;
  /** Fingerprint of /workspace/out after the command; undefined when the wrapper sent none. */
  outputs?: string;
}

/** Longest a well-formed reading can be after the nonce: two counters, a status, a fingerprint, spaces, a newline. */
const MAX_READING_BYTES = 96;

export class OomTrailer {
  readonly #marker: Buffer;
  #held: Buffer = Buffer.alloc(0);
  /** searching: looking for the marker; reading: marker seen, waiting for its newline; done. */
  #state: 'searching' | 'reading' | 'done' = 'searching';
  #reading: OomReading | undefined;

  /** `nonce` MUST be fresh and random per exec, and reach the wrapper only through stdin. */
  constructor(nonce: string) {
    if (!/^[0-9a-f]{16,}$/.test(nonce)) throw new Error('OomTrailer needs a random hex nonce');
    this.#marker = Buffer.from(`\x1ehandoff-oom ${nonce} `, 'latin1');
  }

  /** The wrapper's reading, once its line has passed through; undefined if it never came. */
  get reading(): OomReading | undefined {
    return this.#reading;
  }

  /** Takes the next chunk of stderr; returns the bytes that are plain output (may be empty). */
  push(chunk: Buffer): Buffer {
    if (this.#state === 'done') return chunk;
    const data = this.#held.length > 0 ? Buffer.concat([this.#held, chunk]) : chunk;
    if (this.#state === 'searching') {
      const at = data.indexOf(this.#marker);
      if (at < 0) {
        // Hold back only a tail that could be the start of the marker, so live output is not delayed.
        const keep = this.#partialMarkerAtEnd(data);
        this.#held = Buffer.from(data.subarray(data.length - keep));
        return data.subarray(0, data.length - keep);
      }
      this.#state = 'reading';
      this.#held = Buffer.alloc(0);
      return Buffer.concat([data.subarray(0, at), this.push(data.subarray(at))]);
    }
    // reading: data starts with the marker.
    const newline = data.indexOf(0x0a, this.#marker.length);
    if (newline < 0) {
      if (data.length - this.#marker.length <= MAX_READING_BYTES) {
        this.#held = Buffer.from(data);
        return Buffer.alloc(0);
      }
      this.#state = 'done';
      this.#held = Buffer.alloc(0);
      return data;
    }
    this.#state = 'done';
    this.#held = Buffer.alloc(0);
    const m = /^(\d*) (\d*) (\d{1,3})(?: (\d+ \d+)| )?$/.exec(
      data.subarray(this.#marker.length, newline).toString('latin1'),
    );
    if (!m) return data;
    const count = (s: string | undefined) => (s ? Number(s) : undefined);
    this.#reading = {
      before: count(m[1]),
      after: count(m[2]),
      exitCode: Number(m[3]),
      ...(m[4] ? { outputs: m[4] } : {}),
    };
    return data.subarray(newline + 1);
  }

  /** At the end of the stream: whatever was held back is plain output after all. */
  end(): Buffer {
    const rest = this.#held;
    this.#held = Buffer.alloc(0);
    this.#state = 'done';
    return rest;
  }

  #partialMarkerAtEnd(data: Buffer): number {
    for (let k = Math.min(this.#marker.length - 1, data.length); k > 0; k--) {
      if (data.subarray(data.length - k).equals(this.#marker.subarray(0, k))) return k;
    }
    return 0;
  }
}
