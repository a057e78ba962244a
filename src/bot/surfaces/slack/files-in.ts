import { Readable } from 'node:stream';
import {
  type FileLimits,
  fileRefusal,
  type IncomingFile,
  inputExtensions,
  type RefusedFile,
  tooLarge,
} from '../../incoming-file.ts';

/** A file as Slack describes it in events and message payloads. */
export interface SlackFile {
  id?: string;
  name?: string;
  title?: string;
  size?: number;
  mimetype?: string;
  url_private_download?: string;
  url_private?: string;
  mode?: string;
}

/** Input types the sandbox tools can read (the list every surface accepts). */
export const defaultInputExtensions = inputExtensions;

/**
 * Downloads the files shared with a request, with the bot token, into streams for the
 * gateway. The token is only ever sent to Slack's file host or the configured API host.
 * Files over the limits, of other types, or that fail to download are returned as
 * refused with the reason, for the thread.
 */
export async function downloadSlackFiles(
  files: readonly SlackFile[],
  options: { token: string; limits: FileLimits; allowedHosts: readonly string[]; timeoutMs?: number },
): Promise<{ accepted: IncomingFile[]; refused: RefusedFile[] }> {
  const accepted: IncomingFile[] = [];
  const refused: RefusedFile[] = [];
  const { limits } = options;
  for (const f of files) {
    const name = (f.name ?? f.title ?? 'file').trim();
    const refusal = fileRefusal(name, typeof f.size === 'number' ? f.size : undefined, accepted.length, limits);
    if (refusal) {
      refused.push({ name: name.slice(0, 80), reason: refusal });
      continue;
    }
    const url = f.url_private_download ?? f.url_private;
    if (!url) {
      refused.push({ name, reason: 'Slack did not share its contents with the bot (is the bot in this channel?)' });
      continue;
    }
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      refused.push({ name, reason: 'its download link is not valid' });
      continue;
    }
    if (!options.allowedHosts.includes(target.host)) {
      refused.push({ name, reason: 'its download link does not point at Slack' });
      continue;
    }
    try {
      const res = await fetch(target, {
        headers: { authorization: `Bearer ${options.token}` },
        signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
      });
      const type = res.headers.get('content-type') ?? '';
      // Slack answers a missing files:read scope with its HTML login page, not a 403.
      if (!res.ok || !res.body || type.startsWith('text/html')) {
        await res.body?.cancel().catch(() => undefined);
        refused.push({
          name,
          reason: res.ok
            ? 'Slack did not return the file (check the files:read scope)'
            : `download failed (HTTP ${res.status})`,
        });
        continue;
      }
      const size = Number(res.headers.get('content-length') ?? f.size ?? 0);
      if (size > limits.maxBytes) {
        await res.body.cancel().catch(() => undefined);
        refused.push({
          name,
          reason: tooLarge(limits.maxBytes),
        });
        continue;
      }
      accepted.push({
        name,
        size: Number.isFinite(size) ? size : 0,
        body: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
      });
    } catch (err) {
      refused.push({
        name,
        reason: `download failed (${(err as Error).name === 'TimeoutError' ? 'timed out' : 'network error'})`,
      });
    }
  }
  return { accepted, refused };
}
