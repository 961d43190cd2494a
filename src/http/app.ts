/**
 * The HTTP layer: a Hono app over an engine. It validates, maps engine errors to problem JSON, and
 * renders answers; all storage behaviour lives in the engine.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import type { Config } from "../ops/config.ts";
import {
  DamagedError,
  Engine,
  ExpiredError,
  OverloadedError,
  ShuttingDownError,
  TooLargeError,
  WalWriteError,
} from "../engine.ts";
import type { Logger } from "../ops/logger.ts";
import type { HttpRoute, Metrics } from "../ops/metrics.ts";
import { openApiJson } from "./openapi.ts";
import { type Problem, problem, problemResponse, VALIDATION_TITLE } from "./problem.ts";
import type { QueryResult } from "../query/query.ts";
import { parseDeleteParams, parseQueryParams, parseReadingsBody, type ParseResult } from "./validation.ts";
import { ARROW_STREAM_TYPE, parseArrowBody } from "./arrow-ingest.ts";
import { BodyReadError, readBody } from "./read-body.ts";
import { Gate } from "./gate.ts";
import { DASHBOARD_PATHS, dashboardRoutes } from "./dashboard.ts";
import type { AccessControl } from "./auth.ts";
import { tokenRoutes } from "./tokens.ts";

const ROUTE = "/metrics/heart-rate";
/** Bodies larger than this (or of unknown length) go through the large-body gate. */
const LARGE_BODY_BYTES = 64 * 1024;
/** Large bodies parsed and written at once. */
const LARGE_BODY_CONCURRENCY = 4;
/** Every route pattern; the `route` label of the request-duration histogram is one of these or `unmatched`. */
const ROUTES = [ROUTE, "/health", "/ready", "/metrics", "/openapi.json", ...DASHBOARD_PATHS];
const ACCEPTED = JSON.stringify({ status: "accepted" });
const DELETED = JSON.stringify({ status: "deleted" });
const JSON_HEADERS = { "content-type": "application/json" };
const STARTING = "pulsedb is starting (replaying the write-ahead log); retry shortly.";
const STOPPING = "pulsedb is shutting down.";

/**
 * What the app needs from the outside.
 *
 * - `engine`: an open engine, or a function that returns the engine once it is open (`undefined`
 *   while it opens: WAL replay can take a while, and the server listens meanwhile). Until then
 *   `/ready`, `/metrics` and the data routes answer 503 with `Retry-After: 1`; `/health` answers 200.
 *   With a function, `metrics` is required and must be the registry the engine is opened with.
 * - `opening`: with an engine function, the open in progress. A data request that arrives before
 *   the engine is open waits for it (at most `startupWaitMs`, default 30 s) instead of answering
 *   503, so that a client that saw `/health` answer 200 is served. Without it, data routes answer
 *   503 until the engine is open.
 * - `ready()`: false while the server shuts down (then `/ready` answers 503); default always true.
 * - `access`: access control (PULSE_AUTH=on): bearer tokens and the `/tokens` routes; absent, the app
 *   has neither (PULSE_AUTH=off).
 */
export type AppDeps = {
  config: Pick<Config, "maxBodyBytes">;
  log: Logger;
  ready?: () => boolean;
  opening?: Promise<unknown>;
  startupWaitMs?: number;
  access?: AccessControl;
} & ({ engine: Engine; metrics?: Metrics } | { engine: () => Engine | undefined; metrics: Metrics });

/** How long a data request that arrives during start-up waits for the engine to open. */
export const STARTUP_WAIT_MS = 30_000;

/**
 * Builds the pulsedb HTTP app.
 *
 * @example
 * ```ts
 * import { Engine } from "../engine.ts";
 * import { testConfig } from "../ops/config.ts";
 * import { silentLogger as log } from "../ops/logger.ts";
 * import { Metrics } from "../ops/metrics.ts";
 *
 * const config = testConfig({ dataDir: "/tmp/pulse" });
 * const engine = await Engine.open(config, log);
 * const app = createApp({ engine, config, log });
 * const res = await app.request("/health"); // 200
 * await engine.close();
 *
 * // Serving while the engine opens (data routes answer 503 until it is there):
 * const metrics = new Metrics();
 * let opened: Engine | undefined;
 * const app2 = createApp({ engine: () => opened, metrics, config, log });
 * opened = await Engine.open(config, log, metrics);
 * ```
 */
