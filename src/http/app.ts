/**
 * The HTTP layer: a Hono app over an engine. It validates, maps engine errors to problem JSON, and
 * renders answers; all storage behaviour lives in the engine.
 *
 * @module
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Config } from "../config.ts";
import { Engine, OverloadedError, ShuttingDownError, WalWriteError } from "../engine.ts";
import type { Logger } from "../logger.ts";
import { problem, problemResponse } from "../problem.ts";
import type { BucketPoint } from "../query.ts";
import { parseQueryParams, parseReadingsBody } from "../validation.ts";

const ROUTE = "/metrics/heart-rate";
const ACCEPTED = JSON.stringify({ status: "accepted" });
const JSON_HEADERS = { "content-type": "application/json" };

/** What the app needs from the outside. `ready()` is false while the server starts or stops. */
export interface AppDeps {
  engine: Engine;
  config: Pick<Config, "maxBodyBytes">;
  log: Logger;
  ready?: () => boolean;
}

/**
 * Builds the pulsedb HTTP app.
 *
 * @example
 * ```ts
 * const app = createApp({ engine, config, log });
 * const res = await app.request("/health");
 * ```
 */
export function createApp(deps: AppDeps): Hono {
  const { engine, log } = deps;
  const metrics = engine.metrics;
  const app = new Hono();

  app.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    const route = c.req.routePath === "*" ? "other" : c.req.routePath;
    metrics.httpDuration.observe({ method: c.req.method, route, status: String(c.res.status) }, (performance.now() - started) / 1000);
    if (log.enabled("debug")) log.debug("request", { method: c.req.method, path: c.req.path, status: c.res.status, ms: +(performance.now() - started).toFixed(2) });
  });

  app.post(
    ROUTE,
    bodyLimit({
      maxSize: deps.config.maxBodyBytes,
      onError: () => {
        metrics.readingsRejected.inc({ reason: "too_large" });
        return problemResponse(problem(413, "Content Too Large", `The body is larger than ${deps.config.maxBodyBytes} bytes.`));
      },
    }),
    async (c) => {
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch {
        metrics.readingsRejected.inc({ reason: "malformed_json" });
        return problemResponse(problem(400, "Bad Request", "The body is not valid JSON.", [{ path: "", message: "malformed JSON" }]));
      }
      const parsed = parseReadingsBody(body);
      if (!parsed.ok) {
        metrics.readingsRejected.inc({ reason: parsed.status === 413 ? "batch_too_large" : "invalid" });
        return problemResponse(problem(parsed.status, parsed.title, parsed.detail, parsed.errors));
      }
      try {
        await engine.write(parsed.readings);
      } catch (err) {
        return writeFailure(err, c);
      }
      metrics.readingsAccepted.inc(parsed.readings.length);
      if (!parsed.batch) return new Response(ACCEPTED, { status: 200, headers: JSON_HEADERS });
      return c.json({ status: "accepted", count: parsed.readings.length });
    },
  );

  app.get(ROUTE, async (c) => {
    const parsed = parseQueryParams((name) => c.req.query(name));
    if (!parsed.ok) return problemResponse(problem(parsed.status, parsed.title, parsed.detail, parsed.errors));
    const q = parsed.value;
    const { body } = await engine.queryCached(q, (points) => render(q.userId, points));
    if (body === undefined) {
      const who = q.deviceId === undefined ? `user ${q.userId}` : `user ${q.userId} and device ${q.deviceId}`;
      return problemResponse(problem(404, "Not Found", `No readings for ${who} in [${c.req.query("start")}, ${c.req.query("end")}).`));
    }
    return new Response(body, { status: 200, headers: JSON_HEADERS });
  });

  app.all(ROUTE, (c) =>
    problemResponse(problem(405, "Method Not Allowed", `${c.req.method} is not supported on ${ROUTE}; use GET or POST.`), { allow: "GET, POST" }),
  );

  app.get("/health", () => new Response('{"status":"ok"}', { status: 200, headers: JSON_HEADERS }));

  app.get("/ready", () => {
    const ready = deps.ready ? deps.ready() : true;
    return ready
      ? new Response('{"status":"ready"}', { status: 200, headers: JSON_HEADERS })
      : problemResponse(problem(503, "Service Unavailable", "pulsedb is starting or stopping."), { "retry-after": "1" });
  });

  app.get("/metrics", async () => {
    engine.refreshGauges();
    return new Response(await metrics.registry.metrics(), { status: 200, headers: { "content-type": metrics.registry.contentType } });
  });

  app.notFound((c) => problemResponse(problem(404, "Not Found", `No route for ${c.req.method} ${c.req.path}.`)));

  app.onError((err, c) => {
    log.error("unhandled error", { err, method: c.req.method, path: c.req.path });
    return problemResponse(problem(500, "Internal Server Error", "An unexpected error occurred; it has been logged."));
  });

  return app;
}

function writeFailure(err: unknown, c: Context): Response {
  if (err instanceof OverloadedError) {
    return problemResponse(problem(503, "Service Unavailable", "Writes are arriving faster than they can be flushed; retry shortly. Nothing of this request was stored."), {
      "retry-after": String(err.retryAfterSec),
    });
  }
  if (err instanceof ShuttingDownError) {
    return problemResponse(problem(503, "Service Unavailable", "pulsedb is shutting down; retry against the restarted server."), { "retry-after": "1" });
  }
  if (err instanceof WalWriteError) {
    return problemResponse(problem(503, "Service Unavailable", `The write-ahead log could not be written (${(err.cause as NodeJS.ErrnoException)?.code ?? "I/O error"}); the request was not acknowledged. Retry later.`), {
      "retry-after": "1",
    });
  }
  throw err;
}

/**
 * Renders a query answer as the contract's JSON body.
 *
 * @example
 * ```ts
 * render("u1", [{ timestamp: "2024-01-15T10:00:00Z", heart_rate: 75, device_id: "device_a" }]);
 * // '{"user_id":"u1","data":[...],"count":1}'
 * ```
 */
export function render(userId: string, points: BucketPoint[]): string {
  return JSON.stringify({ user_id: userId, data: points, count: points.length });
}
