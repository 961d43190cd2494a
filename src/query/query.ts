/**
 * The read path: one Polars plan over the sources a query needs: raw rows (runs and memtables) and
 * per-minute rollups (count and exact sum of settled days, see rollup-plan.ts).
 *
 * Steps, all inside Polars (planned through SQLContext, which builds the plan in Rust: building
 * expressions one by one from JavaScript costs ~1 ms each on Node 20):
 *   1. scan each raw source with the user, device and time predicate pushed down (Parquet statistics
 *      prune row groups);
 *   2. de-duplicate raw rows by (device, timestamp), keeping the highest sequence (last write wins;
 *      copies of one write, which carry the same sequence, collapse to one), unless no two sources
 *      can hold the same identity (runs are de-duplicated and never span two days);
 *   3. per (bucket, device): the count and the exact int64 sum of micro-bpm, from raw rows
 *      (`ts - ts % bucket`) and from rollup minutes (`minute - minute % bucket`) alike, added up;
 *      devices are grouped by their integer rank when the device lists are known;
 *   4. per bucket keep the device of highest priority (lowest number; unknown devices rank after
 *      every configured one, then by device_id ascending);
 *   5. the mean in hundredths, exactly (integer division, ties to even: round.ts), the bucket start
 *      formatted, sorted by bucket.
 * Polars also writes the answer's `data` array as JSON (`writeJSON`); JavaScript only turns each
 * integer number of hundredths into its 2-decimal number.
 *
 * @module
 */
import pl from "nodejs-polars";
import type { DevicePriority } from "../ops/config.ts";
import { ID_PATTERN } from "../reading.ts";
import { fromHundredths, hundredthsSql } from "./round.ts";
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

/** A half-open time window `[lo, hi)`, ms since epoch. */
export type Window = readonly [number, number];

/** The sources a query reads, taken as one consistent snapshot. */
export interface QuerySources {
  /**
   * Run files read row by row, with their UTC day and device list. `windows` (default: the query's
   * range) are the parts of the range read from this run's rows.
   */
  runs: Array<{
    path: string;
    day: string;
    devices?: readonly string[];
    windows?: readonly Window[];
    /** The run's timestamps span, inclusive `[minTs, maxTs]` (for `spansDisjoint`). */
    span?: readonly [number, number];
  }>;
  /** Memtable frames (memtable schema: user_id/device_id categorical, ts/seq float64, heart_rate int32). */
  memtables: pl.DataFrame[];
  /** Every device_id the memtable frames may hold (empty without memtables). */
  memtableDevices?: readonly string[];
  /**
   * Rollup files (per user, device and minute: count and micro-bpm sum) answering the whole minutes
   * of `window`. A rollup window never overlaps a raw window or another rollup window.
   */
  rollups?: Array<{ path?: string; frame?: pl.DataFrame; window: Window; devices?: readonly string[] }>;
  /** Per memtable frame, the windows read from its rows (default: the query's range). */
  memtableWindows?: ReadonlyArray<readonly Window[]>;
  /**
   * The caller vouches that no identity occurs twice among the raw sources (see `spansDisjoint`):
   * the raw rows are then aggregated without de-duplication.
   */
  disjoint?: boolean;
  /** Live tombstones of the query's user: rows they match are masked (tombstone-mask.ts). */
  tombstones?: readonly Tombstone[];
}

/**
 * Whether raw sources that each hold an identity at most once can share one: not when their time
 * spans (inclusive `[min, max]`) are pairwise disjoint, since an identity includes its timestamp.
 *
 * @example
 * ```ts
 * spansDisjoint([[0, 9], [10, 19]]); // true
 * spansDisjoint([[0, 10], [10, 19]]); // false
 * ```
 */
export function spansDisjoint(spans: ReadonlyArray<readonly [number, number]>): boolean {
  const sorted = spans.slice().sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < sorted.length; i++) if (sorted[i][0] <= sorted[i - 1][1]) return false;
  return true;
}