export function createApp(deps: AppDeps): Hono {
  const { log } = deps;
  const engineNow: () => Engine | undefined = typeof deps.engine === "function" ? deps.engine : constant(deps.engine);
  const metrics: Metrics = deps.metrics ?? (deps.engine as Engine).metrics;
  const app = new Hono();
  const startupWaitMs = deps.startupWaitMs ?? STARTUP_WAIT_MS;

  /** The open engine; during start-up, waits for the open (bounded), undefined if it does not come. */
  async function engineForData(): Promise<Engine | undefined> {
    const now = engineNow();
    if (now !== undefined || deps.opening === undefined) return now;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, startupWaitMs)));
    try {
      await Promise.race([deps.opening.catch(() => {}), gaveUp]);
    } finally {
      clearTimeout(timer);
    }
    return engineNow();
  }

  // Request durations: the route label comes from a fixed table (all routes are static paths), so
  // it is bounded and costs one Map lookup; observing allocates nothing. Requests are logged only
  // at debug level, decided once here.
  const timers = new Map<string, HttpRoute>(ROUTES.map((r) => [r, metrics.httpDuration.route(r)]));
  const unmatched = metrics.httpDuration.route("unmatched");
  const debug = log.enabled("debug");
  app.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    const ms = performance.now() - started;
    (timers.get(c.req.path) ?? unmatched).observe(c.req.method, c.res.status, ms / 1000);
    if (debug) {
      log.debug("request", {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(ms * 100) / 100,
      });
    }
  });

  // Access control (PULSE_AUTH=on): see auth.ts and tokens.ts. Off, nothing is mounted.
  const access = deps.access;
  if (access !== undefined) {
    app.use("*", access.middleware);
    app.route(
      "/tokens",
      tokenRoutes(access.store, {
        now: access.now,
        available: () => engineNow() !== undefined,
        maxBodyBytes: deps.config.maxBodyBytes,
      }),
    );
  }

  const decoder = new TextDecoder();
  // Large bodies (batches) are parsed and written a few at a time: see gate.ts.
  const largeBodies = new Gate(LARGE_BODY_CONCURRENCY);
  app.post(ROUTE, async (c) => {
    const engine = await engineForData();
    if (engine === undefined) {
      metrics.reject("unavailable");
      return unavailable(STARTING);
    }
    const length = c.req.header("content-length");
    const large = length === undefined || Number(length) > LARGE_BODY_BYTES;
    if (!large) return ingest(c, engine);
    await largeBodies.enter();
    try {
      return await ingest(c, engine);
    } finally {
      largeBodies.leave();
    }
  });

  async function ingest(c: Context, engine: Engine): Promise<Response> {
    const bytes = await readBody(c.req.raw, deps.config.maxBodyBytes);
    if (bytes === undefined) {
      metrics.reject("too_large");
      return problemResponse(
        problem(413, "Content Too Large", `The body is larger than ${deps.config.maxBodyBytes} bytes.`),
      );
    }
    let parsed: ParseResult;
    let count: number;
    if ((c.req.header("content-type") ?? "").startsWith(ARROW_STREAM_TYPE)) {
      parsed = parseArrowBody(bytes);
      count = parsed.ok ? parsed.readings.length : 1;
    } else {
      let body: unknown;
      try {
        body = JSON.parse(decoder.decode(bytes));
      } catch {
        metrics.reject("malformed_json");
        return problemResponse(
          problem(400, VALIDATION_TITLE, "The body is not valid JSON.", [{ path: "", message: "malformed JSON" }]),
        );
      }
      parsed = parseReadingsBody(body);
      count = Array.isArray(body) ? body.length : 1;
    }
    if (!parsed.ok) {
      metrics.reject(parsed.status === 413 ? "batch_too_large" : "invalid", count);
      return problemResponse(problem(parsed.status, parsed.title, parsed.detail, parsed.errors));
    }
    // Access control: every reading's user must be the token's, checked before anything is written.
    const denied = access?.checkReadings(c, parsed.readings);
    if (denied !== undefined) return denied;
    try {
      await engine.write(parsed.readings);
    } catch (err) {
      if (err instanceof ExpiredError) return expired(err, parsed.batch, parsed.readings.length, metrics);
      if (engine.isClosing() && !isKnownWriteError(err)) {
        // Shutting down: an unexpected failure is answered "not stored, retry" (a retry of a reading
        // that did reach the log rewrites the same identity with the same value), never a 500.
        log.error("write failed during shutdown", { err });
        return writeFailure(new ShuttingDownError(), metrics, parsed.readings.length);
      }
      return writeFailure(err, metrics, parsed.readings.length);
    }
    metrics.readingsAccepted.inc(parsed.readings.length);
    if (!parsed.batch) return new Response(ACCEPTED, { status: 200, headers: JSON_HEADERS });
    return c.json({ status: "accepted", count: parsed.readings.length });
  }

  app.get(ROUTE, async (c) => {
    const engine = await engineForData();
    if (engine === undefined) return unavailable(STARTING);
    const parsed = parseQueryParams((name) => c.req.query(name));
    if (!parsed.ok) return problemResponse(problem(parsed.status, parsed.title, parsed.detail, parsed.errors));
    const q = parsed.value;
    let body: string | undefined;
    try {
      ({ body } = await engine.queryCached(q, (result) => render(q.userId, result)));
    } catch (err) {
      if (err instanceof DamagedError) return unavailable(err.message);
      throw err;
    }
    if (body === undefined) {
      const who = q.deviceId === undefined ? `user ${q.userId}` : `user ${q.userId} and device ${q.deviceId}`;
      return problemResponse(
        problem(404, "Not Found", `No readings for ${who} in [${c.req.query("start")}, ${c.req.query("end")}).`),
      );
    }
    return new Response(body, { status: 200, headers: JSON_HEADERS });
  });

  // Right to erasure: answered once the tombstone is durable in the WAL; idempotent.
  app.delete(ROUTE, async (c) => {
    const engine = await engineForData();
    if (engine === undefined) return unavailable(STARTING);
    const parsed = parseDeleteParams((name) => c.req.query(name));
    if (!parsed.ok) return problemResponse(problem(parsed.status, parsed.title, parsed.detail, parsed.errors));
    try {
      await engine.delete(parsed.value);
    } catch (err) {
      if (err instanceof ShuttingDownError) {
        return problemResponse(
          problem(503, "Service Unavailable", "pulsedb is shutting down; nothing was deleted. Retry shortly."),
          { "retry-after": "1" },
        );
      }
      if (err instanceof WalWriteError) {
        return problemResponse(walWriteProblem(err, "the deletion"), { "retry-after": "1" });
      }
      throw err;
    }
    return new Response(DELETED, { status: 200, headers: JSON_HEADERS });
  });

  app.all(
    ROUTE,
    (c) =>
      problemResponse(
        problem(405, "Method Not Allowed", `${c.req.method} is not supported on ${ROUTE}; use GET, POST or DELETE.`),
        { allow: "GET, POST, DELETE" },
      ),
  );

  // Liveness: the process answers. Stays 200 while starting and stopping.
  app.get("/health", () => new Response('{"status":"ok"}', { status: 200, headers: JSON_HEADERS }));

  // Readiness: data routes are served (the engine is open) and the server is not shutting down.
  app.get("/ready", () => {
    const engine = engineNow();
    if (engine === undefined) return unavailable(STARTING);
    if (deps.ready !== undefined && !deps.ready()) return unavailable(STOPPING);
    const failed = engine.failure();
    if (failed !== undefined) {
      return unavailable(`pulsedb stopped acknowledging writes and must be restarted: ${failed.message}`);
    }
    return new Response('{"status":"ready"}', { status: 200, headers: JSON_HEADERS });
  });

  // Until the engine is open its gauges would read 0 (an empty memtable, no runs): answer 503
  // rather than numbers that look real.
  app.get("/metrics", async () => {
    const engine = engineNow();
    if (engine === undefined) return unavailable(STARTING);
    engine.refreshGauges();
    metrics.memoryBudget.set(engine.config.memoryBudgetBytes);
    return new Response(await metrics.registry.metrics(), {
      status: 200,
      headers: { "content-type": metrics.registry.contentType },
    });
  });

  app.get("/openapi.json", () => new Response(openApiJson(), { status: 200, headers: JSON_HEADERS }));

  app.route("/", dashboardRoutes({ authEnabled: access !== undefined }));

  app.notFound((c) => problemResponse(problem(404, "Not Found", `No route for ${c.req.method} ${c.req.path}.`)));

  app.onError((err, c) => {
    if (err instanceof BodyReadError) {
      return problemResponse(
        problem(400, "Bad Request", "The request body could not be read whole (it ended before its Content-Length)."),
      );
    }
    log.error("unhandled error", { err, method: c.req.method, path: c.req.path });
    return problemResponse(problem(500, "Internal Server Error", "An unexpected error occurred; it has been logged."));
  });

  return app;
}

