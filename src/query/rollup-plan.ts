/**
 * Which parts of a query read rollups and which read raw rows.
 *
 * The rule, per UTC day of the range (`dayAnswersFromRollups`): a day is answered from rollups
 * when the buckets are whole minutes (1m or more), the day's readings all lie in one run that has a
 * rollup (a single run holds each identity once, so its rollup counts each reading once), and no
 * memtable holds readings of that day (a memtable may repeat or correct an identity of the run).
 * Everything else (10s and 30s buckets, days with several runs, days the memtables touch) is read
 * raw, with de-duplication where sources may overlap.
 *
 * On a rollup day, the whole minutes inside the query range come from the rollup and the partial
 * minutes at the range's ends (a range need not start on a minute) from the run's raw rows, so the
 * two never count one reading twice.
 *
 * @module
 */
import { DAY_MS } from "../reading.ts";
import type { RunMeta } from "../storage/run.ts";
import { MINUTE_MS } from "../storage/rollup.ts";
import type { QuerySources, QuerySpec, Window } from "./query.ts";

/** A run as the planner sees it: its metadata and the absolute paths of its files. */
export interface PlannedRun {
  meta: RunMeta;
  path: string;
  /** Absolute path of the rollup file (when `meta.rollup`). */
  rollupPath?: string;
}

/** What the planner knows about one UTC day of the range. */
export interface DayState {
  /** The live runs of the day. */
  runs: readonly PlannedRun[];
  /** Whether a memtable holds readings of the day. */
  inMemtable: boolean;
}

/**
 * Whether a day is answered from rollups. The one place that decides it: every extra condition
 * (e.g. a day touched by a deletion that its rollups do not reflect yet) belongs here.
 *
 * @example
 * ```ts
 * const run: PlannedRun = {
 *   meta: {
 *     id: 7, day: "2024-01-15", level: 1, file: "runs/day=2024-01-15/L1-00000007.parquet", rows: 172_800,
 *     minTs: Date.UTC(2024, 0, 15), maxTs: Date.UTC(2024, 0, 15, 23, 59, 59), minSeq: 1, maxSeq: 172_800, bytes: 1_000_000,
 *     rollup: { file: "rollups/day=2024-01-15/L1-00000007.parquet", bytes: 30_000 },
 *   },
 *   path: "/data/runs/day=2024-01-15/L1-00000007.parquet",
 *   rollupPath: "/data/rollups/day=2024-01-15/L1-00000007.parquet",
 * };
 * dayAnswersFromRollups({ runs: [run], inMemtable: false }, 300_000); // true
 * ```
 */
export function dayAnswersFromRollups(day: DayState, bucketMs: number): boolean {
  return bucketMs >= MINUTE_MS && bucketMs % MINUTE_MS === 0 && !day.inMemtable && day.runs.length === 1 &&
    day.runs[0].meta.rollup !== undefined && day.runs[0].rollupPath !== undefined;
}

const span = (r: PlannedRun): readonly [number, number] => [r.meta.minTs, r.meta.maxTs];

/**
 * Splits the runs that meet a query's range into raw reads and rollup reads.
 *
 * @param memtableDays the UTC days (`YYYY-MM-DD`) the memtables hold readings of.
 * @example
 * ```ts
 * const run: PlannedRun = {
 *   meta: {
 *     id: 7, day: "2024-01-15", level: 1, file: "runs/day=2024-01-15/L1-00000007.parquet", rows: 172_800,
 *     minTs: Date.UTC(2024, 0, 15), maxTs: Date.UTC(2024, 0, 15, 23, 59, 59), minSeq: 1, maxSeq: 172_800, bytes: 1_000_000,
 *     rollup: { file: "rollups/day=2024-01-15/L1-00000007.parquet", bytes: 30_000 },
 *   },
 *   path: "/data/runs/day=2024-01-15/L1-00000007.parquet",
 *   rollupPath: "/data/rollups/day=2024-01-15/L1-00000007.parquet",
 * };
 * const spec = { userId: "u", start: Date.UTC(2024, 0, 15, 6), end: Date.UTC(2024, 0, 16), bucketMs: 60_000 };
 * const { runs, rollups } = planRunSources(spec, [run], new Set<string>());
 * // rollups: the whole day from 06:00; runs: none (the range starts on a minute)
 * ```
 */
export function planRunSources(
  spec: QuerySpec,
  planned: readonly PlannedRun[],
  memtableDays: ReadonlySet<string>,
): Pick<QuerySources, "runs" | "rollups"> {
  const byDay = new Map<string, PlannedRun[]>();
  for (const r of planned) {
    const list = byDay.get(r.meta.day);
    if (list) list.push(r);
    else byDay.set(r.meta.day, [r]);
  }
  const runs: QuerySources["runs"] = [];
  const rollups: NonNullable<QuerySources["rollups"]> = [];
  for (const [day, dayRuns] of byDay) {
    const state = { runs: dayRuns, inMemtable: memtableDays.has(day) };
    if (!dayAnswersFromRollups(state, spec.bucketMs)) {
      for (const r of dayRuns) runs.push({ path: r.path, day, devices: r.meta.devices, span: span(r) });
      continue;
    }
    const run = dayRuns[0];
    const dayStart = Date.parse(`${day}T00:00:00Z`);
    const lo = Math.max(spec.start, dayStart);
    const hi = Math.min(spec.end, dayStart + DAY_MS);
    const minLo = Math.ceil(lo / MINUTE_MS) * MINUTE_MS;
    const minHi = Math.floor(hi / MINUTE_MS) * MINUTE_MS;
    if (minLo >= minHi) {
      runs.push({ path: run.path, day, devices: run.meta.devices, windows: [[lo, hi]], span: span(run) });
      continue;
    }
    rollups.push({ path: run.rollupPath!, window: [minLo, minHi], devices: run.meta.devices });
    const edges: Window[] = [];
    if (lo < minLo) edges.push([lo, minLo]);
    if (minHi < hi) edges.push([minHi, hi]);
    if (edges.length > 0) {
      runs.push({ path: run.path, day, devices: run.meta.devices, windows: edges, span: span(run) });
    }
  }
  return { runs, rollups };
}
