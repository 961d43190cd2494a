/**
 * Background compaction: merges the runs of one UTC day into fewer, larger runs, dropping
 * duplicates (same user, device, timestamp: the highest sequence wins).
 *
 * Policy (tiered per day, then a settle merge):
 *  1. Tiered: when a day holds `trigger` (default 4) runs of one level L, they are merged into one
 *     run of level L+1. A reading is rewritten at most once per level, and levels grow as
 *     log_trigger(flushes per day), so write amplification is about that many rewrites.
 *  2. Settle: when a day holds more than one run and no flush has added to it for `settleMs`, all of
 *     its runs are merged into one. A settled day is read from a single file. A late reading for a
 *     settled day costs one rewrite of that day when the day settles again.
 *
 * Contract: a compaction publishes its output by an atomic manifest swap that removes its inputs in
 * the same step; input files are deleted once no query reads them. A crash at any step leaves a
 * manifest in which every reading is present exactly once (orphans are removed at start-up).
 * All Polars work is lazy (`sinkParquet(...).collect()`), so the event loop stays free, and writes
 * never wait on compaction.
 *
 * @module
 */
import pl from "nodejs-polars";
import type { Logger } from "../ops/logger.ts";
import type { Metrics } from "../ops/metrics.ts";
import { checked, runRowsSql } from "./run-sql.ts";
import { type RunMeta, writeRun } from "./run.ts";
import * as path from "node:path";
import type { CrashPoint } from "./crash-point.ts";

/**
 * What the compactor needs from the database it compacts (the engine provides it): the live runs,
 * fresh run ids, and the atomic swap of inputs for outputs (manifest first, then unlink).
 */
export interface CompactionHost {
  readonly config: { readonly dataDir: string };
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Bytes written by compaction so far (write amplification). */
  bytesCompacted: number;
  liveRuns(): RunMeta[];
  reserveRunId(): number;
  replaceRuns(inputs: RunMeta[], outputs: RunMeta[]): Promise<void>;
  /** Checks the inputs' checksums before they are read (a damaged input must not be merged). */
  verifyRuns?(runs: readonly RunMeta[]): Promise<void>;
  /** Runs `fn` while no other run-rewriting job (purge, retention drop) runs; default: at once. */
  exclusive?<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * The shared run-rewriting path (compaction and purge): merges `inputs` (runs of one day) into one
 * new run of `outputLevel`, de-duplicated, leaving out the rows `dropSql` is true for (a predicate
 * over `user_id, device_id, timestamp, heart_rate, seq`). Writes and fsyncs the file; publishes
 * nothing (the caller swaps the manifest).
 *
 * @example
 * ```ts
 * declare const host: CompactionHost; // the engine
 * const inputs = host.liveRuns().filter((r) => r.day === "2024-01-15");
 * const out = await rewriteRuns(host, "2024-01-15", inputs, 2);
 * await host.replaceRuns(inputs, [out]);
 * ```
 */
export async function rewriteRuns(
  host: Pick<CompactionHost, "config" | "reserveRunId">,
  day: string,
  inputs: readonly RunMeta[],
  outputLevel: number,
  dropSql?: string,
  points: { afterSink: CrashPoint; afterRename: CrashPoint } = {
    afterSink: "compaction-after-sink",
    afterRename: "compaction-after-rename",
  },
): Promise<RunMeta> {
  const dataDir = host.config.dataDir;
  const tables: Record<string, pl.LazyDataFrame> = {};
  inputs.forEach((r, i) => (tables[`r${i}`] = pl.scanParquet(path.join(dataDir, r.file))));
  const where = dropSql === undefined ? "" : ` WHERE NOT ${dropSql}`;
  const union = inputs.map((_, i) => `SELECT user_id, device_id, timestamp, heart_rate, seq FROM r${i}${where}`).join(
    " UNION ALL ",
  );
  // One input is already de-duplicated and sorted, and a filter keeps both: stream it through.
  const sql = inputs.length === 1 ? union : runRowsSql(union);
  const lf = checked(pl.SQLContext(tables).execute(sql));
  return await writeRun(dataDir, lf, { id: host.reserveRunId(), day, level: outputLevel }, points);
}

/** One planned merge. */
export interface CompactionJob {
  day: string;
  inputs: RunMeta[];
  outputLevel: number;
  reason: "tiered" | "settle";
}

/**
 * Picks the next merge for a set of runs, or undefined when nothing needs merging.
 *
 * @param lastFlush day -> time (ms) a flush last added a run to it.
 * @example
 * ```ts
 * import type { RunMeta } from "./run.ts";
 *
 * const l0 = (id: number): RunMeta => ({
 *   id, day: "2024-01-15", level: 0, file: `runs/day=2024-01-15/L0-${id}.parquet`,
 *   rows: 100, minTs: 0, maxTs: 1, minSeq: id * 100, maxSeq: id * 100 + 99, bytes: 4096,
 * });
 * const job = planCompaction([l0(1), l0(2), l0(3), l0(4)], 4, 60_000, new Map(), Date.now());
 * // { day: "2024-01-15", inputs: [runs 1-4], outputLevel: 1, reason: "tiered" }: four level-0 runs reach the trigger
 * ```
 */
export function planCompaction(
  runs: readonly RunMeta[],
  trigger: number,
  settleMs: number,
  lastFlush: ReadonlyMap<string, number>,
  now: number,
): CompactionJob | undefined {
  const byDay = new Map<string, RunMeta[]>();
  for (const r of runs) {
    const list = byDay.get(r.day);
    if (list) list.push(r);
    else byDay.set(r.day, [r]);
  }
  let settle: CompactionJob | undefined;
  for (const [day, dayRuns] of [...byDay].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const byLevel = new Map<number, RunMeta[]>();
    for (const r of dayRuns) {
      const list = byLevel.get(r.level);
      if (list) list.push(r);
      else byLevel.set(r.level, [r]);
    }
    for (const level of [...byLevel.keys()].sort((a, b) => a - b)) {
      const list = byLevel.get(level)!;
      if (list.length >= trigger) {
        const inputs = list.sort((a, b) => a.id - b.id).slice(0, trigger);
        return { day, inputs, outputLevel: level + 1, reason: "tiered" };
      }
    }
    if (!settle && dayRuns.length > 1 && now - (lastFlush.get(day) ?? 0) >= settleMs) {
      const top = Math.max(...dayRuns.map((r) => r.level));
      settle = { day, inputs: dayRuns.slice().sort((a, b) => a.id - b.id), outputLevel: top + 1, reason: "settle" };
    }
  }
  return settle;
}

/**
 * The compactor: one merge at a time, in the background.
 *
 * @example
 * ```ts
 * import { Engine } from "../engine.ts";
 * import { testConfig } from "../ops/config.ts";
 * import { silentLogger } from "../ops/logger.ts";
 *
 * const engine = await Engine.open(testConfig({ dataDir: "/tmp/pulse" }), silentLogger);
 * const compactor = new Compactor(engine, { trigger: 4, settleMs: 60_000 });
 * engine.attachCompactor(compactor);
 * compactor.start();
 * ```
 */
export class Compactor {
  private running: Promise<void> | undefined;
  private stopped = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly lastFlush = new Map<string, number>();
  private failures = 0;
  private pausedUntil = 0;

