/**
 * The runtime adapter: the only file that knows whether it runs on Node.js or Deno.
 * Node: `@hono/node-server`. Deno: `Deno.serve`. Both stop gracefully: stop accepting, let
 * in-flight requests finish, then resolve `close()`.
 *
 * @module
 */

import { Buffer } from "node:buffer";

/** A listening server. */
export interface RunningServer {
  /** The port actually bound (useful with port 0). */
  port: number;
  /** Stops accepting connections and resolves once in-flight requests have been answered. */
  close(): Promise<void>;
}

/** The fetch handler a server calls for each request (Hono's `app.fetch`). */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

interface DenoLike {
  serve(
    options: { hostname: string; port: number; onListen?: (addr: { port: number }) => void },
    handler: FetchHandler,
  ): { finished: Promise<void>; shutdown(): Promise<void>; addr: { port: number } };
  addSignalListener(signal: string, handler: () => void): void;
  exit(code: number): never;
}

/** The Deno namespace when running on Deno, else undefined. */
export function deno(): DenoLike | undefined {
  return (globalThis as { Deno?: DenoLike }).Deno;
}

/** "deno" or "node". */
export function runtimeName(): "deno" | "node" {
  return deno() ? "deno" : "node";
}

/**
 * Serves `fetch` on `hostname:port` with the runtime's fastest server.
 *
 * @example
 * ```ts
 * const server = await serve(() => new Response("ok"), { hostname: "127.0.0.1", port: 0 });
 * console.log(server.port);
 * await server.close();
 * ```
 */
export async function serve(fetch: FetchHandler, opts: { hostname: string; port: number }): Promise<RunningServer> {
  const d = deno();
  if (d) {
    let bound = opts.port;
    let listening!: () => void;
    const ready = new Promise<void>((resolve) => (listening = resolve));
    const server = d.serve({
      hostname: opts.hostname,
      port: opts.port,
      onListen: (addr) => {
        bound = addr.port;
        listening();
      },
    }, fetch);
    await ready;
    return { port: bound, close: () => server.shutdown() };
  }
  const { serve: nodeServe } = await import("@hono/node-server");
  return await new Promise<RunningServer>((resolve, reject) => {
    const server = nodeServe({ fetch, hostname: opts.hostname, port: opts.port }, (info) => {
      resolve({
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            const s = server as import("node:http").Server;
            s.close(() => done());
            s.closeIdleConnections?.();
            // Connections that stay busy get a grace period, then are cut.
            const t = setTimeout(() => s.closeAllConnections?.(), 10_000);
            (t as { unref?: () => void }).unref?.();
          }),
      });
    });
    (server as import("node:http").Server).once("error", reject);
    (server as import("node:http").Server).on("clientError", answerClientError);
  });
}

/**
 * Node's HTTP parser rejects some requests before any handler runs (a malformed request line,
 * headers over its limit); answer those with problem JSON too, then close the connection.
 */
function answerClientError(err: Error & { code?: string }, socket: import("node:stream").Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
  const status = tooLarge ? 431 : 400;
  const title = tooLarge ? "Request Header Fields Too Large" : "Bad Request";
  const detail = tooLarge ? "The request line or headers are too large." : "The request is not valid HTTP.";
  const body = JSON.stringify({ type: "about:blank", title, status, detail });
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\ncontent-type: application/problem+json\r\ncontent-length: ${
      Buffer.byteLength(body)
    }\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * Calls `handler` once on the first SIGINT or SIGTERM.
 *
 * @example
 * ```ts
 * const server = await serve(() => new Response("ok"), { hostname: "127.0.0.1", port: 8000 });
 * onShutdownSignal(async (signal) => {
 *   console.log(`${signal}: stopping`);
 *   await server.close();
 * });
 * ```
 */
export function onShutdownSignal(handler: (signal: string) => void): void {
  let fired = false;
  const once = (signal: string) => {
    if (fired) return;
    fired = true;
    handler(signal);
  };
  const d = deno();
  if (d) {
    d.addSignalListener("SIGINT", () => once("SIGINT"));
    d.addSignalListener("SIGTERM", () => once("SIGTERM"));
    return;
  }
  process.on("SIGINT", () => once("SIGINT"));
  process.on("SIGTERM", () => once("SIGTERM"));
}

/**
 * Exits the process with `code`.
 *
 * @example
 * ```ts
 * exit(0);
 * ```
 */
export function exit(code: number): never {
  const d = deno();
  if (d) d.exit(code);
  process.exit(code);
}