function constant<T>(value: T): () => T {
  return () => value;
}

/** The 503 for a write-ahead-log failure: `what` (the request, the deletion) was not acknowledged. */
function walWriteProblem(err: WalWriteError, what: string): Problem {
  const code = (err.cause as NodeJS.ErrnoException)?.code ?? "I/O error";
  return problem(
    503,
    "Service Unavailable",
    `The write-ahead log could not be written (${code}); ${what} was not acknowledged. Retry later.`,
  );
}

function unavailable(detail: string): Response {
  return problemResponse(problem(503, "Service Unavailable", detail), { "retry-after": "1" });
}

function isKnownWriteError(err: unknown): boolean {
  return err instanceof OverloadedError || err instanceof ShuttingDownError || err instanceof TooLargeError ||
    err instanceof WalWriteError || err instanceof DamagedError;
}

/** 400 naming every reading older than the retention horizon (nothing of the request is stored). */
function expired(err: ExpiredError, batch: boolean, n: number, metrics: Metrics): Response {
  metrics.reject("invalid", n);
  const horizon = new Date(err.horizon).toISOString();
  const message = `timestamp is older than the retention horizon (${horizon}); it would never be answered`;
  const errors = err.indices.map((i) => ({ path: batch ? `/${i}/timestamp` : "/timestamp", message }));
  const detail = batch
    ? `${err.indices.length} of ${n} readings ${
      err.indices.length === 1 ? "is" : "are"
    } older than the retention horizon; nothing was stored.`
    : "The reading is older than the retention horizon; nothing was stored.";
  return problemResponse(problem(400, VALIDATION_TITLE, detail, errors));
}

