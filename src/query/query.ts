/**
 * The read path: one Polars plan over the runs that overlap the range and the memtables.
 *
 * Steps, all inside Polars (planned through SQLContext, which builds the plan in Rust: building
 * expressions one by one from JavaScript costs ~1 ms each on Node 20):
 *   1. scan each source with the user, device and time predicate pushed down (Parquet statistics
 *      prune row groups);
 *   2. de-duplicate by (device, timestamp), keeping the highest sequence (last write wins; copies of
 *      one write, which carry the same sequence, collapse to one), unless
 *      no two sources can hold the same identity (runs are de-duplicated and never span two days);
 *   3. bucket (`ts - ts % bucket`), mean per (bucket, device), grouping listed devices by their
 *      integer rank;
 *   4. per bucket keep the device of highest priority (lowest number; unknown devices rank after
 *      every configured one, then by device_id ascending);
 *   5. format the bucket start, sort by bucket; the mean is rounded to 2 decimals (round.ts) while
 *      the JSON text is finished.
 * Polars also writes the answer's `data` array as JSON (`writeJSON`), so no row of the answer is
 * touched by JavaScript at all.
 *
 * @module
 */
import pl from "nodejs-polars";
import type { DevicePriority } from "../ops/config.ts";
import { ID_PATTERN } from "../reading.ts";
import { round2 } from "./round.ts";
import { checked } from "../storage/run-sql.ts";
import type { Tombstone } from "../storage/tombstones.ts";
import { keepRowSql } from "./tombstone-mask.ts";

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
  /** Absolute paths of run files overlapping the range, with their UTC day and device list. */
  runs: Array<{ path: string; day: string; devices?: readonly string[] }>;
  /** Memtable frames (raw memtable schema: user_id/device_id categorical, ts/seq float64). */
  memtables: pl.DataFrame[];
  /** Every device_id the memtable frames may hold (empty without memtables). */
  memtableDevices?: readonly string[];
  /** Live tombstones of the query's user: rows they match are masked (tombstone-mask.ts). */
  tombstones?: readonly Tombstone[];
}

/** One bucket of an answer. */
export interface BucketPoint {
  timestamp: string;
  heart_rate: number;
  device_id: string;
}

/** A heart rate in Polars' JSON (shortest round-trip form of the float64 mean). */
const RATE = /"heart_rate":([0-9.eE+-]+)/g;

/** The bucket start as `YYYY-MM-DDTHH:MM:SSZ` (4-digit years: text order is time order). */
const TIMESTAMP_TEXT = "STRFTIME(CAST(bucket AS TIMESTAMP(3)), '%Y-%m-%dT%H:%M:%SZ')";

/**
 * The configured devices in priority order: by priority number, then by device_id (two devices
 * given the same number are ordered by name, as unlisted devices are). A device's position in this
 * list is its rank; every unlisted device ranks after all of them.
 *
 * @example
 * ```ts
 * rankDevices(new Map([["device_b", 2], ["device_a", 1]])); // ["device_a", "device_b"]
 * ```
 */
export function rankDevices(priority: DevicePriority): string[] {
  return [...priority.entries()].sort(([a, pa], [b, pb]) => pa - pb || (a < b ? -1 : a > b ? 1 : 0)).map(([d]) => d);
}

/** Above this many distinct devices in a query's sources, grouping falls back to device names. */
export const MAX_RANKED_DEVICES = 64;

/**
 * Builds the SQL text of a query (exported for tests and for `EXPLAIN`-style debugging).
 * Ids are spliced as literals only after checking them against ID_PATTERN (no quotes possible).
 *
 * Grouping is the costly step, and on this machine grouping on (integer, string) keys costs about
 * half again as much as on two integers. So when the sources' device lists are known (`order`: every
 * device they may hold, in answer priority: listed devices by priority, then unlisted ones by name),
 * each reading gets its device's rank as an integer and everything downstream groups on integers;
 * the name comes back from the rank at the end. Otherwise (`order` undefined) it groups on names.
 *
 * @param ranked the configured devices in priority order (see rankDevices).
 * @param order every device the sources may hold, in answer priority, or undefined.
 * @param keep a predicate over `device_id, ts, seq` rows must meet (tombstone masking), or undefined.
 * @example
 * ```ts
 * const sql = buildQuerySql(spec, ["device_a", "device_b"], 2, 1, true, ["device_a", "device_b", "zz"]);
 * ```
 */
