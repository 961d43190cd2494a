/**
 * Flush: a sealed memtable becomes one run per UTC day it holds.
 *
 * Each run is de-duplicated (per identity, the highest sequence), sorted by (user, timestamp,
 * device) and written with lazy Polars, so the work runs on Polars' threads, not the event loop.
 * Pre: the memtable is sealed and drained (no write in flight). Post: the runs are durable under
 * their final names; nothing is published (the engine swaps the manifest). A failed call leaves no
 * file behind.
 *
 * @module
 */
import pl from "nodejs-polars";
import type { Memtable } from "./memtable.ts";
import { DAY_MS } from "../reading.ts";
import { checked, runRowsSql } from "./run-sql.ts";
import { dayName, removeRunFiles, type RunMeta, writeRun } from "./run.ts";

/**
 * The Polars SQL that turns memtable frames `m0..m{n-1}` into the rows of one day's run.
 *
 * @example
 * ```ts
 * const sql = flushSql(3, 19737); // the run of 2024-01-15 from three frames
 * ```
 */
export function flushSql(frameCount: number, day: number): string {
  const lo = day * DAY_MS;
  const hi = lo + DAY_MS;
  const union = Array.from(
    { length: frameCount },
    (_, i) => `SELECT user_id, device_id, ts, heart_rate, seq FROM m${i} WHERE ts >= ${lo} AND ts < ${hi}`,
  ).join(" UNION ALL ");
  return runRowsSql(
    `SELECT CAST(user_id AS VARCHAR) AS user_id, CAST(device_id AS VARCHAR) AS device_id, ` +
      `CAST(CAST(ts AS BIGINT) AS TIMESTAMP(3)) AS timestamp, CAST(heart_rate AS BIGINT) AS heart_rate, CAST(seq AS BIGINT) AS seq FROM (${union})`,
  );
}

/**
 * Writes the runs of a sealed, drained memtable, one per UTC day, oldest day first.
 *
 * @param nextId hands out run ids.
 * @example
 * ```ts
 * import { Memtable } from "./memtable.ts";
 *
 * const memtable = new Memtable(1);
 * memtable.append([{ userId: "u1", deviceId: "device_a", ts: Date.UTC(2024, 0, 15, 10), heartRate: 72 }], 1);
 * memtable.seal();
 * let nextId = 1;
 * const metas = await writeMemtableRuns("./data", memtable, () => nextId++); // one run: day 2024-01-15
 * ```
 */
export async function writeMemtableRuns(dataDir: string, mem: Memtable, nextId: () => number): Promise<RunMeta[]> {
  const frames = mem.frames();
  const metas: RunMeta[] = [];
  try {
    for (const day of [...mem.days].sort((a, b) => a - b)) {
      const tables: Record<string, pl.LazyDataFrame> = {};
      frames.forEach((f, i) => (tables[`m${i}`] = f.lazy()));
      const lf = checked(pl.SQLContext(tables).execute(flushSql(frames.length, day)));
      metas.push(await writeRun(dataDir, lf, { id: nextId(), day: dayName(day), level: 0 }));
    }
  } catch (err) {
    // A failed attempt leaves nothing behind: the runs of the days already written go too.
    await removeRunFiles(dataDir, metas.map((m) => m.file));
    throw err;
  }
  return metas;
}