/** Maps an engine write error to its 503 answer and counts the `n` refused readings; rethrows others. */
function writeFailure(err: unknown, metrics: Metrics, n: number): Response {
  if (err instanceof OverloadedError) {
    metrics.reject("overloaded", n);
    return problemResponse(
      problem(
        503,
        "Service Unavailable",
        "Writes are arriving faster than they can be flushed; retry shortly. Nothing of this request was stored.",
      ),
      {
        "retry-after": String(err.retryAfterSec),
      },
    );
  }
  if (err instanceof ShuttingDownError) {
    metrics.reject("unavailable", n);
    return problemResponse(
      problem(503, "Service Unavailable", "pulsedb is shutting down; retry against the restarted server."),
      { "retry-after": "1" },
    );
  }
  if (err instanceof DamagedError) {
    metrics.reject("unavailable", n);
    return unavailable(err.message);
  }
  if (err instanceof TooLargeError) {
    metrics.reject("too_large", n);
    return problemResponse(problem(413, "Content Too Large", err.message));
  }
  if (err instanceof WalWriteError) {
    metrics.reject("wal_error", n);
    return problemResponse(
      walWriteProblem(err, "the request"),
      {
        "retry-after": "1",
      },
    );
  }
  throw err;
}

/**
 * Renders a query answer as the contract's JSON body (the `data` array arrives as JSON text).
 *
 * @example
 * ```ts
 * render("u1", { count: 1, json: '[{"timestamp":"2024-01-15T10:00:00Z","heart_rate":75.0,"device_id":"device_a"}]' });
 * // '{"user_id":"u1","data":[...],"count":1}'
 * ```
 */
export function render(userId: string, result: QueryResult): string {
  return `{"user_id":${JSON.stringify(userId)},"data":${result.json},"count":${result.count}}`;
}
