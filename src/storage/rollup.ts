/**
 * Rollups: for each run, a small Parquet file holding, per (user, device, minute), the number of
 * readings and the exact sum of their heart rates in micro-bpm. A query whose buckets are whole
 * minutes reads a settled day from its rollup (1,440 rows per user and device) instead of its raw
 * rows (86,400 per user and device at 1 Hz); sums are integers, so re-aggregating minutes into 5m
 * ... 1d buckets gives exactly the mean the raw rows give.
 *
 * Contract: a rollup is derived from its run file and from nothing else (`writeRollup` reads the
 * run as written), so every writer of runs (flush, compaction, and any later rewrite such as a
 * purge) gets a correct rollup through the one call in `writeRun`. It is written before the
 * manifest names the run; a rollup the manifest does not name is an orphan, removed at start-up.
 * Rollups are derived data: a damaged or missing rollup costs speed (the day is read raw), never
 * readings.
 *
 * File: `rollups/day=YYYY-MM-DD/L<level>-<id>.parquet` (the run's name under `rollups/`); schema
 * (docs/format/rollup.md): user_id string, device_id string, minute_ms int64 (start of the minute,
 * ms since epoch), readings int64, micro_sum int64; sorted by (user_id, minute_ms, device_id).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import pl from "nodejs-polars";
import { ensureDir, fsyncDir } from "./fsutil.ts";
import { checked } from "./run-sql.ts";
import { crc32c } from "./crc32c.ts";

/** The rollup's minute, in ms. */
export const MINUTE_MS = 60_000;

/** What the manifest records about a run's rollup. */
export interface RollupMeta {
  /** Path relative to the data directory. */
  file: string;
  bytes: number;
  /** CRC-32C of the whole file, checked with its run's checksum (on first read or in the background). */
  crc32c?: number;
}

/**
 * The rollup file of a run file (both relative to the data directory).
 *
 * @example
 * ```ts
 * rollupFile("runs/day=2024-01-15/L0-00000007.parquet"); // "rollups/day=2024-01-15/L0-00000007.parquet"
 * ```
 */
export function rollupFile(runFile: string): string {
  if (!runFile.startsWith("runs/")) throw new Error(`not a run file: ${runFile}`);
  return `rollups/${runFile.slice("runs/".length)}`;
}

/** The SQL that aggregates a run's rows (table `r`) into its rollup rows. */
export const ROLLUP_SQL = "SELECT user_id, device_id, minute_ms, COUNT(*) AS readings, SUM(heart_rate) AS micro_sum " +
  `FROM (SELECT user_id, device_id, CAST(timestamp AS BIGINT) - (CAST(timestamp AS BIGINT) % ${MINUTE_MS}) AS minute_ms, ` +
  "heart_rate FROM r) GROUP BY user_id, device_id, minute_ms ORDER BY user_id, minute_ms, device_id";

/**
 * Writes the rollup of the run file `runFile` (relative to `dataDir`), durably (temp name, fsync,
 * rename, directory fsync), and returns its metadata. Lazy Polars: the event loop stays free.
 *
 * @example
 * ```ts
 * const rollup = await writeRollup("./data", "runs/day=2024-01-15/L0-00000007.parquet");
 * ```
 */
export async function writeRollup(dataDir: string, runFile: string): Promise<RollupMeta> {
  const file = rollupFile(runFile);
  const full = path.join(dataDir, file);
  const dir = path.dirname(full);
  await ensureDir(dir);
  const tmp = path.join(dir, `.tmp-${path.basename(full)}`);
  const lf = checked(pl.SQLContext({ r: pl.scanParquet(path.join(dataDir, runFile)) }).execute(ROLLUP_SQL));
  try {
    await lf.sinkParquet(
      tmp,
      { compression: "zstd", statistics: true, rowGroupSize: 65_536, syncOnClose: "data" } as Parameters<
        pl.LazyDataFrame["sinkParquet"]
      >[1],
    ).collect();
    await fs.promises.rename(tmp, full);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true, recursive: true }).catch(() => {});
    throw err;
  }
  await fsyncDir(dir);
  const bytes = await fs.promises.readFile(full);
  return { file, bytes: bytes.length, crc32c: crc32c(bytes) };
}

/**
 * Whether a rollup file holds exactly what was written: its size and, when recorded, its CRC-32C
 * (a rollup is derived data: a damaged one is dropped and its run's day is read raw).
 *
 * @example
 * ```ts
 * const rollup = { file: "rollups/day=2024-01-15/L0-00000007.parquet", bytes: 30_211, crc32c: 0x1234abcd };
 * const usable = await rollupChecksumOk("./data", rollup);
 * ```
 */
export async function rollupChecksumOk(dataDir: string, rollup: RollupMeta): Promise<boolean> {
  try {
    const bytes = await fs.promises.readFile(path.join(dataDir, rollup.file));
    return bytes.length === rollup.bytes && (rollup.crc32c === undefined || crc32c(bytes) === rollup.crc32c);
  } catch {
    return false;
  }
}

/**
 * Whether a rollup file is present with its recorded size (checked at start-up; a damaged rollup
 * is dropped from the run, whose day is then read raw).
 *
 * @example
 * ```ts
 * const rollup = { file: "rollups/day=2024-01-15/L0-00000007.parquet", bytes: 30_211 };
 * const usable = await rollupIntact("./data", rollup);
 * ```
 */
export async function rollupIntact(dataDir: string, rollup: RollupMeta): Promise<boolean> {
  try {
    return (await fs.promises.stat(path.join(dataDir, rollup.file))).size === rollup.bytes;
  } catch {
    return false;
  }
}
