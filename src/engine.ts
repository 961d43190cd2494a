/**
 * The storage engine: WAL + memtables + runs + manifest, and the query over all of them.
 * It knows nothing of HTTP.
 *
 * Write contract: when `write()` resolves, every reading of the call is in the WAL on disk (fsync'd
 * in the default mode) and visible to every query that starts afterwards. Readings get increasing
 * sequence numbers in call order; the highest sequence of an identity wins everywhere.
 *
 * Life of a reading: WAL segment k + memtable k (same number) -> memtable k sealed when full or old
 * -> flushed off the request path as one run per UTC day -> manifest names the runs and records that
 * segments <= k are covered -> segment files <= k deleted -> compaction merges runs of a day.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import pl from "nodejs-polars";
import type { Config } from "./ops/config.ts";
import { armCrashPoint, crashPoint } from "./storage/crash-point.ts";
import { ensureDir, MaybeWrittenError } from "./storage/fsutil.ts";
import type { Logger } from "./ops/logger.ts";
import {
  EMPTY_MANIFEST,
  MANIFEST_FILE,
  type ManifestData,
  readManifest,
  withTombstones,
  writeManifest,
} from "./storage/manifest.ts";
import { rebuildManifest } from "./storage/recovery.ts";
import { FRAME_CHUNK_ROWS, Memtable } from "./storage/memtable.ts";
import {
  type BucketPoint,
  type QueryResult,
  type QuerySources,
  type QuerySpec,
  rankDevices,
  runQuery,
  spansDisjoint,
  toPoints,
  type Window,
} from "./query/query.ts";
import { DAY_MS, type Reading } from "./reading.ts";
import { tombstonesTouch } from "./query/tombstone-mask.ts";
import { ResultCache } from "./query/result-cache.ts";
import { checkRunSize, dayName, listRunFiles, removeRunFiles, RunCorruptError, type RunMeta } from "./storage/run.ts";
import { planRunSources } from "./query/rollup-plan.ts";
import { MINUTE_MS } from "./storage/rollup.ts";
import { rollupIntact } from "./storage/rollup.ts";
import { writeMemtableRuns } from "./storage/flush.ts";
import { releaseLock, takeLock } from "./storage/lock-file.ts";
import { type RunHandle, RunSet } from "./storage/run-set.ts";
import { RecordTooLargeError, Wal, type WalFs } from "./storage/wal/wal.ts";
import { Metrics } from "./ops/metrics.ts";
import { type Tombstone, TombstoneSet } from "./storage/tombstones.ts";
import { expiredIndices, expiredRuns, retentionHorizon } from "./storage/retention.ts";
import { Purger } from "./storage/purge.ts";

/** Writes are refused because memtables are at their memory budget; retry after `retryAfterSec`. */
export class OverloadedError extends Error {
  constructor(readonly retryAfterSec: number) {
    super("memtables are at their memory budget while flushing catches up");
    this.name = "OverloadedError";
  }
}

/** Writes are refused because the engine is shutting down. */
export class ShuttingDownError extends Error {
  constructor() {
    super("pulsedb is shutting down");
    this.name = "ShuttingDownError";
  }
}

/** Writes failed because the WAL could not be written or synced; nothing of the call is acknowledged. */
export class WalWriteError extends Error {
  constructor(override readonly cause: unknown) {
    super(`the write-ahead log could not be written: ${(cause as Error)?.message ?? cause}`);
    this.name = "WalWriteError";
  }
}

/**
 * The engine has stopped serving because a run file is damaged (its checksum, checked on first read
 * or by the background pass, does not match): writes and the queries that need that run are
 * refused; the message names the file and the way out (docs/corruption.md).
 */
export class DamagedError extends Error {
  constructor(override readonly cause: Error) {
    super(cause.message);
    this.name = "DamagedError";
  }
}

/** One write is too large to be logged as a single, all-or-nothing WAL record. */
export class TooLargeError extends Error {
  constructor(detail: string) {
    super(`the write is too large to be stored atomically (${detail}); send it in smaller batches`);
    this.name = "TooLargeError";
  }
}

/**
 * How often (at most) the background lifecycle pass (purge due erasures, drop expired days) runs;
 * more often with a short erasure deadline (an eighth of it, at least every second).
 */
const LIFECYCLE_EVERY_MS = 30_000;

/** Readings older than the retention horizon (PULSE_RETENTION): they would never be answered. */
export class ExpiredError extends Error {
  constructor(readonly indices: number[], readonly horizon: number) {
    super(`${indices.length} reading(s) older than the retention horizon ${new Date(horizon).toISOString()}`);
    this.name = "ExpiredError";
  }
}

/** Test hooks: inject faults below the engine. */
export interface EngineHooks {
  /** The file-system calls of the WAL (default node:fs). */
  walFs?: WalFs;
  /** The wall clock (ms) for erasure ages and the retention horizon (default Date.now). */
  now?: () => number;
}

/** What a DELETE erases: a user's readings, optionally of one device, optionally in `[start, end)`. */
export interface Erasure {
  userId: string;
  deviceId?: string;
  /** With `end`, or neither (all time). */
  start?: number;
  end?: number;
}