/** One bucket of an answer. */
export interface BucketPoint {
  timestamp: string;
  heart_rate: number;
  device_id: string;
}

/** A heart rate in Polars' JSON: the rounded mean as an integer number of hundredths. */
const RATE = /"heart_rate":(-?[0-9]+)/g;

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

/** The shape of a plan's sources: how many of each, and the time windows each raw run reads. */
export interface PlanShape {
  /** Per raw run, the windows read from its rows. */
  runWindows: ReadonlyArray<readonly Window[]>;
  memCount: number;
  /** Per memtable frame, the windows read from its rows (default: the query's range). */
  memWindows?: ReadonlyArray<readonly Window[]>;
  /**
   * Per rollup table, the window of whole minutes it answers; `files` when the table is a glob over
   * several rollup files (`file` column) of which only these are read.
   */
  rollups?: ReadonlyArray<{ window: Window; files?: readonly string[] }>;
}

/** Paths that may be spliced into SQL and a glob: no quote, no glob character. */
const SAFE_PATH = /^[A-Za-z0-9_.\/=@+:-]+$/;

/** A month of rollup files read through one glob scan from this many files on. */
export const GLOB_ROLLUPS_FROM = 4;

/**
 * The rollup tables of a plan: the files of one month (`rollups/day=YYYY-MM-*`) read through a
 * single glob scan when there are at least GLOB_ROLLUPS_FROM of them (a plan with one branch per
 * file costs several ms per file in Polars; a glob reads just the footers), each other file alone.
 */
function rollupTables(
  rollups: NonNullable<QuerySources["rollups"]>,
  perFile: boolean,
): Array<{ lf: pl.LazyDataFrame; window: Window; files?: string[] }> {
  const byMonth = new Map<string, typeof rollups>();
  const single: typeof rollups = [];
  for (const u of rollups) {
    const m = u.path === undefined ? null : /^(.*\/rollups)\/day=(\d{4}-\d{2})-\d{2}\/L[^/]*\.parquet$/.exec(u.path);
    if (perFile || !m || !SAFE_PATH.test(u.path!)) single.push(u);
    else {
      const key = `${m[1]}/day=${m[2]}`;
      byMonth.set(key, [...(byMonth.get(key) ?? []), u]);
    }
  }
  const out: Array<{ lf: pl.LazyDataFrame; window: Window; files?: string[] }> = [];
  for (const [prefix, list] of byMonth) {
    if (list.length < GLOB_ROLLUPS_FROM) {
      single.push(...list);
      continue;
    }
    // Each file's rows lie in its own day, so the group's outer window cut to a file's day is
    // that file's window; the file list keeps out files of other runs (raw days, obsolete runs).
    const lo = Math.min(...list.map((u) => u.window[0]));
    const hi = Math.max(...list.map((u) => u.window[1]));
    const lf = pl.scanParquet(
      `${prefix}-*/L*.parquet`,
      { includeFilePaths: "file" } as Parameters<
        typeof pl.scanParquet
      >[1],
    );
    out.push({ lf, window: [lo, hi], files: list.map((u) => u.path!) });
  }
  for (const u of single) out.push({ lf: u.frame ? u.frame.lazy() : pl.scanParquet(u.path!), window: u.window });
  return out;
}

/** `col >= lo AND col < hi` over several windows (OR-ed); `lit` writes a bound as a literal. */
function windowsSql(col: string, windows: readonly Window[], lit = (ms: number) => String(ms)): string {
  const one = ([lo, hi]: Window) => `${col} >= ${lit(lo)} AND ${col} < ${lit(hi)}`;
  return windows.length === 1 ? one(windows[0]) : windows.map((w) => `(${one(w)})`).join(" OR ");
}

