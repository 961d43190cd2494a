/**
 * Prometheus metrics (prom-client, custom metrics only: the default process collectors break under
 * Deno). One `Metrics` per engine, each with its own registry, so tests can build several.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

const FAST = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const SLOW = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

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
  readonly readingsAccepted = new Counter({ name: "pulsedb_readings_accepted_total", help: "Readings acknowledged (durable).", registers: [this.registry] });
  readonly readingsRejected = new Counter({
    name: "pulsedb_readings_rejected_total",
    help: "Readings or requests rejected, by reason.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: "pulsedb_http_request_duration_seconds",
    help: "HTTP request duration by route and status.",
    labelNames: ["method", "route", "status"] as const,
    buckets: FAST,
    registers: [this.registry],
  });
  readonly walSyncDuration = new Histogram({ name: "pulsedb_wal_sync_duration_seconds", help: "Duration of one WAL write+fsync cycle (group commit).", buckets: FAST, registers: [this.registry] });
  readonly walSyncBatch = new Histogram({
    name: "pulsedb_wal_sync_batch_records",
    help: "WAL records covered by one fsync.",
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    registers: [this.registry],
  });
  readonly memtableRows = new Gauge({ name: "pulsedb_memtable_rows", help: "Rows in memtables (active and waiting to flush).", registers: [this.registry] });
  readonly memtableBytes = new Gauge({ name: "pulsedb_memtable_bytes", help: "Approximate memory held by memtables.", registers: [this.registry] });
  readonly immutableMemtables = new Gauge({ name: "pulsedb_memtables_waiting_flush", help: "Sealed memtables not yet flushed (flush backlog).", registers: [this.registry] });
  readonly runs = new Gauge({ name: "pulsedb_runs", help: "Run files by level.", labelNames: ["level"] as const, registers: [this.registry] });
  readonly runBytes = new Gauge({ name: "pulsedb_run_bytes", help: "Bytes of run files on disk.", registers: [this.registry] });
  readonly flushes = new Counter({ name: "pulsedb_flushes_total", help: "Memtable flushes completed.", registers: [this.registry] });
  readonly flushFailures = new Counter({ name: "pulsedb_flush_failures_total", help: "Flush attempts that failed (retried).", registers: [this.registry] });
  readonly flushDuration = new Histogram({ name: "pulsedb_flush_duration_seconds", help: "Duration of a memtable flush.", buckets: SLOW, registers: [this.registry] });
  readonly compactions = new Counter({ name: "pulsedb_compactions_total", help: "Compactions completed.", registers: [this.registry] });
  readonly compactionFailures = new Counter({ name: "pulsedb_compaction_failures_total", help: "Compactions that failed (retried later).", registers: [this.registry] });
  readonly compactionDuration = new Histogram({ name: "pulsedb_compaction_duration_seconds", help: "Duration of a compaction.", buckets: SLOW, registers: [this.registry] });
  readonly bytesFlushed = new Counter({ name: "pulsedb_flushed_bytes_total", help: "Bytes written by flushes.", registers: [this.registry] });
  readonly bytesCompacted = new Counter({ name: "pulsedb_compacted_bytes_total", help: "Bytes written by compactions.", registers: [this.registry] });
  readonly writeAmplification = new Gauge({
    name: "pulsedb_write_amplification",
    help: "(bytes flushed + bytes compacted) / bytes flushed since start.",
    registers: [this.registry],
  });
  readonly queryDuration = new Histogram({ name: "pulsedb_query_duration_seconds", help: "Engine query duration (cache misses).", buckets: FAST, registers: [this.registry] });
  readonly cacheHits = new Counter({ name: "pulsedb_cache_hits_total", help: "Result cache hits.", registers: [this.registry] });
  readonly cacheMisses = new Counter({ name: "pulsedb_cache_misses_total", help: "Result cache misses.", registers: [this.registry] });
  readonly backpressure = new Counter({ name: "pulsedb_backpressure_rejections_total", help: "Writes answered 503 because memtables were at their budget.", registers: [this.registry] });
}
