/**
 * A run: one immutable Parquet file of readings from a single UTC day, sorted by
 * (user_id, timestamp, device_id), with no two rows of the same identity.
 *
 * Schema (docs/format/run.md): user_id string, device_id string, timestamp datetime[ms] (UTC),
 * heart_rate int64 (micro-bpm, see toMicroBpm in reading.ts), seq int64. zstd, column statistics, row groups of ROW_GROUP_ROWS.
 *
 * Files live at `runs/day=YYYY-MM-DD/L<level>-<id>.parquet` (Hive-style partitioning). A run is
 * written under a dot-prefixed temp name, fsync'd, renamed, and the directory fsync'd; only then can
 * the manifest name it. A file the manifest does not name is an orphan and is removed at start-up.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import pl from "nodejs-polars";
import { type CrashPoint, crashPoint } from "./crash-point.ts";
import { crc32cUpdate } from "./crc32c.ts";
import { ensureDir, fsyncDir } from "./fsutil.ts";
import { DAY_MS } from "../reading.ts";
import { checked } from "./run-sql.ts";
import { rollupFile, type RollupMeta, writeRollup } from "./rollup.ts";

/** Rows per Parquet row group: small enough to prune by user and time, large enough to compress. */
export const ROW_GROUP_ROWS = 65_536;

/** What the manifest records about one run. */
export interface RunMeta {
  id: number;
  /** UTC day, `YYYY-MM-DD`. */
  day: string;
  level: number;
  /** Path relative to the data directory. */
  file: string;
  rows: number;
  minTs: number;
  maxTs: number;
  minSeq: number;
  maxSeq: number;
  bytes: number;
  /** CRC-32C of the whole file (runs are immutable), checked on first read or by the background pass. */
  crc32c?: number;
  /** The distinct device_ids in the file, sorted (lets a query group by integer device ranks). */
  devices?: string[];
  /** The run's per-minute rollup (rollup.ts); absent: the run is always read raw. */
  rollup?: RollupMeta;
}

/**
 * The UTC day (`YYYY-MM-DD`) of a day number (ms / DAY_MS).
 *
 * @example
 * ```ts
 * dayName(19737); // "2024-01-15"
 * ```
 */
export function dayName(dayNumber: number): string {
  return new Date(dayNumber * DAY_MS).toISOString().slice(0, 10);
}

/**
 * The relative path of a run file.
 *
 * @example
 * ```ts
 * runFile("2024-01-15", 0, 7); // "runs/day=2024-01-15/L0-00000007.parquet"
 * ```
 */
export function runFile(day: string, level: number, id: number): string {
  return `runs/day=${day}/L${level}-${String(id).padStart(8, "0")}.parquet`;
}

/**
 * Writes the rows of `lf` (already in run schema and order) as run `file` under `dataDir`, then its
 * rollup (derived from the file as written), and returns its metadata. When it resolves both files
 * are durable under their final names. Every writer of runs goes through here, so every run gets
 * its rollup the same way.
 *
 * @param points crash points passed after the sink and after the rename.
 * @example
 * ```ts
 * import pl from "nodejs-polars";
 *
 * const lf = pl.DataFrame({
 *   user_id: ["u1"], device_id: ["device_a"], timestamp: [new Date(Date.UTC(2024, 0, 15, 10))], heart_rate: [72], seq: [1],
 * }).lazy();
 * const meta = await writeRun("./data", lf, { id: 3, day: "2024-01-15", level: 0 });
 * ```
 */
export async function writeRun(
  dataDir: string,
  lf: pl.LazyDataFrame,
  ident: { id: number; day: string; level: number },
  points: { afterSink: CrashPoint; afterRename: CrashPoint } = {
    afterSink: "flush-after-sink",
    afterRename: "flush-after-rename",
  },
): Promise<RunMeta> {
  const file = runFile(ident.day, ident.level, ident.id);
  const full = path.join(dataDir, file);
  const dir = path.dirname(full);
  await ensureDir(dir);
  const tmp = path.join(dir, `.tmp-${path.basename(full)}`);
  try {
    await lf.sinkParquet(
      tmp,
      {
        compression: "zstd",
        statistics: true,
        rowGroupSize: ROW_GROUP_ROWS,
        syncOnClose: "data",
      } as Parameters<pl.LazyDataFrame["sinkParquet"]>[1],
    ).collect();
  } catch (err) {
    // A failed attempt (disk full, I/O error) must not leave its half-written file behind.
    await fs.promises.rm(tmp, { force: true, recursive: true }).catch(() => {});
    throw err;
  }
  crashPoint(points.afterSink);
  try {
    await fs.promises.rename(tmp, full);
    await fsyncDir(dir);
    crashPoint(points.afterRename);
    const rollup = await writeRollup(dataDir, file);
    const stats = await runStats(full);
    const { bytes, crc } = await fileChecksum(full);
    return { ...ident, file, bytes, crc32c: crc, ...stats, rollup };
  } catch (err) {
    // No manifest names the file yet: remove it and its rollup (and the temp file, if the rename failed).
    await removeRunFiles(dataDir, [file]);
    await fs.promises.rm(tmp, { force: true, recursive: true }).catch(() => {});
    throw err;
  }
}

/**
 * Removes run files (relative paths) that no manifest names, and their rollups, ignoring files
 * already gone. Never throws: a file it cannot remove is an orphan, which start-up removes.
 *
 * @example
 * ```ts
 * await removeRunFiles("./data", ["runs/day=2024-01-15/L0-00000007.parquet"]);
 * ```
 */