/**
 * Builds the SQL text of a query (exported for tests and for `EXPLAIN`-style debugging).
 * Ids are spliced as literals only after checking them against ID_PATTERN (no quotes possible).
 *
 * Grouping is the costly step, and on this machine grouping on (integer, string) keys costs about
 * half again as much as on two integers. So when the sources' device lists are known (`order`: every
 * device they may hold, in answer priority: listed devices by priority, then unlisted ones by name),
 * each reading gets its device's rank as an integer and everything downstream groups on integers;
 * the name comes back from the rank at the end. Otherwise (`order` undefined) it groups on names.
 * A query for one device ranks that device alone.
 *
 * @param ranked the configured devices in priority order (see rankDevices).
 * @param order every device the sources may hold, in answer priority, or undefined.
 * @param keep a predicate over `device_id, ts, seq` rows must meet (tombstone masking), or undefined.
 * @example
 * ```ts
 * const spec = { userId: "user_123", start: Date.UTC(2024, 0, 15), end: Date.UTC(2024, 0, 16), bucketMs: 60_000 };
 * const shape = { runWindows: [[[spec.start, spec.end] as const]], memCount: 1 };
 * const sql = buildQuerySql(spec, ["device_a", "device_b"], shape, true, ["device_a", "device_b", "zz"]);
 * ```
 */
