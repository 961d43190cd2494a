/**
 * Erasure verification: scans every file under a data directory (Parquet files anywhere: runs,
 * quarantine, derived files; WAL segments) for readings of one user, independently of the
 * manifest, so an operator (or a test) can prove that a user's data is gone from disk.
 *
 * Contract: read-only; reports per file the matching rows (with their sequence numbers where the
 * file has them), WAL tombstone records of the user, files it could not read, and the erasures
 * the manifest still lists as pending. It does not need the server to be stopped (files are
 * immutable or append-only), but a file replaced while it scans may be reported as unreadable.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import pl from "nodejs-polars";
import { ID_PATTERN } from "../reading.ts";
import { readManifest } from "./manifest.ts";
import { checked } from "./run-sql.ts";
import type { Tombstone } from "./tombstones.ts";
import { hasMagic, parseSegment } from "./wal/record.ts";

/** What to look for: a user's readings, optionally of one device, optionally in `[start, end)`. */
export interface ScanTarget {
  userId: string;
  deviceId?: string;
  start?: number;
  end?: number;
}

/** One file holding matching readings. */
export interface ScanHit {
  /** Path relative to the data directory. */
  file: string;
  kind: "parquet" | "wal";
  rows: number;
  /** Sequence numbers of the matching rows (empty when the file has no `seq` column). */
  seqs: number[];
}

/** The result of a scan. */
export interface ScanReport {
  hits: ScanHit[];
  /** WAL segments still holding a tombstone record of the user. */
  tombstoneRecords: string[];
  /** Files that could not be read (e.g. quarantined corrupt runs): they may hold the user's data. */
  unreadable: string[];
  /** Erasures of the user the manifest lists as not yet purged. */
  pending: Tombstone[];
  filesScanned: number;
}

/**
 * Scans `dataDir` for readings matching `target`.
 *
 * @example
 * ```ts
 * const report = await scanForUser("./data", { userId: "user_1" });
 * if (report.hits.length === 0 && report.unreadable.length === 0) console.log("gone");
 * ```
 */
export async function scanForUser(dataDir: string, target: ScanTarget): Promise<ScanReport> {
  if (!ID_PATTERN.test(target.userId) || (target.deviceId !== undefined && !ID_PATTERN.test(target.deviceId))) {
    throw new Error("user and device ids must be 1-128 characters from A-Z a-z 0-9 _ . : @ -");
  }
  const report: ScanReport = { hits: [], tombstoneRecords: [], unreadable: [], pending: [], filesScanned: 0 };
  for (const file of walk(dataDir)) {
    const rel = path.relative(dataDir, file);
    if (file.endsWith(".parquet")) {
      report.filesScanned++;
      try {
        const hit = await scanParquet(file, target);
        if (hit.rows > 0) report.hits.push({ file: rel, kind: "parquet", ...hit });
      } catch {
        report.unreadable.push(rel);
      }
    } else if (/^wal-\d+\.log/.test(path.basename(file))) {
      report.filesScanned++;
      const bytes = fs.readFileSync(file);
      if (!hasMagic(bytes)) continue;
      const parsed = parseSegment(bytes);
      const seqs: number[] = [];
      for (const r of parsed.records) {
        if (r.tombstone?.userId === target.userId) report.tombstoneRecords.push(rel);
        r.readings.forEach((x, i) => {
          if (matchesTarget(target, x.userId, x.deviceId, x.ts)) seqs.push(r.firstSeq + i);
        });
      }
      if (seqs.length > 0) report.hits.push({ file: rel, kind: "wal", rows: seqs.length, seqs });
    }
  }
  try {
    report.pending = (await readManifest(dataDir)).tombstones?.filter((t) => t.userId === target.userId) ?? [];
  } catch {
    report.unreadable.push("MANIFEST");
  }
  report.tombstoneRecords = [...new Set(report.tombstoneRecords)];
  return report;
}

function matchesTarget(t: ScanTarget, userId: string, deviceId: string, ts: number): boolean {
  return userId === t.userId && (t.deviceId === undefined || deviceId === t.deviceId) &&
    (t.start === undefined || (ts >= t.start && ts < (t.end as number)));
}

async function scanParquet(file: string, t: ScanTarget): Promise<{ rows: number; seqs: number[] }> {
  const lf = pl.scanParquet(file);
  const columns = lf.columns;
  if (!columns.includes("user_id")) return { rows: 0, seqs: [] };
  const hasSeq = columns.includes("seq");
  const tsCol = columns.includes("timestamp") ? "CAST(timestamp AS BIGINT)" : columns.includes("ts") ? "ts" : "";
  const where = [`user_id = '${t.userId}'`];
  if (t.deviceId !== undefined && columns.includes("device_id")) where.push(`device_id = '${t.deviceId}'`);
  if (t.start !== undefined && (tsCol !== "" || columns.includes("minute_ms"))) {
    if (!Number.isSafeInteger(t.start) || !Number.isSafeInteger(t.end)) throw new Error("bad range");
    // A rollup row aggregates one minute: it can only be proven to hold a reading of the range when
    // the whole minute lies inside it (an edge minute may rightly keep readings outside the range).
    where.push(
      tsCol !== ""
        ? `${tsCol} >= ${t.start} AND ${tsCol} < ${t.end}`
        : `minute_ms >= ${t.start} AND minute_ms + 60000 <= ${t.end}`,
    );
  }
  const sql = `SELECT ${hasSeq ? "seq" : "1 AS seq"} FROM r WHERE ${where.join(" AND ")}`;
  const df = await checked(pl.SQLContext({ r: lf }).execute(sql)).collect();
  const seqs = hasSeq ? (df.getColumn("seq").toArray() as unknown[]).map(Number) : [];
  return { rows: df.height, seqs };
}

function* walk(dir: string): Generator<string> {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(full);
    else if (e.isFile()) yield full;
  }
}
