/**
 * The pulsedb daemon: configuration, engine, compactor, HTTP server, graceful shutdown.
 * `npm start` (Node) or `deno task start` (Deno).
 *
 * @module
 */
import { ConfigError, loadConfig } from "./config.ts";
import type { Engine } from "./engine.ts";
import { openPulseDb } from "./pulsedb.ts";
import { createApp } from "./http/app.ts";
import { exit, onShutdownSignal, runtimeName, serve } from "./http/serve.ts";
import { createLogger } from "./logger.ts";

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`pulsedb: ${err.message}\n`);
    exit(2);
  }
  throw err;
}

const log = createLogger(config.logLevel);
let ready = false;
let engine: Engine;
try {
  ({ engine } = await openPulseDb(config, log));
} catch (err) {
  log.error("start-up failed", { err });
  process.stderr.write(`pulsedb: start-up failed: ${(err as Error).message}\n`);
  exit(1);
}

const app = createApp({ engine, config, log, ready: () => ready });
const server = await serve(app.fetch, { hostname: config.host, port: config.port });
ready = true;
log.info("listening", {
  url: `http://${config.host}:${server.port}`,
  runtime: runtimeName(),
  config: { ...config, devicePriority: Object.fromEntries(config.devicePriority) },
});

onShutdownSignal(async (signal) => {
  ready = false;
  log.info("shutting down", { signal });
  try {
    await server.close();
    await engine.close();
    exit(0);
  } catch (err) {
    log.error("shutdown failed", { err });
    exit(1);
  }
});