export function buildQuerySql(
  spec: QuerySpec,
  ranked: readonly string[],
  shape: PlanShape,
  dedup: boolean,
  order?: readonly string[],
  keep?: string,
): string {
  if (spec.deviceId !== undefined) order = [spec.deviceId];
  const ids = [spec.userId, ...(spec.deviceId === undefined ? [] : [spec.deviceId]), ...ranked, ...(order ?? [])];
  if (!ids.every((d) => ID_PATTERN.test(d))) throw new Error("query ids must be validated before planning");
  const { start, end, bucketMs } = spec;
  const windows = [
    ...shape.runWindows.flat(),
    ...(shape.memWindows ?? []).flat(),
    ...(shape.rollups ?? []).map((u) => u.window),
  ];
  const files = (shape.rollups ?? []).flatMap((u) => u.files ?? []);
  if (!files.every((f) => SAFE_PATH.test(f))) throw new Error("rollup paths must be checked before planning");
  if (![start, end, bucketMs, ...windows.flat()].every(Number.isSafeInteger)) {
    throw new Error("query bounds must be integers");
  }
  const dev = spec.deviceId === undefined ? "" : ` AND device_id = '${spec.deviceId}'`;
  const parts: string[] = [];
  shape.runWindows.forEach((w, i) => {
    if (w.length === 0) return;
    const inRange = windowsSql("timestamp", w, (ms) => `CAST(${ms} AS TIMESTAMP(3))`);
    parts.push(
      `SELECT device_id, CAST(timestamp AS BIGINT) AS ts, heart_rate, seq FROM r${i} ` +
        `WHERE user_id = '${spec.userId}'${dev} AND (${inRange})`,
    );
  });
  for (let i = 0; i < shape.memCount; i++) {
    const w = shape.memWindows?.[i] ?? [[start, end]];
    if (w.length === 0) continue;
    parts.push(
      `SELECT device_id, CAST(ts AS BIGINT) AS ts, CAST(heart_rate AS BIGINT) AS heart_rate, CAST(seq AS BIGINT) AS seq FROM ` +
        `(SELECT CAST(user_id AS VARCHAR) AS user_id, CAST(device_id AS VARCHAR) AS device_id, ts, heart_rate, seq FROM m${i} WHERE ${
          windowsSql("ts", w)
        }) ` +
        `WHERE user_id = '${spec.userId}'${dev}`,
    );
  }
  const rollupParts = (shape.rollups ?? []).map((u, i) =>
    `SELECT device_id, minute_ms, readings, micro_sum FROM u${i} WHERE user_id = '${spec.userId}'${dev} AND ${
      windowsSql("minute_ms", [u.window])
    }${u.files ? ` AND file IN (${u.files.map((f) => `'${f}'`).join(", ")})` : ""}`
  );
  const ranks = order !== undefined && order.length > 0;
  // The device key: an integer rank, or the name (with the listed rank beside it for the choice).
  const keyOf = ranks
    ? `CASE device_id ${order!.map((d, i) => `WHEN '${d}' THEN ${i}`).join(" ")} ELSE ${order!.length} END`
    : "device_id";
  const ctes: string[] = [];
  const partials: string[] = [];
  if (parts.length > 0) {
    ctes.push(
      keep === undefined
        ? `src AS (${parts.join(" UNION ALL ")})`
        : `src AS (SELECT * FROM (${parts.join(" UNION ALL ")}) WHERE ${keep})`,
      `s AS (SELECT ${keyOf} AS k, ts, heart_rate, seq FROM src)`,
    );
    ctes.push(
      dedup
        ? `d AS (SELECT k, ts, heart_rate FROM (SELECT DISTINCT k, ts, heart_rate, seq FROM (SELECT k, ts, heart_rate, seq, MAX(seq) OVER (PARTITION BY k, ts) AS mx FROM s) WHERE seq = mx))`
        : `d AS (SELECT k, ts, heart_rate FROM s)`,
    );
    ctes.push(
      `p AS (SELECT k, ts - (ts % ${bucketMs}) AS bucket, COUNT(*) AS n, SUM(heart_rate) AS sm FROM d GROUP BY k, bucket)`,
    );
    partials.push("SELECT k, bucket, n, sm FROM p");
  }
  if (rollupParts.length > 0) {
    ctes.push(
      `ru AS (${rollupParts.join(" UNION ALL ")})`,
      `pu AS (SELECT ${keyOf} AS k, minute_ms - (minute_ms % ${bucketMs}) AS bucket, readings AS n, micro_sum AS sm FROM ru)`,
    );
    partials.push("SELECT k, bucket, n, sm FROM pu");
  }
  if (partials.length === 0) throw new Error("a query plan needs at least one source");
  ctes.push(
    `pa AS (${partials.join(" UNION ALL ")})`,
    `g AS (SELECT k, bucket, SUM(n) AS n, SUM(sm) AS sm FROM pa GROUP BY k, bucket)`,
  );
  const hq = hundredthsSql("sm", "n");
  if (ranks) {
    const name = `CASE k ${order!.map((d, i) => `WHEN ${i} THEN '${d}'`).join(" ")} END`;
    ctes.push(
      `w AS (SELECT bucket, k, n, sm FROM (SELECT bucket, k, n, sm, MIN(k) OVER (PARTITION BY bucket) AS best FROM g) WHERE k = best)`,
    );
    return `WITH ${ctes.join(", ")} ` +
      `SELECT ${TIMESTAMP_TEXT} AS timestamp, ${hq} AS heart_rate, ${name} AS device_id FROM w ORDER BY timestamp`;
  }
  const k = ranked.length;
  const listedRank = k === 0 ? "0" : `CASE k ${ranked.map((d, i) => `WHEN '${d}' THEN ${i}`).join(" ")} ELSE ${k} END`;
  ctes.push(
    `a AS (SELECT bucket, ${listedRank} AS rk, k, n, sm FROM g)`,
    `w AS (SELECT bucket, k, n, sm FROM (SELECT bucket, rk, k, n, sm, MIN(rk) OVER (PARTITION BY bucket) AS best FROM a) WHERE rk = best)`,
    `x AS (SELECT bucket, k, n, sm, MIN(k) OVER (PARTITION BY bucket) AS first_dev FROM w)`,
  );
  return `WITH ${ctes.join(", ")} ` +
    `SELECT ${TIMESTAMP_TEXT} AS timestamp, ${hq} AS heart_rate, k AS device_id FROM x WHERE k = first_dev ORDER BY timestamp`;
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
 * const spec = { userId: "user_123", start: Date.UTC(2024, 0, 15), end: Date.UTC(2024, 0, 16), bucketMs: 60_000 };
 * const runs = [{ path: "/tmp/pulse/runs/day=2024-01-15/L0-3.parquet", day: "2024-01-15" }];
 * const { count, json } = await runQuery({ runs, memtables: [] }, spec, ["device_a", "device_b"]);
 * ```
 */
export async function runQuery(
  sources: QuerySources,
  spec: QuerySpec,
  ranked: readonly string[],
): Promise<QueryResult> {
  const rollups = sources.rollups ?? [];
  const runWindows = sources.runs.map((r) => r.windows ?? [[spec.start, spec.end] as Window]);
  const memCount = sources.memtables.length;
  const memWindows = sources.memtables.map((_, i) =>
    sources.memtableWindows?.[i] ?? [[spec.start, spec.end] as Window]
  );
  if (runWindows.every((w) => w.length === 0) && memWindows.every((w) => w.length === 0) && rollups.length === 0) {
    return { count: 0, json: "[]" };
  }
  const tables: Record<string, pl.LazyDataFrame> = {};
  const days = new Set<string>();
  let sharedDay = false;
  sources.runs.forEach((r, i) => {
    if (runWindows[i].length === 0) return;
    tables[`r${i}`] = pl.scanParquet(r.path);
    if (days.has(r.day)) sharedDay = true;
    days.add(r.day);
  });
  sources.memtables.forEach((m, i) => {
    tables[`m${i}`] = m.lazy();
  });

  // Runs hold no duplicates and never span two days: identities can only collide when a memtable
  // is involved or two runs cover the same day. Rollup windows never overlap raw ones.
  const memRead = memWindows.filter((w) => w.length > 0).length;
  const dedup = !sources.disjoint && (memRead > 0 || sharedDay);
  const order = spec.deviceId === undefined
    ? deviceOrder(ranked, [
      ...sources.runs.map((r) => r.devices),
      ...rollups.map((u) => u.devices),
      sources.memtableDevices ?? [],
    ])
    : undefined;
  const keep = keepRowSql(sources.tombstones ?? [], spec);
  const run = async (perFile: boolean) => {
    const rollupTabs = rollupTables(rollups, perFile);
    rollupTabs.forEach((u, i) => (tables[`u${i}`] = u.lf));
    const shape = {
      runWindows,
      memCount,
      memWindows,
      rollups: rollupTabs.map(({ window, files }) => ({ window, files })),
    };
    const sql = buildQuerySql(spec, ranked, shape, dedup, order, keep);
    return await checked(pl.SQLContext(tables).execute(sql)).collect();
  };
  let df: pl.DataFrame;
  try {
    df = await run(false);
  } catch (err) {
    // A glob lists the month's files when the plan runs; a file of an obsolete run (not one this
    // query reads) may be deleted meanwhile. Read the rollups file by file then.
    if (rollups.length === 0) throw err;
    df = await run(true);
  }
  if (df.height === 0) return { count: 0, json: "[]" };
  const json = String(df.writeJSON({ format: "json" } as Parameters<pl.DataFrame["writeJSON"]>[0]));
  // The mean arrives as an exact integer number of hundredths (round.ts); printed as the 2-decimal
  // number JSON.stringify would print (75, 75.5, 75.25).
  return { count: df.height, json: json.replace(RATE, (_, v: string) => `"heart_rate":${fromHundredths(Number(v))}`) };
}

/**
 * The answer as objects (for tests and tools; the HTTP path uses the JSON text as it is).
 *
 * @example
 * ```ts
 * const spec = { userId: "user_123", start: Date.UTC(2024, 0, 15), end: Date.UTC(2024, 0, 16), bucketMs: 60_000 };
 * const sources = { runs: [{ path: "/tmp/pulse/runs/day=2024-01-15/L0-3.parquet", day: "2024-01-15" }], memtables: [] };
 * const points = toPoints(await runQuery(sources, spec, ["device_a", "device_b"]));
 * // [{ timestamp: "2024-01-15T10:00:00Z", heart_rate: 75, device_id: "device_a" }, ...]
 * ```
 */
export function toPoints(result: QueryResult): BucketPoint[] {
  return JSON.parse(result.json) as BucketPoint[];
}
