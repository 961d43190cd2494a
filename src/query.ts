/**
 * The read path: one Polars plan over the runs that overlap the range and the memtables.
 *
 * Steps, all inside Polars (planned through SQLContext, which builds the plan in Rust: building
 * expressions one by one from JavaScript costs ~1 ms each on Node 20):
 *   1. scan each source with the user, device and time predicate pushed down (Parquet statistics
 *      prune row groups);
 *   2. de-duplicate by (device, timestamp), keeping the highest sequence (last write wins), unless
 *      no two sources can hold the same identity (runs are de-duplicated and never span two days);
 *   3. bucket (`ts - ts % bucket`), mean per (bucket, device);
 *   4. per bucket keep the device of highest priority (lowest number; unknown devices rank after
 *      every configured one, then by device_id ascending);
 *   5. round to 2 decimals, format the bucket start, sort by bucket.
 * Polars also writes the answer's `data` array as JSON (`writeJSON`), so no row of the answer is
 * touched by JavaScript at all.
 *
 * @module
 */
import pl from "nodejs-polars";
import type { DevicePriority } from "./config.ts";
import { ID_PATTERN } from "./reading.ts";
import { checked } from "./run.ts";

/** What a query asks. Bounds are ms since epoch, half-open `[start, end)`. */
export interface QuerySpec {
  userId: string;
  deviceId?: string;
  start: number;
  end: number;
  bucketMs: number;
}

/** The sources a query reads, taken as one consistent snapshot. */
export interface QuerySources {
  /** Absolute paths of run files overlapping the range, with their UTC day. */
  runs: Array<{ path: string; day: string }>;
  /** Memtable frames (raw memtable schema: user_id/device_id categorical, ts/seq float64). */
  memtables: pl.DataFrame[];
}

/** One bucket of an answer. */
export interface BucketPoint {
  timestamp: string;
  heart_rate: number;
  device_id: string;
}

/** The bucket start as `YYYY-MM-DDTHH:MM:SSZ` (4-digit years: text order is time order). */
const TIMESTAMP_TEXT = "STRFTIME(CAST(bucket AS TIMESTAMP(3)), '%Y-%m-%dT%H:%M:%SZ')";

/** Rank given to devices missing from the priority table (below every configured device). */
const UNLISTED = 2_147_483_647;

/**
 * Builds the constant priority frame once per configuration.
 *
 * @example
 * ```ts
 * const prio = priorityFrame(new Map([["device_a", 1], ["device_b", 2]]));
 * ```
 */
export function priorityFrame(priority: DevicePriority): pl.DataFrame {
  const devices = [...priority.keys()];
  return pl.DataFrame({
    pdev: pl.Series("pdev", devices, pl.Utf8),
    prio: pl.Series("prio", devices.map((d) => priority.get(d)!), pl.Int32),
  });
}

/**
 * Builds the SQL text of a query (exported for tests and for `EXPLAIN`-style debugging).
 * Ids are spliced as literals only after checking them against ID_PATTERN (no quotes possible).
 *
 * @example
 * ```ts
 * const sql = buildQuerySql(spec, 2, 1, true);
 * ```
 */
