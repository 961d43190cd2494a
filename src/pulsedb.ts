/**
 * Opens a complete database: the engine with its background compactor.
 *
 * @module
 */
import { Compactor } from "./storage/compactor.ts";
import type { Config } from "./ops/config.ts";
import { Engine, type EngineHooks } from "./engine.ts";
import type { Logger } from "./ops/logger.ts";
import { Metrics } from "./ops/metrics.ts";

/** An open database: the engine, and its compactor when compaction is on. */
export interface PulseDb {
  engine: Engine;
  compactor: Compactor | undefined;
}

/**
 * Opens the engine (recovering from any crash) and starts background compaction if configured.
 * Close with `engine.close()`, which also stops the compactor.
 *
 * @example
 * ```ts
 * import { testConfig } from "./ops/config.ts";
 * import { silentLogger } from "./ops/logger.ts";
 *
 * const { engine } = await openPulseDb(testConfig({ dataDir: "/tmp/pulse" }), silentLogger);
 * await engine.close();
 * ```
 */
export async function openPulseDb(
  config: Config,
  log: Logger,
  metrics: Metrics = new Metrics(),
  hooks: EngineHooks = {},
): Promise<PulseDb> {
  const engine = await Engine.open(config, log, metrics, hooks);
  let compactor: Compactor | undefined;
  if (config.compaction) {
    compactor = new Compactor(engine, { trigger: config.compactionTrigger, settleMs: config.compactionSettleMs });
    engine.attachCompactor(compactor);
    compactor.start();
  }
  return { engine, compactor };
}