/**
 * The engine. Create with `Engine.open(config, logger)`; stop with `close()`.
 *
 * @example
 * ```ts
 * import { testConfig } from "./ops/config.ts";
 * import { silentLogger } from "./ops/logger.ts";
 *
 * const engine = await Engine.open(testConfig({ dataDir: "/tmp/pulse" }), silentLogger);
 * await engine.write([{ userId: "u", deviceId: "device_a", ts: Date.UTC(2024, 0, 15, 10), heartRate: 75 }]);
 * const points = await engine.query({ userId: "u", start: Date.UTC(2024, 0, 15), end: Date.UTC(2024, 0, 16), bucketMs: 60_000 });
 * await engine.close();
 * ```
 */
export class Engine {
  readonly metrics: Metrics;
  readonly cache: ResultCache;
  private manifest: ManifestData;
  private readonly runs: RunSet;
  private active: Memtable;
  private readonly immutables: Memtable[] = [];
  private nextSeq: number;
  private flushLoop: Promise<void> | undefined;
  private manifestLock: Promise<unknown> = Promise.resolve();
  private runsLock: Promise<unknown> = Promise.resolve();
  private closing = false;
  private framing = false;
  private closed = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** Configured devices in priority order (query.ts). */
  private readonly ranked: string[];
  /** The next run id to hand out (kept apart from the manifest, which is replaced asynchronously). */
  private nextRunId: number;
  private compactor: { stop(): Promise<void>; noteFlush(days: readonly string[]): void } | undefined;
  /** Bytes written by flushes and by compactions since start (write amplification). */
  private bytesFlushed = 0;
  bytesCompacted = 0;
  /** The first damaged run found (see DamagedError); from then on writes are refused. */
  private damaged: DamagedError | undefined;
  /** Queries computing now, and those waiting for a place (at most `config.queryConcurrency` run). */
  private queriesRunning = 0;
  private readonly queriesWaiting: Array<() => void> = [];
  /** The background pass that checks the checksum of every run the manifest named at open. */
  private verifying: Promise<void> = Promise.resolve();
  /** Run files of failed publishes that a manifest on disk may still name (see publishOrDiscard). */
  private readonly unpublished: string[] = [];
  /** Deletions accepted and not yet purged from disk (tombstones.ts). */
  readonly tombstones: TombstoneSet;
  /** The wall clock (ms). */
  readonly now: () => number;
  /** Physical purge of erasures (purge.ts). */
  readonly purger: Purger;
  /** The background lifecycle pass (purge, retention) in progress, if any. */
  private lifecycle: Promise<void> | undefined;
  private lastLifecycle = 0;
  /** Woken after every flush attempt (flushThrough waits on them). */
  private flushWaiters: Array<() => void> = [];

  private constructor(
    readonly config: Config,
    readonly log: Logger,
    private readonly wal: Wal,
    manifest: ManifestData,
    nextSeq: number,
    metrics: Metrics,
    tombstones: readonly Tombstone[],
    now: () => number,
  ) {
    this.manifest = manifest;
    this.tombstones = new TombstoneSet(tombstones);
    this.now = now;
    this.purger = new Purger(this, { deadlineMs: config.erasureDeadlineMs });
    this.nextRunId = manifest.nextRunId;
    this.nextSeq = nextSeq;
    this.metrics = metrics;
    this.cache = new ResultCache(config.cacheEntries, config.cacheBytes);
    this.ranked = rankDevices(config.devicePriority);
    this.runs = new RunSet(config.dataDir, log);
    this.runs.add(manifest.runs, false); // checksums checked on first read or by the background pass
    this.active = new Memtable(wal.currentSegment());
  }

