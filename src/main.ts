/**
 * The pulsedb daemon: configuration, HTTP server, engine and compactor, graceful shutdown.
 * `npm start` (Node) or `deno task start` (Deno).
 *
 * Start-up: the server listens first, then the engine opens (WAL replay can take a while). Until it
 * is open, `/health` answers 200 (alive), `/ready` and `/metrics` answer 503 with `Retry-After: 1`,
 * and a data request waits for the open (up to 30 s) and is then served. A start-up failure (bad
 * configuration, corrupt manifest, port in use) exits non-zero with the message on stderr.
 *
 * Shutdown (SIGTERM/SIGINT): `/ready` turns 503, the server stops accepting and finishes in-flight
 * requests, the engine flushes its memtables and closes the WAL, the process exits 0.
 *
 * @module
 */
import { type Config, ConfigError, isLoopbackHost, loadConfig } from "./ops/config.ts";
import type { Engine } from "./engine.ts";
import { createApp } from "./http/app.ts";
import { exit, onShutdownSignal, type RunningServer, runtimeName, serve } from "./http/serve.ts";
import { createLogger } from "./ops/logger.ts";
import { Metrics } from "./ops/metrics.ts";
import { openPulseDb } from "./pulsedb.ts";
import { checkDataDir, DataDirError } from "./storage/data-dir.ts";
import { AccessControl } from "./http/auth.ts";
import { AuditLog } from "./http/audit.ts";
import { TokenStore } from "./storage/token-store.ts";

const started = performance.now();
/** How long a shutdown waits for an engine that is still opening. */
const OPEN_WAIT_MS = 60_000;

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`pulsedb: ${err.message}\n`);
    exit(2);
  }
  throw err;
}

try {
  await checkDataDir(config.dataDir);
} catch (err) {
  if (!(err instanceof DataDirError)) throw err;
  process.stderr.write(`pulsedb: PULSE_DATA_DIR=${config.dataDir} ${err.message}\n`);
  exit(2);
}

const log = createLogger(config.logLevel);
log.info("starting", {
  runtime: runtimeName(),
  config: { ...config, devicePriority: Object.fromEntries(config.devicePriority) },
  // Node: libuv's pool (WAL I/O and Polars work share it); `npm start` sets 16. Deno has no such pool.
  threadPool: runtimeName() === "node" ? (process.env.UV_THREADPOOL_SIZE ?? "4 (libuv default)") : undefined,
});

/** Logs and prints `message` on stderr, then exits 1. */
function fail(message: string, err: unknown): never {
  log.error(message, { err });
  process.stderr.write(`pulsedb: ${message}: ${(err as Error)?.message ?? String(err)}\n`);
  exit(1);
}

// Access control (PULSE_AUTH=on): the token store is read before the server listens.
let access: AccessControl | undefined;
let audit: AuditLog | undefined;
if (config.auth === "on") {
  try {
    const store = TokenStore.load(config.dataDir);
    audit = config.auditLog !== undefined ? AuditLog.toFile(config.auditLog) : AuditLog.toStderr();
    access = new AccessControl({
      adminToken: config.adminToken!.reveal(),
      store,
      audit,
      maxBodyBytes: config.maxBodyBytes,
    });
    log.info("access control on", { tokens: store.size, audit: config.auditLog ?? "stderr" });
  } catch (err) {
    fail("access control cannot start", err);
  }
} else if (!isLoopbackHost(config.host)) {
  log.warn("access control is off on a non-loopback address (PULSE_AUTH=off)", { host: config.host });
}

const metrics = new Metrics();
let engine: Engine | undefined;
let stopping = false;
/** Settles when the open has finished (either way): data requests during start-up wait on it. */
let openSettled!: () => void;
const opened = new Promise<void>((resolve) => (openSettled = resolve));
const app = createApp({
  engine: () => engine,
  opening: opened,
  metrics,
  config,
  log,
  ready: () => !stopping,
  access,
});

let server: RunningServer;
try {
  server = await serve(app.fetch, { hostname: config.host, port: config.port });
} catch (err) {
  fail(`cannot listen on ${config.host}:${config.port}`, err);
}
log.info("listening", { url: `http://${config.host}:${server.port}` });

const opening = openPulseDb(config, log, metrics);

onShutdownSignal(shutdown);
watchLauncher(shutdown);

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info("shutting down", { signal });
  try {
    await server.close();
    // A signal during WAL replay waits for the open to finish (at most OPEN_WAIT_MS), then closes
    // cleanly. If the open fails, the start-up path below reports it and exits 1.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const gaveUp = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), OPEN_WAIT_MS)));
    const db = await Promise.race([opening.catch(() => undefined), gaveUp]);
    clearTimeout(timer);
    if (db === "timeout") {
      log.error(
        "shutdown: the engine did not finish opening; exiting without a flush (the WAL keeps every acknowledged write)",
        { waitedMs: OPEN_WAIT_MS },
      );
      exit(1);
    }
    audit?.flush();
    if (db === undefined) return;
    await db.engine.close();
    audit?.flush();
    exit(0);
  } catch (err) {
    log.error("shutdown failed", { err });
    exit(1);
  }
}

/**
 * Under `npm start` npm is our parent, under `deno task start` the Deno launcher. If it is killed
 * outright (SIGKILL cannot be forwarded), we would live on as an orphan holding the port and the
 * data directory; instead, notice that the parent changed and shut down cleanly, as on SIGTERM.
 */
function watchLauncher(stop: (reason: string) => void): void {
  const launched = process.env.npm_lifecycle_event !== undefined || process.env.PULSEDB_LAUNCHER !== undefined;
  if (!launched || typeof process.ppid !== "number") return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      stop("parent process exited");
    }
  }, 500);
  (timer as { unref?: () => void }).unref?.();
}

try {
  engine = (await opening).engine;
  openSettled();
} catch (err) {
  fail("start-up failed", err);
}
if (!stopping) log.info("ready", { ms: Math.round(performance.now() - started) });
