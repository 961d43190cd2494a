/**
 * Prometheus metrics (prom-client, custom metrics only: the default process collectors break under
 * Deno). One `Metrics` per engine, each with its own registry, so tests can build several.
 *
 * Every metric is listed, with its meaning, in docs/operating.md.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

const FAST = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const SLOW = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Why readings were rejected (the `reason` label of `pulsedb_readings_rejected_total`):
 * - `invalid`: 400, a reading breaks a rule (or the body is not a reading/array, or an empty array);
 * - `malformed_json`: 400, the body is not JSON;
 * - `too_large`: 413, the body is over PULSE_MAX_BODY_BYTES;
 * - `batch_too_large`: 413, more than 10,000 readings in a batch;
 * - `overloaded`: 503, memtables at their memory budget (back-pressure);
 * - `unavailable`: 503, the server is starting (WAL replay) or shutting down;
 * - `wal_error`: 503, the write-ahead log could not be written or synced.
 */
export const REJECT_REASONS = [
  "invalid",
  "malformed_json",
  "too_large",
  "batch_too_large",
  "overloaded",
  "unavailable",
  "wal_error",
] as const;
/** A `reason` label value of `pulsedb_readings_rejected_total`. */
export type RejectReason = (typeof REJECT_REASONS)[number];

/** What the write-ahead log reports about its syncs (`Wal.stats()`). */
export interface WalSyncStats {
  /** Record fdatasyncs done since the log was opened. */
  syncs: number;
  /** Records those syncs covered. */
  syncedRecords: number;
  /** Duration of the latest sync, in ms. */
  lastSyncMs: number;
  /** Appends not yet settled (written and synced, or failed). */
  pendingRecords: number;
}

/**
 * The metrics pulsedb exports at `/metrics`.
 *
 * @example
 * ```ts
 * const m = new Metrics();
 * m.readingsAccepted.inc(10);
 * const text = await m.registry.metrics();
 * ```
 */