  /**
   * Opens (or creates) the database in `config.dataDir` and recovers from any crash: removes
   * half-written files, replays the WAL (cutting a torn tail), and schedules a flush of what it
   * replayed. Resolves when the engine can serve reads and writes.
   *
   * @throws when the data directory is locked by a live process, or the manifest or a WAL segment
   *   is corrupt beyond a torn tail (the message says how to recover).
   */
  static async open(
    config: Config,
    log: Logger,
    metrics: Metrics = new Metrics(),
    hooks: EngineHooks = {},
  ): Promise<Engine> {
    armCrashPoint(config.crashPoint);
    const dataDir = config.dataDir;
    await ensureDir(dataDir);
    await takeLock(dataDir);
    const started = performance.now();
    const manifest = config.recovery === "rebuild-manifest"
      ? await rebuildManifest(dataDir, log)
      : await readManifestOrRefuse(dataDir);
    await checkRunFiles(dataDir, manifest, log);
    // Replay, record by record, into memtables of at most PULSE_MEMTABLE_ROWS rows: a full one is
    // flushed to runs and published before replay goes on, so start-up memory is bounded by the
    // memtable size (and one WAL segment), not by the log. Segments are deleted once the WAL is open.
    let maxSeq = manifest.flushedSeq;
    for (const r of manifest.runs) maxSeq = Math.max(maxSeq, r.maxSeq);
    const tombstones = [...(manifest.tombstones ?? [])];
    for (const t of tombstones) maxSeq = Math.max(maxSeq, t.seq);
    let walTombstones = 0;
    let replay = new Memtable(0);
    let replayed = 0;
    let replayFlushes = 0;
    let current = manifest;
    const flushReplay = async (coveredSegment: number) => {
      replay.seal(0);
      const metas = await writeMemtableRuns(dataDir, replay, () => current.nextRunId++);
      // It names every tombstone replayed so far: their segments may go once it covers them.
      const next: ManifestData = withTombstones({
        ...current,
        runs: [...current.runs, ...metas],
        flushedSeq: Math.max(current.flushedSeq, replay.maxSeq),
        walSegment: Math.max(current.walSegment, coveredSegment),
      }, tombstones);
      await writeManifest(dataDir, next);
      current = next;
      log.info("flush", { memtable: "replay", rows: replay.rows, runs: metas.map((m) => m.file) });
      replay.release();
      replay = new Memtable(0);
      replayFlushes++;
    };
    const { wal, truncated } = await Wal.open({
      dir: path.join(dataDir, "wal"),
      syncMode: config.fsync,
      syncIntervalMs: config.fsyncIntervalMs,
      salvage: config.walSalvage,
      // Never number a new segment at or below one the manifest says is covered (and may delete).
      minSegment: manifest.walSegment + 1,
      fs: hooks.walFs,
      onSync: (ms: number, records: number) => metrics.observeWalSync(ms, records),
      logger: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) =>
        log[level](msg, fields),
      onBatch: async (b) => {
        if (b.tombstone) {
          // A DELETE: its own module keeps it (a covered segment's tombstones are in the manifest).
          maxSeq = Math.max(maxSeq, b.firstSeq);
          if (b.segment > manifest.walSegment) {
            tombstones.push({ ...b.tombstone, segment: b.segment });
            walTombstones++;
          }
          return;
        }
        const last = b.firstSeq + b.readings.length - 1;
        maxSeq = Math.max(maxSeq, last);
        if (last <= manifest.flushedSeq) return;
        // Every record of the segments before b.segment is in this memtable or already in runs.
        if (replay.rows > 0 && replay.rows + b.readings.length > config.memtableRows) await flushReplay(b.segment - 1);
        replay.append(b.readings, b.firstSeq);
        replayed += b.readings.length;
      },
    });
    for (const t of truncated) log.warn("wal torn tail cut", { ...t });
    // Segments the manifest says are covered may survive a crash before their deletion.
    await wal.deleteSegmentsThrough(Math.min(current.walSegment, wal.currentSegment() - 1));
    const lastOld = wal.currentSegment() - 1;
    const engine = new Engine(config, log, wal, current, maxSeq + 1, metrics, tombstones, hooks.now ?? Date.now);
    if (replay.rows > 0) {
      // The rest of the log: one memtable covering every old segment, flushed as usual.
      replay.seal(lastOld);
      engine.immutables.push(replay);
      engine.scheduleFlush();
    } else if (lastOld > current.walSegment && lastOld > 0) {
      // Nothing left to replay: older segments hold only flushed or no records (and tombstones, which
      // the manifest must name before their segments go).
      if (walTombstones > 0) {
        await engine.updateManifest((m) => ({ ...m, walSegment: Math.max(m.walSegment, lastOld) }));
      }
      await wal.deleteSegmentsThrough(lastOld);
    }
    log.info("recovered", {
      dataDir,
      runs: current.runs.length,
      replayedReadings: replayed,
      replayFlushes,
      tombstones: engine.tombstones.size,
      walTornTails: truncated.length,
      nextSeq: engine.nextSeq,
      ms: Math.round(performance.now() - started),
    });
    engine.verifying = engine.verifyAll();
    engine.timer = setInterval(() => engine.tick(), Math.min(1000, config.flushIntervalMs));
    (engine.timer as { unref?: () => void }).unref?.();
    return engine;
  }

  /** Attaches the background compactor (started by the caller; stopped by `close`). */
  attachCompactor(compactor: { stop(): Promise<void>; noteFlush(days: readonly string[]): void }): void {
    this.compactor = compactor;
  }

  /**
   * Stores readings durably. Reading i of the call gets a higher sequence than reading i-1, so a later
   * duplicate wins. Resolves after the WAL fsync that covers them (group commit).
   *
   * @throws OverloadedError (memory budget), ShuttingDownError, WalWriteError (disk; also every write
   *   after a failed background fdatasync: see `failure()`), ExpiredError (a reading older than the
   *   retention horizon; nothing of the call is stored).
   */
  async write(readings: readonly Reading[]): Promise<void> {
    if (this.closing) throw new ShuttingDownError();
    const failed = this.wal.failure();
    if (failed !== undefined) throw new WalWriteError(failed); // fail-stop: nothing is acknowledged
    if (this.damaged !== undefined) throw this.damaged;
    if (readings.length === 0) return;
    if (this.config.retentionMs !== undefined) {
      const horizon = this.horizon();
      const expired = expiredIndices(readings, horizon);
      if (expired.length > 0) throw new ExpiredError(expired, horizon);
    }
    if (this.memoryBytes() >= this.config.memoryBudgetBytes) {
      this.metrics.backpressure.inc();
      this.rotate();
      throw new OverloadedError(1);
    }
    const firstSeq = this.nextSeq;
    this.nextSeq += readings.length;
    // The record goes to the current segment and the rows to its memtable, after the fsync: a write
    // that is not durable is never visible, and a 503 means "not stored".
    const mem = this.active;
    let synced: Promise<void>;
    try {
      synced = this.wal.append(firstSeq, readings);
    } catch (err) {
      if (this.closing) throw new ShuttingDownError(); // the log closed under a late write: not stored
      // Nothing was queued. Over the WAL's 64 MiB record limit: the client's batch is too large (413).
      // Any other error (a non-increasing sequence, a closed log) is a bug and stays a 500.
      if (err instanceof RecordTooLargeError) throw new TooLargeError(err.message);
      throw err;
    }
    mem.begin(readings.length);
    if (mem.committedAndPendingRows >= this.config.memtableRows) this.rotate();
    try {
      await synced;
    } catch (err) {
      mem.end(readings.length);
      throw new WalWriteError(err);
    }
    mem.append(readings, firstSeq);
    mem.end(readings.length);
    this.invalidate(readings);
    if (mem.unframedRows >= FRAME_CHUNK_ROWS && !this.framing) {
      // Convert to Polars a chunk at a time, after this turn's writes are answered.
      this.framing = true;
      setImmediate(() => {
        this.framing = false;
        mem.frameTail();
      });
    }
    crashPoint("wal-after-append");
  }

  /**
   * Erases readings (right to erasure): every reading matching `e` accepted before this call is
   * gone from every query that starts after it resolves; readings accepted later are kept. Resolves
   * after the tombstone's WAL record is durable (group-committed with writes). Erasing what does not
   * exist is not an error. The purge from disk follows in the background (purge.ts).
   *
   * @throws ShuttingDownError, WalWriteError (disk).
   * @example
   * ```ts
   * import { testConfig } from "./ops/config.ts";
   * import { silentLogger } from "./ops/logger.ts";
   *
   * const engine = await Engine.open(testConfig({ dataDir: "/tmp/pulse" }), silentLogger);
   * await engine.delete({ userId: "u1", start: Date.UTC(2024, 0, 15), end: Date.UTC(2024, 0, 16) });
   * await engine.close();
   * ```
   */
  async delete(e: Erasure): Promise<void> {
    if (this.closing) throw new ShuttingDownError();
    const t: Tombstone = { seq: this.nextSeq++, requestedAt: this.now(), userId: e.userId, segment: 0 };
    if (e.deviceId !== undefined) t.deviceId = e.deviceId;
    if (e.start !== undefined && e.end !== undefined) {
      t.start = e.start;
      t.end = e.end;
    }
    // Bracketed like a write, so a flush of this segment's memtable waits until the tombstone is in
    // the set (and so in the manifest that covers the segment).
    const mem = this.active;
    const synced = this.wal.appendTombstone(t);
    mem.begin(0);
    try {
      t.segment = await synced;
      this.tombstones.add(t);
    } catch (err) {
      throw new WalWriteError(err);
    } finally {
      mem.end(0);
    }
    this.cache.invalidate(e.userId, t.start ?? -Infinity, t.end === undefined ? Infinity : t.end - 1);
  }

  /**
   * Answers a query from a consistent snapshot of runs and memtables (see query.ts for the plan).
   * Every write acknowledged before the call is reflected.
   */
  async query(spec: QuerySpec): Promise<BucketPoint[]> {
    return toPoints(await this.queryJson(spec));
  }

  /** Like `query`, with the answer's `data` array as JSON text (what the HTTP layer sends). */
  async queryJson(spec: QuerySpec): Promise<QueryResult> {
    // At most `queryConcurrency` Polars queries at once: each collect() holds a thread of libuv's
    // pool for its whole duration, the pool that also carries the WAL's writes and fsyncs.
    if (this.queriesRunning >= this.config.queryConcurrency) {
      await new Promise<void>((resolve) => this.queriesWaiting.push(resolve));
    } else this.queriesRunning++;
    try {
      return await this.queryNow(spec);
    } finally {
      const next = this.queriesWaiting.shift();
      if (next) next();
      else this.queriesRunning--;
    }
  }

  private async queryNow(spec: QuerySpec): Promise<QueryResult> {
    // Retention: nothing below the horizon is ever answered (whatever is still on disk).
    const horizon = this.horizon();
    if (horizon > spec.start) {
      if (horizon >= spec.end) return { count: 0, json: "[]" };
      spec = { ...spec, start: Math.ceil(horizon) };
    }
    const started = performance.now();
    const runs = this.runs.acquire(spec.start, spec.end);
    try {
      await this.checkRuns(runs);
    } catch (err) {
      this.runs.release(runs);
      throw err;
    }
    const memtables: pl.DataFrame[] = [];
    const memtableDevices: string[] = [];
    const memtableDays = new Set<string>();
    const memSpans: Array<readonly [number, number]> = [];
    let memMayRepeat = false;
    const memOwners: Memtable[] = [];
    for (const m of [...this.immutables, this.active]) {
      if (m.rows === 0 || m.minTs >= spec.end || m.maxTs < spec.start) continue;
      const user = m.userSpan(spec.userId);
      if (user === undefined || user.minTs >= spec.end || user.maxTs < spec.start) continue; // nothing of this user
      const frames = m.frames();
      memtables.push(...frames);
      for (const _ of frames) memOwners.push(m);
      memtableDevices.push(...m.deviceIds());
      for (const d of m.days) memtableDays.add(dayName(d));
      memSpans.push([user.minTs, user.maxTs]);
      memMayRepeat ||= user.mayRepeat;
    }
    try {
      const planned = runs.map((h) => ({
        meta: h.meta,
        path: h.path,
        rollupPath: h.meta.rollup && h.rollupOk ? path.join(this.config.dataDir, h.meta.rollup.file) : undefined,
      }));
      // Tombstones cannot mask pre-aggregated rollups: the days they touch are read raw, like the
      // days a memtable holds (the mask applies to raw rows in the plan).
      const tombstones = this.tombstones.forUser(spec.userId);
      const rawDays = tombstones.length === 0 ? memtableDays : withTombstonedDays(memtableDays, tombstones, spec);
      const planSplit = planRunSources(spec, planned, rawDays);
      // Raw rows need no de-duplication when no identity can occur twice: each memtable's rows of
      // this user arrived in order per device, and all raw sources' time spans are disjoint.
      const disjoint = !memMayRepeat &&
        spansDisjoint([...memSpans, ...planSplit.runs.map((r) => r.span ?? [-Infinity, Infinity] as const)]);
      const sources = { ...planSplit, memtables, memtableDevices, disjoint, tombstones } as QuerySources;
      // The memtables' per-minute aggregates cannot be masked either.
      if (disjoint && spec.bucketMs % MINUTE_MS === 0 && tombstones.length === 0) {
        this.useMinuteAggregates(spec, sources, memOwners);
      }
      return await runQuery(sources, spec, this.ranked);
    } finally {
      this.runs.release(runs);
      this.metrics.queryDuration.observe((performance.now() - started) / 1000);
    }
  }

  /**
   * Lets each memtable answer the whole minutes of the range from its per-minute aggregates (its
   * frames then read only the partial minutes at the range's ends). Pre: the sources are disjoint
   * (no identity twice) and buckets are whole minutes.
   */
  private useMinuteAggregates(spec: QuerySpec, sources: QuerySources, owners: readonly Memtable[]): void {
    const lo = Math.ceil(spec.start / MINUTE_MS) * MINUTE_MS;
    const hi = Math.floor(spec.end / MINUTE_MS) * MINUTE_MS;
    if (lo >= hi) return;
    const edges: Window[] = [];
    if (spec.start < lo) edges.push([spec.start, lo]);
    if (hi < spec.end) edges.push([hi, spec.end]);
    const windows: Array<readonly Window[]> = owners.map(() => [[spec.start, spec.end]]);
    const rollups = sources.rollups ?? [];
    for (const m of new Set(owners)) {
      const frame = m.minuteFrame(spec.userId, lo, hi);
      if (frame === undefined) continue;
      rollups.push({ frame, window: [lo, hi], devices: m.deviceIds() });
      owners.forEach((o, i) => {
        if (o === m) windows[i] = edges;
      });
    }
    sources.rollups = rollups;
    sources.memtableWindows = windows;
  }

  /**
   * A query through the result cache; `body` is the JSON answer or undefined for "no data".
   * The cache is exact: see result-cache.ts.
   */
  async queryCached(
    spec: QuerySpec,
    render: (result: QueryResult) => string,
  ): Promise<{ body: string | undefined; cached: boolean }> {
    // An answer whose range reaches below the retention horizon changes as the horizon moves:
    // never cached. Above it, a cached answer stays exact (the horizon only rises).
    if (this.horizon() > spec.start) {
      const result = await this.queryJson(spec);
      return { body: result.count === 0 ? undefined : render(result), cached: false };
    }
    const key = `${spec.userId}|${spec.deviceId ?? ""}|${spec.start}|${spec.end}|${spec.bucketMs}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.metrics.cacheHits.inc();
      return { body: hit === "" ? undefined : hit, cached: true };
    }
    this.metrics.cacheMisses.inc();
    const version = this.cache.version(spec.userId);
    const result = await this.queryJson(spec);
    const body = result.count === 0 ? undefined : render(result);
    this.cache.put(key, { user: spec.userId, start: spec.start, end: spec.end }, body ?? "", version);
    return { body, cached: false };
  }

  /** The retention horizon now: readings older than it are never answered (-Infinity without retention). */
  horizon(): number {
    return retentionHorizon(this.now(), this.config.retentionMs);
  }

  /**
   * Drops the runs of whole UTC days below the retention horizon: manifest edit first, then the
   * files are unlinked (once no query reads them). Returns the days dropped.
   */
  async dropExpiredDays(): Promise<string[]> {
    if (this.config.retentionMs === undefined) return [];
    return await this.exclusive(async () => {
      const expired = expiredRuns(this.manifest.runs, this.horizon());
      if (expired.length === 0) return [];
      await this.replaceRuns(expired, []);
      const days = [...new Set(expired.map((r) => r.day))].sort();
      this.log.info("retention: expired days dropped", {
        days,
        runs: expired.length,
        rows: expired.reduce((n, r) => n + r.rows, 0),
        horizon: new Date(this.horizon()).toISOString(),
      });
      return days;
    });
  }

  /**
   * Runs `fn` while no other run-rewriting job (compaction, purge, retention drop) runs, so that
   * no job publishes an output built from runs another job has replaced meanwhile.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.runsLock.then(fn);
    this.runsLock = next.catch(() => {});
    return next;
  }

  /** Seals the active memtable (if it holds rows) and flushes everything; resolves when all is in runs. */
  async flush(): Promise<void> {
    this.rotate();
    while (this.immutables.length > 0) {
      this.scheduleFlush();
      await this.flushLoop;
    }
  }

  /**
   * Stops: refuses new writes, flushes every memtable to runs, closes the WAL and releases the lock.
   * Pre: no write is in progress that the caller still waits on (the HTTP layer drains first).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    clearInterval(this.timer);
    await this.compactor?.stop();
    await this.verifying;
    await this.lifecycle;
    try {
      await this.flush();
    } catch (err) {
      this.log.error("flush at shutdown failed; the WAL still holds the data and start-up will replay it", { err });
    }
    await this.wal.close();
    await releaseLock(this.config.dataDir);
    this.closed = true;
    this.log.info("closed", {});
  }

  /** True from the moment `close()` is called. */
  isClosing(): boolean {
    return this.closing;
  }

  /**
   * Why the engine no longer acknowledges writes (a background WAL fdatasync failed: restart it),
   * or undefined while it does.
   */
  failure(): Error | undefined {
    return this.wal.failure() ?? this.damaged;
  }

  /**
   * Checks the checksums of live runs before they are read (each file once per process).
   * @throws DamagedError naming the first damaged run; the engine then refuses writes.
   */
  async verifyRuns(metas: readonly RunMeta[]): Promise<void> {
    await this.checkRuns(this.runs.handles(metas.map((m) => m.id)));
  }

  private async checkRuns(handles: readonly RunHandle[]): Promise<void> {
    try {
      await this.runs.verify(handles);
    } catch (err) {
      if (!(err instanceof RunCorruptError)) throw err;
      if (this.damaged === undefined) {
        this.damaged = new DamagedError(err);
        this.log.error("damaged run file; writes and the queries that need it are refused", { err: err.message });
      }
      throw new DamagedError(err);
    }
  }

  /** The background pass: checks every run not yet checked, one file at a time, until close. */
  private async verifyAll(): Promise<void> {
    const started = performance.now();
    // Held like a query's snapshot: a run that retention, a purge or compaction retires meanwhile
    // keeps its file until the pass is done with it (a retired file is not a damaged one).
    const snapshot = this.runs.acquire(-Infinity, Infinity);
    try {
      for (const h of snapshot) {
        if (this.closing) return;
        if (h.checked !== undefined || h.obsolete) continue;
        try {
          await this.checkRuns([h]);
        } catch {
          return; // logged by checkRuns
        }
      }
    } finally {
      this.runs.release(snapshot);
    }
    this.log.info("run checksums verified", { ms: Math.round(performance.now() - started) });
  }

  /** A snapshot of counters for /metrics and tests. */
  stats(): {
    memtableRows: number;
    memtableBytes: number;
    immutableMemtables: number;
    runs: RunMeta[];
    nextSeq: number;
    flushedSeq: number;
  } {
    return {
      memtableRows: this.memtableRows(),
      memtableBytes: this.memoryBytes(),
      immutableMemtables: this.immutables.length,
      runs: this.manifest.runs.slice(),
      nextSeq: this.nextSeq,
      flushedSeq: this.manifest.flushedSeq,
    };
  }

  /** The live runs of the manifest (for the compactor). */
  liveRuns(): RunMeta[] {
    return this.manifest.runs.slice();
  }

  /**
   * Reserves a run id. Ids are never reused while the process lives; an id reserved but not yet in
   * a published manifest may be reused after a crash, when its file has been removed as an orphan.
   */
  reserveRunId(): number {
    return this.nextRunId++;
  }

  /**
   * Replaces `inputs` by `outputs` in the manifest atomically (the compactor's publish step).
   * Input files are deleted once no query reads them.
   */
  async replaceRuns(inputs: RunMeta[], outputs: RunMeta[]): Promise<void> {
    const gone = new Set(inputs.map((r) => r.id));
    await this.publishOrDiscard(
      outputs,
      (m) => ({ ...m, runs: [...m.runs.filter((r) => !gone.has(r.id)), ...outputs] }),
    );
    // Swap in memory in one synchronous step (queries see inputs or output, never both), then
    // delete the files no query is reading (the others go when their last reader is done).
    this.runs.add(outputs);
    const retired = this.runs.retire(gone);
    crashPoint("compaction-after-manifest");
    await this.runs.deleteUnread(retired);
  }

  private memtableRows(): number {
    return this.immutables.reduce((sum, m) => sum + m.rows, this.active.rows);
  }

  private memoryBytes(): number {
    let bytes = this.active.approxBytes();
    for (const m of this.immutables) bytes += m.approxBytes();
    return bytes;
  }

  /** Invalidates, per user, the cached answers whose range meets the span of the written timestamps. */
  private invalidate(readings: readonly Reading[]): void {
    const spans = new Map<string, { min: number; max: number }>();
    for (const r of readings) {
      const s = spans.get(r.userId);
      if (!s) spans.set(r.userId, { min: r.ts, max: r.ts });
      else {
        if (r.ts < s.min) s.min = r.ts;
        if (r.ts > s.max) s.max = r.ts;
      }
    }
    for (const [user, s] of spans) this.cache.invalidate(user, s.min, s.max);
  }

  /**
   * One background lifecycle pass: purge erasures that are due, drop expired days. Errors are
   * logged and retried at the next pass (pending erasures stay in the manifest).
   */
  async lifecyclePass(): Promise<void> {
    try {
      await this.purger.maybeRun();
    } catch (err) {
      this.log.error("purge failed; will retry", { err });
    }
    try {
      await this.dropExpiredDays();
    } catch (err) {
      this.log.error("retention drop failed; will retry", { err });
    }
  }

  /** The highest WAL segment the manifest covers (purge.ts). */
  coveredSegment(): number {
    return this.manifest.walSegment;
  }

  /**
   * Flushes until the manifest covers WAL segment `segment` (and the segments up to it are
   * deleted), rotating the WAL first if `segment` is still current, even with an empty memtable.
   */
  async flushThrough(segment: number): Promise<void> {
    if (this.manifest.walSegment >= segment) return;
    if (this.wal.currentSegment() <= segment) this.rotate(true);
    // Memtables flush in WAL order, each raising walSegment to its last segment: wait for one flush
    // at a time until the segment is covered (under sustained writes the flush loop itself may never
    // be idle). A memtable's id is not its first segment (the replayed memtable after a restart
    // covers every unflushed segment and has the highest id), so any sealed memtable counts.
    while (this.manifest.walSegment < segment && this.immutables.length > 0) {
      const flushed = new Promise<void>((resolve) => this.flushWaiters.push(resolve));
      this.scheduleFlush();
      await flushed;
    }
    if (this.manifest.walSegment < segment) {
      // No sealed memtable is left and the active one is newer: nothing unflushed holds records of
      // those segments (e.g. after a manifest rebuild, whose manifest covers no segment). Record
      // that they are covered, and delete what is left of them.
      if (this.active.id <= segment) throw new Error(`could not flush through WAL segment ${segment}`);
      await this.updateManifest((m) => ({ ...m, walSegment: Math.max(m.walSegment, segment) }));
      await this.wal.deleteSegmentsThrough(segment);
    }
  }

  /** Retires purged tombstones: out of the live set, out of the manifest (durably). */
  async retireTombstones(seqs: readonly number[]): Promise<void> {
    const retired = this.tombstones.all().filter((t) => seqs.includes(t.seq));
    if (retired.length === 0) return;
    this.tombstones.retire(seqs);
    const top = Math.max(...retired.map((t) => t.seq));
    try {
      await this.updateManifest((m) => ({ ...m, flushedSeq: Math.max(m.flushedSeq, top) }));
    } catch (err) {
      for (const t of retired) this.tombstones.add(t);
      throw err;
    }
    this.metrics.erasuresPurged.inc(retired.length);
  }

  /** Seals the active memtable and starts a new one with a new WAL segment. Synchronous. */
  private rotate(force = false): void {
    if (this.active.committedAndPendingRows === 0 && !force) return;
    // The segment the WAL was writing (normally the memtable's own; a later one if the WAL moved to
    // a fresh segment after a write error): its records are all in this memtable.
    const closed = this.wal.rotate();
    this.active.seal(closed);
    this.immutables.push(this.active);
    this.active = new Memtable(this.wal.currentSegment());
    this.scheduleFlush();
  }

  private tick(): void {
    if (this.closing) return;
    const now = Date.now();
    const every = Math.min(LIFECYCLE_EVERY_MS, Math.max(1000, this.config.erasureDeadlineMs / 8));
    if (!this.lifecycle && now - this.lastLifecycle >= every) {
      this.lastLifecycle = now;
      this.lifecycle = this.lifecyclePass().finally(() => (this.lifecycle = undefined));
    }
    try {
      if (
        this.active.committedAndPendingRows > 0 && Date.now() - this.active.createdAt >= this.config.flushIntervalMs
      ) this.rotate();
    } catch (err) {
      this.log.error("could not seal the memtable; will retry", { err });
    }
  }

  /** Brings the gauges of `metrics` up to date (called before a scrape). */
  refreshGauges(): void {
    const m = this.metrics;
    m.memtableRows.set(this.memtableRows());
    m.memtableBytes.set(this.memoryBytes());
    m.immutableMemtables.set(this.immutables.length);
    m.setWalStats(this.wal.stats());
    m.runs.reset();
    let bytes = 0;
    const perLevel = new Map<number, number>();
    for (const r of this.manifest.runs) {
      perLevel.set(r.level, (perLevel.get(r.level) ?? 0) + 1);
      bytes += r.bytes;
    }
    for (const [level, n] of perLevel) m.runs.set({ level: String(level) }, n);
    m.runBytes.set(bytes);
    m.writeAmplification.set(this.bytesFlushed > 0 ? (this.bytesFlushed + this.bytesCompacted) / this.bytesFlushed : 0);
    m.erasuresPending.set(this.tombstones.size);
    const oldest = this.tombstones.oldestRequestedAt();
    m.erasureOldestAge.set(oldest === undefined ? 0 : Math.max(0, (this.now() - oldest) / 1000));
  }

  private scheduleFlush(): void {
    if (this.flushLoop) return;
    this.flushLoop = (async () => {
      let delay = 100;
      try {
        while (this.immutables.length > 0) {
          try {
            await this.flushOne(this.immutables[0]);
            delay = 100;
            this.wakeFlushWaiters();
          } catch (err) {
            this.wakeFlushWaiters();
            this.metrics.flushFailures.inc();
            this.log.error("flush failed; will retry", { err, memtable: this.immutables[0]?.id, retryInMs: delay });
            if (this.closing && delay > 2000) throw err;
            await new Promise((r) => setTimeout(r, delay));
            delay = Math.min(delay * 2, 30_000);
          }
        }
      } finally {
        this.flushLoop = undefined;
        this.wakeFlushWaiters();
      }
    })();
    this.flushLoop.catch(() => {});
  }

  private wakeFlushWaiters(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiters) w();
  }

  /** Writes one sealed memtable as runs, publishes them, drops its WAL segment. */
  private async flushOne(mem: Memtable): Promise<void> {
    const started = performance.now();
    await mem.drained(); // writes begun before the seal land first
    const metas = await writeMemtableRuns(this.config.dataDir, mem, () => this.reserveRunId());
    await this.publishOrDiscard(metas, (m) => ({
      ...m,
      runs: [...m.runs, ...metas],
      flushedSeq: Math.max(m.flushedSeq, mem.maxSeq),
      walSegment: Math.max(m.walSegment, mem.lastSegment),
    }));
    // Publish in one synchronous step: queries see either the memtable or its runs, never both/neither.
    this.runs.add(metas);
    this.immutables.shift();
    mem.release();
    crashPoint("flush-before-wal-delete");
    await this.wal.deleteSegmentsThrough(mem.lastSegment);
    const seconds = (performance.now() - started) / 1000;
    this.metrics.flushes.inc();
    const written = metas.reduce((sum, meta) => sum + meta.bytes, 0);
    this.bytesFlushed += written;
    this.metrics.bytesFlushed.inc(written);
    this.metrics.flushDuration.observe(seconds);
    this.log.info("flush", {
      memtable: mem.id,
      rows: mem.rows,
      runs: metas.map((m) => m.file),
      ms: Math.round(seconds * 1000),
    });
    this.compactor?.noteFlush(metas.map((m) => m.day));
  }

  /**
   * Publishes new runs `fresh` with `change`; if that fails, their files go: at once when the
   * manifest on disk is surely the old one, else after the next manifest that does not name them is
   * durable (until then a crash may leave a manifest that names them).
   */
  private async publishOrDiscard(fresh: RunMeta[], change: (m: ManifestData) => ManifestData): Promise<void> {
    try {
      await this.updateManifest(change);
    } catch (err) {
      if (err instanceof MaybeWrittenError) this.unpublished.push(...fresh.map((r) => r.file));
      else await removeRunFiles(this.config.dataDir, fresh.map((r) => r.file));
      throw err;
    }
  }

  /**
   * Serializes manifest writes (flush, compaction and purge publish). Every manifest written names
   * the live tombstones, so a tombstone outlives the WAL segment that logged it.
   */
  updateManifest(change: (m: ManifestData) => ManifestData): Promise<void> {
    const next = this.manifestLock.then(async () => {
      const updated = withTombstones({ ...change(this.manifest), nextRunId: this.nextRunId }, this.tombstones.all());
      await writeManifest(this.config.dataDir, updated);
      this.manifest = updated;
      if (this.unpublished.length > 0) {
        // A durable manifest built on this.manifest, which never named them: they are orphans now.
        const files = this.unpublished.splice(0);
        await removeRunFiles(this.config.dataDir, files);
      }
    });
    this.manifestLock = next.catch(() => {});
    return next;
  }
}

/**
 * Removes run files the manifest does not name (half-written flushes and compactions), and checks
 * that every run it names is present with its size (a stat each; checksums are checked later: on
 * first read, or by the background pass, so start-up does not read every file).
 */
async function checkRunFiles(dataDir: string, manifest: ManifestData, log: Logger): Promise<void> {
  const live = new Set(manifest.runs.flatMap((r) => (r.rollup ? [r.file, r.rollup.file] : [r.file])));
  for (const file of await listRunFiles(dataDir)) {
    if (live.has(file)) continue;
    log.warn("removing orphan run file", { file });
    await fs.promises.rm(path.join(dataDir, file), { force: true, recursive: true });
  }
  await Promise.all(manifest.runs.map((r) => checkRunSize(dataDir, r)));
  for (const r of manifest.runs) {
    if (r.rollup && !(await rollupIntact(dataDir, r.rollup))) {
      // Derived data: without it the run's day is read raw (exact, only slower).
      log.warn("run rollup missing or damaged; the run is read row by row", { file: r.rollup.file });
      delete r.rollup;
    }
  }
  for (const f of await fs.promises.readdir(dataDir)) {
    if (f.startsWith(".tmp-")) await fs.promises.rm(path.join(dataDir, f), { force: true });
  }
}

/**
 * Reads the manifest. An absent manifest is a new, empty database only if there are no run files
 * (it is then written at once); run files without a manifest mean the manifest was lost, and
 * treating them as orphans would delete every reading.
 */
async function readManifestOrRefuse(dataDir: string): Promise<ManifestData> {
  if (!fs.existsSync(path.join(dataDir, MANIFEST_FILE))) {
    const runs = (await listRunFiles(dataDir)).filter((f) =>
      f.startsWith("runs/") && f.endsWith(".parquet") && !path.basename(f).startsWith(".")
    );
    if (runs.length === 0) {
      // A new database: publish an empty manifest before any run can exist, so that from now on
      // "run files but no manifest" can only mean a lost manifest, never a crash in the first flush.
      const empty = structuredClone(EMPTY_MANIFEST);
      await writeManifest(dataDir, empty);
      return empty;
    }
    throw new Error(
      `${path.join(dataDir, MANIFEST_FILE)} is missing but ${runs.length} run file(s) exist under runs/. ` +
        `pulsedb will not guess; restore MANIFEST from a backup, or start once with PULSE_RECOVERY=rebuild-manifest ` +
        `to rebuild it from the run files (exact: see docs/corruption.md).`,
    );
  }
  return readManifest(dataDir);
}

/**
 * `days` plus every UTC day of the query's range that one of `tombstones` touches (the rollups of
 * those days cannot be masked, so they are read raw until the purge rewrites them).
 */
function withTombstonedDays(days: ReadonlySet<string>, tombstones: readonly Tombstone[], spec: QuerySpec): Set<string> {
  const out = new Set(days);
  for (let d = Math.floor(spec.start / DAY_MS) * DAY_MS; d < spec.end; d += DAY_MS) {
    const from = Math.max(d, spec.start);
    const to = Math.min(d + DAY_MS, spec.end);
    if (tombstonesTouch(tombstones, spec.userId, spec.deviceId, from, to)) out.add(dayName(d / DAY_MS));
  }
  return out;
}
