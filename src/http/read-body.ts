/**
 * Reads a request body with a size limit, without materializing more than the limit.
 *
 * With a Content-Length header (the common case) the length is checked before anything is read,
 * and the body is read in one call (which `@hono/node-server` serves straight from the socket,
 * without building a web `Request` stream). Without one (chunked uploads) the stream is read chunk
 * by chunk and abandoned as soon as it passes the limit.
 *
 * @module
 */

/** Oversized bodies up to this size are read and dropped before the 413; larger ones are not read. */
const DRAIN_LIMIT = 64 * 1024 * 1024;

async function drain(body: ReadableStream<Uint8Array>): Promise<void> {
  const reader = body.getReader();
  try {
    for (;;) if ((await reader.read()).done) return;
  } catch {
    // the client went away: nothing to drain
  }
}

/** The body could not be read whole: the client closed the connection early, or sent a broken body. */
export class BodyReadError extends Error {
  constructor(override readonly cause: unknown) {
    super(`the request body could not be read: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = "BodyReadError";
  }
}

/**
 * The body's bytes, or `undefined` when it is larger than `limit` bytes.
 *
 * @throws BodyReadError when the body ends before its Content-Length or cannot be read.
 *
 * @example
 * ```ts
 * const req = new Request("http://localhost/", { method: "POST", body: "{}" });
 * const bytes = await readBody(req, 4 * 1024 * 1024); // undefined: larger than 4 MiB, answer 413
 * ```
 */
export async function readBody(req: Request, limit: number): Promise<Uint8Array | undefined> {
  try {
    return await readWhole(req, limit);
  } catch (err) {
    throw new BodyReadError(err);
  }
}

async function readWhole(req: Request, limit: number): Promise<Uint8Array | undefined> {
  const length = req.headers.get("content-length");
  if (length !== null && !req.headers.has("transfer-encoding")) {
    const n = Number(length);
    if (!(n <= limit)) {
      // Read and drop a moderately oversized body before answering 413: many clients (Python's
      // urllib, for one) send the whole body before they read the answer, and would see a broken
      // pipe instead of the 413 if the connection closed under them.
      if (n <= DRAIN_LIMIT && req.body !== null) await drain(req.body);
      return undefined;
    }
    return new Uint8Array(await req.arrayBuffer());
  }
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