export function buildQuerySql(spec: QuerySpec, runCount: number, memCount: number, dedup: boolean): string {
  if (!ID_PATTERN.test(spec.userId) || (spec.deviceId !== undefined && !ID_PATTERN.test(spec.deviceId))) {
    throw new Error("query ids must be validated before planning");
  }
  const { start, end, bucketMs } = spec;
  if (![start, end, bucketMs].every(Number.isSafeInteger)) throw new Error("query bounds must be integers");
  const dev = spec.deviceId === undefined ? "" : ` AND device_id = '${spec.deviceId}'`;
  const parts: string[] = [];
  for (let i = 0; i < runCount; i++) {
    parts.push(
      `SELECT device_id, CAST(timestamp AS BIGINT) AS ts, heart_rate, seq FROM r${i} ` +
        `WHERE user_id = '${spec.userId}'${dev} AND timestamp >= CAST(${start} AS TIMESTAMP(3)) AND timestamp < CAST(${end} AS TIMESTAMP(3))`,
    );
  }
  for (let i = 0; i < memCount; i++) {
    parts.push(
      `SELECT device_id, CAST(ts AS BIGINT) AS ts, heart_rate, CAST(seq AS BIGINT) AS seq FROM ` +
        `(SELECT CAST(user_id AS VARCHAR) AS user_id, CAST(device_id AS VARCHAR) AS device_id, ts, heart_rate, seq FROM m${i} WHERE ts >= ${start} AND ts < ${end}) ` +
        `WHERE user_id = '${spec.userId}'${dev}`,
    );
  }
  const deduped = dedup
    ? `d AS (SELECT device_id, ts, heart_rate FROM (SELECT device_id, ts, heart_rate, seq, MAX(seq) OVER (PARTITION BY device_id, ts) AS mx FROM src) WHERE seq = mx)`
    : `d AS (SELECT device_id, ts, heart_rate FROM src)`;
  const grouped = `g AS (SELECT device_id, ts - (ts % ${bucketMs}) AS bucket, AVG(heart_rate) AS hr FROM d GROUP BY device_id, bucket)`;
  if (spec.deviceId !== undefined) {
    return `WITH src AS (${parts.join(" UNION ALL ")}), ${deduped}, ${grouped} ` +
      `SELECT ${TIMESTAMP_TEXT} AS timestamp, ROUND(hr, 2) AS heart_rate, device_id FROM g ORDER BY timestamp`;
  }
  return `WITH src AS (${parts.join(" UNION ALL ")}), ${deduped}, ${grouped}, ` +
    `j AS (SELECT g.bucket AS bucket, g.hr AS hr, g.device_id AS device_id, COALESCE(p.prio, ${UNLISTED}) AS prio FROM g LEFT JOIN prio p ON g.device_id = p.pdev), ` +
    `w AS (SELECT bucket, hr, device_id FROM (SELECT bucket, hr, device_id, prio, MIN(prio) OVER (PARTITION BY bucket) AS best FROM j) WHERE prio = best), ` +
    `x AS (SELECT bucket, hr, device_id, MIN(device_id) OVER (PARTITION BY bucket) AS first_dev FROM w) ` +
    `SELECT ${TIMESTAMP_TEXT} AS timestamp, ROUND(hr, 2) AS heart_rate, device_id FROM x WHERE device_id = first_dev ORDER BY timestamp`;
}

/** A query's answer: the `data` array as JSON text, and its length. */
export interface QueryResult {
  count: number;
  /** `[{"timestamp":...,"heart_rate":...,"device_id":...},...]`, sorted by timestamp. */
  json: string;
}

/**
 * Runs a query over a snapshot of sources. `count` is 0 (and `json` `[]`) when the user (and
 * device) has no reading in the range. Never blocks the event loop for the scan itself (lazy
 * `collect()` runs on Polars' thread pool).
 *
 * @example
 * ```ts
 * const { count, json } = await runQuery({ runs, memtables }, spec, prio);
 * ```
 */
export async function runQuery(sources: QuerySources, spec: QuerySpec, prio: pl.DataFrame): Promise<QueryResult> {
  const runCount = sources.runs.length;
  const memCount = sources.memtables.length;
  if (runCount + memCount === 0) return { count: 0, json: "[]" };
  const tables: Record<string, pl.LazyDataFrame> = { prio: prio.lazy() };
  const days = new Set<string>();
  let sharedDay = false;
  sources.runs.forEach((r, i) => {
    tables[`r${i}`] = pl.scanParquet(r.path);
    if (days.has(r.day)) sharedDay = true;
    days.add(r.day);
  });
  sources.memtables.forEach((m, i) => {
    tables[`m${i}`] = m.lazy();
  });
  // Runs hold no duplicates and never span two days: identities can only collide when a memtable
  // is involved or two runs cover the same day.
  const dedup = memCount > 0 || sharedDay;
  const sql = buildQuerySql(spec, runCount, memCount, dedup);
  const df = await checked(pl.SQLContext(tables).execute(sql)).collect();
  if (df.height === 0) return { count: 0, json: "[]" };
  return { count: df.height, json: String(df.writeJSON({ format: "json" } as Parameters<pl.DataFrame["writeJSON"]>[0])) };
}

/**
 * The answer as objects (for tests and tools; the HTTP path uses the JSON text as it is).
 *
 * @example
 * ```ts
 * const points = toPoints(await runQuery(sources, spec, prio));
 * ```
 */
export function toPoints(result: QueryResult): BucketPoint[] {
  return JSON.parse(result.json) as BucketPoint[];
}
