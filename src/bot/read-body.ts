/**
 * Request bodies read with a bound. Content-Length is only a hint (a chunked body has
 * none), so the bytes are counted as they arrive and reading stops at the limit.
 */

/**
 * The answer to a body past its limit. `connection: close` makes Node close the socket once
 * the answer is written, so the rest of the body is never read.
 */
export function payloadTooLarge(message: string, json = false): Response {
  const headers = { connection: 'close', 'content-type': json ? 'application/json' : 'text/plain; charset=utf-8' };
  return new Response(json ? JSON.stringify({ error: message }) : message, { status: 413, headers });
}

/** True when the declared Content-Length is already over `maxBytes`. */
export function declaredOver(req: Request, maxBytes: number): boolean {
  const length = req.headers.get('content-length');
  return length !== null && Number(length) > maxBytes;
}

/**
 * The whole body when it is at most `maxBytes`, else undefined as soon as the count passes
 * the limit. The stream is left unread rather than cancelled: cancelling would destroy the
 * socket before the 413 could be sent.
 */
export async function readBodyWithin(req: Request, maxBytes: number): Promise<Buffer | undefined> {
  if (declaredOver(req, maxBytes)) return undefined;
  if (!req.body) return Buffer.alloc(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      reader.releaseLock();
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}

/**
 * The same bound read, straight from Node's request when the server gives it (`c.env.incoming`
 * under @hono/node-server): no web stream is built for a small JSON body. Falls back to
 * `readBodyWithin` on other servers.
 */
export async function readRequestWithin(req: Request, env: unknown, maxBytes: number): Promise<Buffer | undefined> {
  const incoming = (env as { incoming?: import('node:http').IncomingMessage } | undefined)?.incoming;
  if (!incoming || typeof incoming.on !== 'function' || incoming.readableDidRead) return readBodyWithin(req, maxBytes);
  if (declaredOver(req, maxBytes)) return undefined;
  return new Promise<Buffer | undefined>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (value: Buffer | undefined) => {
      incoming.off('data', onData).off('end', onEnd).off('error', onError);
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      // Left unread, as above (not destroyed): the 413 goes out, then the connection closes.
      if (size > maxBytes) {
        incoming.pause();
        done(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => done(Buffer.concat(chunks, size));
    const onError = (err: Error) => {
      incoming.off('data', onData).off('end', onEnd).off('error', onError);
      reject(err);
    };
    incoming.on('data', onData).on('end', onEnd).on('error', onError);
  });
}