export async function removeRunFiles(dataDir: string, files: readonly string[]): Promise<void> {
  for (const f of files) {
    await fs.promises.rm(path.join(dataDir, f), { force: true }).catch(() => {});
    await fs.promises.rm(path.join(dataDir, rollupFile(f)), { force: true }).catch(() => {});
  }
}

/**
 * Reads a run file's row count, timestamp and sequence bounds and distinct devices, in one pass
 * grouped by device (the totals are folded from the few per-device rows).
 *
 * @example
 * ```ts
 * const { rows, minTs, maxTs, devices } = await runStats("./data/runs/day=2024-01-15/L0-00000001.parquet");
 * ```
 */
export async function runStats(
  fullPath: string,
): Promise<{ rows: number; minTs: number; maxTs: number; minSeq: number; maxSeq: number; devices: string[] }> {
  const lf = pl.SQLContext({ r: pl.scanParquet(fullPath) }).execute(
    "SELECT device_id, COUNT(*) AS rows, MIN(CAST(timestamp AS BIGINT)) AS min_ts, MAX(CAST(timestamp AS BIGINT)) AS max_ts, " +
      "MIN(seq) AS min_seq, MAX(seq) AS max_seq FROM r GROUP BY device_id",
  );
  const perDevice = (await checked(lf).collect()).toRecords() as Array<Record<string, number | string>>;
  const col = (key: string) => perDevice.map((d) => Number(d[key]));
  const empty = perDevice.length === 0;
  return {
    devices: perDevice.map((d) => String(d.device_id)).sort(),
    rows: col("rows").reduce((a, b) => a + b, 0),
    minTs: empty ? 0 : Math.min(...col("min_ts")),
    maxTs: empty ? 0 : Math.max(...col("max_ts")),
    minSeq: empty ? 0 : Math.min(...col("min_seq")),
    maxSeq: empty ? 0 : Math.max(...col("max_seq")),
  };
}

/**
 * Size and CRC-32C of a file, read in 1 MiB chunks.
 *
 * @example
 * ```ts
 * const { bytes, crc } = await fileChecksum("./data/runs/day=2024-01-15/L0-00000001.parquet");
 * ```
 */
export async function fileChecksum(fullPath: string): Promise<{ bytes: number; crc: number }> {
  const handle = await fs.promises.open(fullPath, "r");
  try {
    const buf = new Uint8Array(1 << 20);
    let crc = 0;
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, bytes);
      if (bytesRead === 0) break;
      crc = crc32cUpdate(crc, buf, 0, bytesRead);
      bytes += bytesRead;
    }
    return { bytes, crc };
  } finally {
    await handle.close();
  }
}

/** A run file is damaged or missing; start-up stops with this message. */
export class RunCorruptError extends Error {
  constructor(file: string, why: string) {
    super(
      `run file ${file} ${why}. Its readings are no longer in the WAL, so pulsedb will not start without it ` +
        `(starting would silently drop acknowledged data). To recover: restore the file from a backup; or, ` +
        `if losing its unreadable rows is accepted, start once with PULSE_RECOVERY=rebuild-manifest, which moves ` +
        `unreadable runs to quarantine/ (see docs/corruption.md).`,
    );
    this.name = "RunCorruptError";
  }
}

/**
 * Checks that a run file is whole: present, of the recorded size, with the recorded checksum.
 *
 * @throws RunCorruptError naming the file.
 * @example
 * ```ts
 * import { readManifest } from "./manifest.ts";
 *
 * for (const meta of (await readManifest("./data")).runs) await verifyRun("./data", meta);
 * ```
 */
export async function verifyRun(dataDir: string, meta: RunMeta): Promise<void> {
  const full = path.join(dataDir, meta.file);
  let sum: { bytes: number; crc: number };
  try {
    sum = await fileChecksum(full);
  } catch (err) {
    throw new RunCorruptError(
      meta.file,
      `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  if (sum.bytes !== meta.bytes) {
    throw new RunCorruptError(meta.file, `is ${sum.bytes} bytes, the manifest says ${meta.bytes}`);
  }
  if (meta.crc32c !== undefined && sum.crc !== meta.crc32c) {
    throw new RunCorruptError(meta.file, "does not match its checksum (it was damaged on disk)");
  }
}

/**
 * The start-up check of a run file: present and of the recorded size (a stat, no read). The
 * checksum is checked later, on first read or by the background pass (`verifyRun`).
 *
 * @throws RunCorruptError naming the file.
 * @example
 * ```ts
 * import { readManifest } from "./manifest.ts";
 *
 * for (const meta of (await readManifest("./data")).runs) await checkRunSize("./data", meta);
 * ```
 */
export async function checkRunSize(dataDir: string, meta: RunMeta): Promise<void> {
  let size: number;
  try {
    size = (await fs.promises.stat(path.join(dataDir, meta.file))).size;
  } catch (err) {
    throw new RunCorruptError(
      meta.file,
      `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  if (size !== meta.bytes) throw new RunCorruptError(meta.file, `is ${size} bytes, the manifest says ${meta.bytes}`);
}

/**
 * Lists every file under `runs/` and `rollups/` (relative paths), including temp files.
 *
 * @example
 * ```ts
 * const files = await listRunFiles("./data");
 * ```
 */
export async function listRunFiles(dataDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const top of ["runs", "rollups"]) {
    const root = path.join(dataDir, top);
    if (!fs.existsSync(root)) continue;
    for (const dayDir of await fs.promises.readdir(root, { withFileTypes: true })) {
      if (!dayDir.isDirectory()) {
        out.push(`${top}/${dayDir.name}`);
        continue;
      }
      for (const f of await fs.promises.readdir(path.join(root, dayDir.name))) out.push(`${top}/${dayDir.name}/${f}`);
    }
  }
  return out;
}