export function buildQuerySql(
  spec: QuerySpec,
  ranked: readonly string[],
  runCount: number,
  memCount: number,
  dedup: boolean,
  order?: readonly string[],
  keep?: string,
): string {
  const ids = [spec.userId, ...(spec.deviceId === undefined ? [] : [spec.deviceId]), ...ranked, ...(order ?? [])];
  if (!ids.every((d) => ID_PATTERN.test(d))) throw new Error("query ids must be validated before planning");
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
  const src = keep === undefined
    ? `src AS (${parts.join(" UNION ALL ")})`
    : `src AS (SELECT * FROM (${parts.join(" UNION ALL ")}) WHERE ${keep})`;
  const bucket = `ts - (ts % ${bucketMs})`;
  const lastWrite = (key: string, cols: string) =>
    dedup
      ? `d AS (SELECT ${cols} FROM (SELECT DISTINCT ${cols}, seq FROM (SELECT ${cols}, seq, MAX(seq) OVER (PARTITION BY ${key}, ts) AS mx FROM s) WHERE seq = mx))`
      : `d AS (SELECT ${cols} FROM s)`;
  if (spec.deviceId !== undefined) {
    // One device: group by the bucket alone.
    return `WITH ${src}, s AS (SELECT device_id, ts, heart_rate, seq FROM src), ${
      lastWrite("device_id", "device_id, ts, heart_rate")
    }, ` +
      `g AS (SELECT ${bucket} AS bucket, AVG(heart_rate) AS hr FROM d GROUP BY bucket) ` +
      `SELECT ${TIMESTAMP_TEXT} AS timestamp, hr AS heart_rate, '${spec.deviceId}' AS device_id FROM g ORDER BY timestamp`;
  }
  if (order !== undefined && order.length > 0) {
    const rank = `CASE device_id ${order.map((d, i) => `WHEN '${d}' THEN ${i}`).join(" ")} ELSE ${order.length} END`;
    const name = `CASE rk ${order.map((d, i) => `WHEN ${i} THEN '${d}'`).join(" ")} END`;
    return `WITH ${src}, s AS (SELECT ${rank} AS rk, ts, heart_rate, seq FROM src), ${
      lastWrite("rk", "rk, ts, heart_rate")
    }, ` +
      `g AS (SELECT ${bucket} AS bucket, rk, AVG(heart_rate) AS hr FROM d GROUP BY bucket, rk), ` +
      `w AS (SELECT bucket, rk, hr FROM (SELECT bucket, rk, hr, MIN(rk) OVER (PARTITION BY bucket) AS best FROM g) WHERE rk = best) ` +
      `SELECT ${TIMESTAMP_TEXT} AS timestamp, hr AS heart_rate, ${name} AS device_id FROM w ORDER BY timestamp`;
  }
  const k = ranked.length;
  const listedRank = k === 0
    ? "0"
    : `CASE device_id ${ranked.map((d, i) => `WHEN '${d}' THEN ${i}`).join(" ")} ELSE ${k} END`;
  return `WITH ${src}, s AS (SELECT device_id, ts, heart_rate, seq FROM src), ${
    lastWrite("device_id", "device_id, ts, heart_rate")
  }, ` +
    `g AS (SELECT device_id, ${bucket} AS bucket, AVG(heart_rate) AS hr FROM d GROUP BY device_id, bucket), ` +
    `a AS (SELECT bucket, ${listedRank} AS rk, device_id, hr FROM g), ` +
    `w AS (SELECT bucket, device_id, hr FROM (SELECT bucket, rk, device_id, hr, MIN(rk) OVER (PARTITION BY bucket) AS best FROM a) WHERE rk = best), ` +
    `x AS (SELECT bucket, hr, device_id, MIN(device_id) OVER (PARTITION BY bucket) AS first_dev FROM w) ` +
    `SELECT ${TIMESTAMP_TEXT} AS timestamp, hr AS heart_rate, device_id FROM x WHERE device_id = first_dev ORDER BY timestamp`;
}

/**
 * Every device the sources may hold, in answer priority (listed by priority, then unlisted by
 * name), or undefined when a source's device list is unknown or the list is too long.
 *
 * @example
 * ```ts
 * deviceOrder(["device_a", "device_b"], [["zz", "device_a"]]); // ["device_a", "device_b", "zz"]
 * ```
 */
export function deviceOrder(
  ranked: readonly string[],
  lists: ReadonlyArray<readonly string[] | undefined>,
): string[] | undefined {
  const listed = new Set(ranked);
  const unlisted = new Set<string>();
  for (const list of lists) {
    if (list === undefined) return undefined;
    for (const d of list) if (!listed.has(d)) unlisted.add(d);
  }
  const order = [...ranked, ...[...unlisted].sort()];
  return order.length <= MAX_RANKED_DEVICES ? order : undefined;
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
 * const { count, json } = await runQuery({ runs, memtables }, spec, ["device_a", "device_b"]);
 * ```
 */
export async function runQuery(
  sources: QuerySources,
  spec: QuerySpec,
  ranked: readonly string[],
): Promise<QueryResult> {
  const runCount = sources.runs.length;
  const memCount = sources.memtables.length;
  if (runCount + memCount === 0) return { count: 0, json: "[]" };
  const tables: Record<string, pl.LazyDataFrame> = {};
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
  const order = spec.deviceId === undefined
    ? deviceOrder(ranked, [...sources.runs.map((r) => r.devices), sources.memtableDevices ?? []])
    : undefined;
  const keep = keepRowSql(sources.tombstones ?? [], spec);
  const sql = buildQuerySql(spec, ranked, runCount, memCount, dedup, order, keep);
  const df = await checked(pl.SQLContext(tables).execute(sql)).collect();
  if (df.height === 0) return { count: 0, json: "[]" };
  const json = String(df.writeJSON({ format: "json" } as Parameters<pl.DataFrame["writeJSON"]>[0]));
  // Round here, exactly (round.ts): Polars' ROUND works on x * 100 and disagrees with the exact
  // rule for values such as 125.805. This also prints whole values as JSON.stringify would (75).
  return { count: df.height, json: json.replace(RATE, (_, v: string) => `"heart_rate":${round2(Number(v))}`) };
}

/**
 * The answer as objects (for tests and tools; the HTTP path uses the JSON text as it is).
 *
 * @example
 * ```ts
 * const points = toPoints(await runQuery(sources, spec, ranked));
 * ```
 */
export function toPoints(result: QueryResult): BucketPoint[] {
  return JSON.parse(result.json) as BucketPoint[];
}
