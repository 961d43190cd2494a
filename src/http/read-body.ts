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

/**
 * The body's bytes, or `undefined` when it is larger than `limit` bytes.
 *
 * @example
 * ```ts
 * const bytes = await readBody(c.req.raw, 4 * 1024 * 1024);
 * if (bytes === undefined) return tooLarge();
 * ```
 */
export async function readBody(req: Request, limit: number): Promise<Uint8Array | undefined> {
  const length = req.headers.get("content-length");
  if (length !== null && !req.headers.has("transfer-encoding")) {
    const n = Number(length);
    if (!(n <= limit)) return undefined;
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