  constructor(
    private readonly engine: CompactionHost,
    private readonly opts: { trigger: number; settleMs: number; checkEveryMs?: number },
  ) {}

  /** Starts periodic checks (for settle merges); flushes also `kick()` it. */
  start(): void {
    this.timer = setInterval(() => this.kick(), this.opts.checkEveryMs ?? 5_000);
    (this.timer as { unref?: () => void }).unref?.();
    this.kick();
  }

  /** Notes that a flush added runs (for the settle rule) and looks for work. */
  noteFlush(days: readonly string[], now = Date.now()): void {
    for (const d of days) this.lastFlush.set(d, now);
    this.kick();
  }

  /** Looks for work now, unless a merge is already running. */
  kick(): void {
    if (this.stopped || this.running || Date.now() < this.pausedUntil) return;
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
  }

  /** Runs merges until none is due; resolves when idle (tests use it to let compaction settle). */
  async runUntilIdle(): Promise<void> {
    for (;;) {
      if (this.running) {
        await this.running;
        continue;
      }
      if (this.stopped || !this.plan()) return;
      if (this.failures > 0) throw new Error("compaction is failing; see the log");
      this.pausedUntil = 0;
      this.kick();
    }
  }

  /** Stops after the merge in progress (if any) completes. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  private plan(): CompactionJob | undefined {
    return planCompaction(this.engine.liveRuns(), this.opts.trigger, this.opts.settleMs, this.lastFlush, Date.now());
  }

  private async loop(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const job = this.plan();
      if (!job) return;
      try {
        await this.compact(job);
        this.failures = 0;
      } catch (err) {
        this.failures++;
        this.engine.metrics.compactionFailures.inc();
        const pause = Math.min(60_000, 1000 * 2 ** Math.min(this.failures, 6));
        this.engine.log.error("compaction failed; inputs untouched, will retry", {
          err,
          day: job.day,
          retryInMs: pause,
        });
        this.pausedUntil = Date.now() + pause;
        return;
      }
    }
  }

  /**
   * Merges one job's inputs into one run and publishes it, excluding other run rewrites (purge,
   * retention); skipped when an input was replaced while the job waited.
   */
  private compact(job: CompactionJob): Promise<void> {
    const host = this.engine;
    const run = async () => {
      const live = new Set(host.liveRuns().map((r) => r.id));
      if (job.inputs.every((r) => live.has(r.id))) await this.merge(job);
    };
    return host.exclusive ? host.exclusive(run) : run();
  }

  private async merge(job: CompactionJob): Promise<void> {
    const started = performance.now();
    await this.engine.verifyRuns?.(job.inputs);
    const output = await rewriteRuns(this.engine, job.day, job.inputs, job.outputLevel);
    await this.engine.replaceRuns(job.inputs, [output]);
    const seconds = (performance.now() - started) / 1000;
    const m = this.engine.metrics;
    m.compactions.inc();
    m.compactionDuration.observe(seconds);
    m.bytesCompacted.inc(output.bytes);
    this.engine.bytesCompacted += output.bytes;
    this.engine.log.info("compaction", {
      day: job.day,
      reason: job.reason,
      inputs: job.inputs.map((r) => r.file),
      inputRows: job.inputs.reduce((s, r) => s + r.rows, 0),
      output: output.file,
      outputRows: output.rows,
      ms: Math.round(seconds * 1000),
    });
  }
}