export class Metrics {
  readonly registry = new Registry();
  readonly readingsAccepted = new Counter({
    name: "pulsedb_readings_accepted_total",
    help: "Readings acknowledged (durable).",
    registers: [this.registry],
  });
  readonly readingsRejected = new Counter({
    name: "pulsedb_readings_rejected_total",
    help:
      "Readings refused, by reason: every reading of a refused request counts (a batch is all-or-nothing); a body that cannot be read or holds no readings counts as one.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  /** HTTP request duration by method, route pattern and status; see {@link HttpDurationHistogram}. */
  readonly httpDuration: HttpDurationHistogram = new HttpDurationHistogram(this.registry, FAST);
  readonly walSyncDuration = new Histogram({
    name: "pulsedb_wal_sync_duration_seconds",
    help: "Duration of one WAL fdatasync (group commit).",
    buckets: FAST,
    registers: [this.registry],
  });
  readonly walSyncBatch = new Histogram({
    name: "pulsedb_wal_sync_batch_records",
    help: "WAL records covered by one fdatasync (group commit size).",
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000],
    registers: [this.registry],
  });
  readonly walSyncs = new Counter({
    name: "pulsedb_wal_syncs_total",
    help: "WAL fdatasyncs done.",
    registers: [this.registry],
  });
  readonly walSyncedRecords = new Counter({
    name: "pulsedb_wal_synced_records_total",
    help: "WAL records covered by fdatasyncs.",
    registers: [this.registry],
  });
  readonly walLastSync = new Gauge({
    name: "pulsedb_wal_last_sync_seconds",
    help: "Duration of the latest WAL fdatasync.",
    registers: [this.registry],
  });
  readonly walPending = new Gauge({
    name: "pulsedb_wal_pending_records",
    help: "WAL appends waiting for their write and fdatasync.",
    registers: [this.registry],
  });
  readonly memtableRows = new Gauge({
    name: "pulsedb_memtable_rows",
    help: "Rows in memtables (active and waiting to flush): readings not yet in runs.",
    registers: [this.registry],
  });
  readonly memtableBytes = new Gauge({
    name: "pulsedb_memtable_bytes",
    help: "Approximate memory held by memtables.",
    registers: [this.registry],
  });
  readonly memoryBudget = new Gauge({
    name: "pulsedb_memory_budget_bytes",
    help: "Memtable memory budget (PULSE_MEMORY_BUDGET_MB); at it, writes get 503.",
    registers: [this.registry],
  });
  readonly immutableMemtables = new Gauge({
    name: "pulsedb_memtables_waiting_flush",
    help: "Sealed memtables not yet flushed (flush backlog).",
    registers: [this.registry],
  });
  readonly runs = new Gauge({
    name: "pulsedb_runs",
    help: "Run files by level.",
    labelNames: ["level"] as const,
    registers: [this.registry],
  });
  readonly runBytes = new Gauge({
    name: "pulsedb_run_bytes",
    help: "Bytes of run files on disk.",
    registers: [this.registry],
  });
  readonly flushes = new Counter({
    name: "pulsedb_flushes_total",
    help: "Memtable flushes completed.",
    registers: [this.registry],
  });
  readonly flushFailures = new Counter({
    name: "pulsedb_flush_failures_total",
    help: "Flush attempts that failed (retried).",
    registers: [this.registry],
  });
  readonly flushDuration = new Histogram({
    name: "pulsedb_flush_duration_seconds",
    help: "Duration of a memtable flush.",
    buckets: SLOW,
    registers: [this.registry],
  });
  readonly compactions = new Counter({
    name: "pulsedb_compactions_total",
    help: "Compactions completed.",
    registers: [this.registry],
  });
  readonly compactionFailures = new Counter({
    name: "pulsedb_compaction_failures_total",
    help: "Compactions that failed (retried later).",
    registers: [this.registry],
  });
  readonly compactionDuration = new Histogram({
    name: "pulsedb_compaction_duration_seconds",
    help: "Duration of a compaction.",
    buckets: SLOW,
    registers: [this.registry],
  });
  readonly bytesFlushed = new Counter({
    name: "pulsedb_flushed_bytes_total",
    help: "Bytes written by flushes.",
    registers: [this.registry],
  });
  readonly bytesCompacted = new Counter({
    name: "pulsedb_compacted_bytes_total",
    help: "Bytes written by compactions.",
    registers: [this.registry],
  });
  readonly writeAmplification = new Gauge({
    name: "pulsedb_write_amplification",
    help: "(bytes flushed + bytes compacted) / bytes flushed since start.",
    registers: [this.registry],
  });
  readonly queryDuration = new Histogram({
    name: "pulsedb_query_duration_seconds",
    help: "Engine query duration (cache misses).",
    buckets: FAST,
    registers: [this.registry],
  });
  readonly cacheHits = new Counter({
    name: "pulsedb_cache_hits_total",
    help: "Result cache hits.",
    registers: [this.registry],
  });
  readonly cacheMisses = new Counter({
    name: "pulsedb_cache_misses_total",
    help: "Result cache misses.",
    registers: [this.registry],
  });
  readonly erasuresPending = new Gauge({
    name: "pulsedb_erasures_pending",
    help: "DELETEs accepted whose readings are not yet purged from every file (masked in answers meanwhile).",
    registers: [this.registry],
  });
  readonly erasureOldestAge = new Gauge({
    name: "pulsedb_erasure_oldest_pending_age_seconds",
    help: "Age of the oldest pending erasure (0 when none); must stay below PULSE_ERASURE_DEADLINE.",
    registers: [this.registry],
  });
  readonly erasuresPurged = new Counter({
    name: "pulsedb_erasures_purged_total",
    help: "Erasures whose readings were purged from every file (tombstone retired).",
    registers: [this.registry],
  });
  readonly backpressure = new Counter({
    name: "pulsedb_backpressure_rejections_total",
    help: "Writes answered 503 because memtables were at their budget.",
    registers: [this.registry],
  });

  /** The WAL counters last seen by {@link setWalStats}. */
  private walSeen = { syncs: 0, syncedRecords: 0 };

  constructor() {
    // Every reason is exported from the start (at 0), so rate() and increase() see the series.
    for (const reason of REJECT_REASONS) this.readingsRejected.inc({ reason }, 0);
  }

  /** Counts `n` readings refused for `reason` (at least one: a refused request always counts). */
  reject(reason: RejectReason, n = 1): void {
    this.readingsRejected.inc({ reason }, n > 1 ? n : 1);
  }

  /**
   * Records one WAL fdatasync: its duration in ms and the records it covered (the WAL's sync hook).
   *
   * @example
   * ```ts
   * const metrics = new Metrics();
   * metrics.observeWalSync(0.8, 120);
   * ```
   */
  observeWalSync(ms: number, records: number): void {
    this.walSyncDuration.observe(ms / 1000);
    this.walSyncBatch.observe(records);
  }

  /**
   * Brings the WAL counters and gauges up to date from `Wal.stats()` (called before a scrape).
   * The counters advance by the difference to the previous call, so they stay monotonic.
   *
   * @example
   * ```ts
   * const metrics = new Metrics();
   * metrics.setWalStats({ syncs: 10, syncedRecords: 500, lastSyncMs: 0.9, pendingRecords: 3 });
   * ```
   */
  setWalStats(stats: WalSyncStats): void {
    const seen = this.walSeen;
    // A smaller value than last time means a new log (counters restarted): count it from zero.
    this.walSyncs.inc(stats.syncs >= seen.syncs ? stats.syncs - seen.syncs : stats.syncs);
    this.walSyncedRecords.inc(
      stats.syncedRecords >= seen.syncedRecords ? stats.syncedRecords - seen.syncedRecords : stats.syncedRecords,
    );
    this.walSeen = { syncs: stats.syncs, syncedRecords: stats.syncedRecords };
    this.walLastSync.set(stats.lastSyncMs / 1000);
    this.walPending.set(stats.pendingRecords);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP request durations

const METHODS = ["GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "other"] as const;

function methodIndex(method: string): number {
  switch (method) {
    case "GET":
      return 0;
    case "POST":
      return 1;
    case "HEAD":
      return 2;
    case "PUT":
      return 3;
    case "PATCH":
      return 4;
    case "DELETE":
      return 5;
    case "OPTIONS":
      return 6;
    default:
      return 7;
  }
}

/** One labelled series: per-bucket (non-cumulative) counts, the last slot being +Inf. */
interface Series {
  method: string;
  status: number;
  counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * The durations of the requests of one route pattern. `observe` allocates nothing once a
 * (method, status) pair has been seen.
 */
export class HttpRoute {
  /** Keyed by `methodIndex * 1000 + status`. */
  readonly series = new Map<number, Series>();

  constructor(
    readonly route: string,
    private readonly bounds: readonly number[],
  ) {}

  /** Records one request: its method, response status and duration in seconds. */
  observe(method: string, status: number, seconds: number): void {
    const m = methodIndex(method);
    const key = m * 1000 + status;
    let s = this.series.get(key);
    if (s === undefined) {
      s = { method: METHODS[m], status, counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]) i++;
    s.counts[i]++;
    s.sum += seconds;
    s.count++;
  }
}

/**
 * `pulsedb_http_request_duration_seconds{method,route,status}`: a Prometheus histogram kept in
 * typed arrays, because the HTTP layer observes every request (tens of thousands per second) and
 * prom-client's `Histogram.observe` hashes the label set on every call (~0.4 µs and several
 * allocations). Registered in a prom-client registry as a custom metric (`get()`), so it is
 * rendered with all the others. `route` is a route pattern from a fixed list, never a raw path.
 *
 * @example
 * ```ts
 * const metrics = new Metrics();
 * const health = metrics.httpDuration.route("/health");
 * health.observe("GET", 200, 0.00012);
 * ```
 */
export class HttpDurationHistogram {
  readonly name = "pulsedb_http_request_duration_seconds";
  readonly help =
    "HTTP request duration by method, route (the route pattern; `unmatched` for unknown paths) and status.";
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly routes = new Map<string, HttpRoute>();

  constructor(
    registry: Registry,
    private readonly bounds: readonly number[],
  ) {
    registry.registerMetric(this as unknown as Histogram);
  }

  /** The series of one route pattern (created on first use; call once per route, not per request). */
  route(pattern: string): HttpRoute {
    let r = this.routes.get(pattern);
    if (r === undefined) {
      r = new HttpRoute(pattern, this.bounds);
      this.routes.set(pattern, r);
    }
    return r;
  }

  /** prom-client's metric interface: the samples, rendered by the registry. */
  // deno-lint-ignore require-await -- prom-client awaits get(); the samples are ready at once
  async get(): Promise<
    {
      name: string;
      help: string;
      type: "histogram";
      aggregator: "sum";
      values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }>;
    }
  > {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    const bucket = `${this.name}_bucket`;
    for (const r of this.routes.values()) {
      for (const s of r.series.values()) {
        const base = { method: s.method, route: r.route, status: String(s.status) };
        let acc = 0;
        for (let i = 0; i < this.bounds.length; i++) {
          acc += s.counts[i];
          values.push({ labels: { ...base, le: this.bounds[i] }, value: acc, metricName: bucket });
        }
        values.push({ labels: { ...base, le: "+Inf" }, value: s.count, metricName: bucket });
        values.push({ labels: base, value: s.sum, metricName: `${this.name}_sum` });
        values.push({ labels: base, value: s.count, metricName: `${this.name}_count` });
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Forgets every observation (prom-client's `registry.resetMetrics()`). */
  reset(): void {
    for (const r of this.routes.values()) r.series.clear();
  }
}
