/**
 * Operator-requested recovery (`PULSE_RECOVERY=rebuild-manifest`): rebuilds MANIFEST from the run
 * files on disk. Used when the manifest is corrupt or lost, or to set aside a damaged run.
 *
 * Why it is exact: every row of a run carries its sequence number, runs are immutable, and the
 * query keeps the highest sequence per identity. So taking every readable run file (including
 * outputs of a flush or compaction that had not been published yet, next to their inputs) gives
 * the same answers: copies of one reading have the same sequence and value. The rebuilt manifest
 * covers no WAL segment, so start-up replays the whole WAL on top (again, duplicates are harmless).
 *
 * What is lost: only the rows of run files that cannot be read, or whose checksum differs from the
 * one a (still decodable) old manifest recorded. Those files are moved to
 * `<dataDir>/quarantine/` (never deleted) and named in the log, so nothing disappears silently.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Logger } from "../ops/logger.ts";
import { MANIFEST_FILE, type ManifestData, withTombstones, writeManifest } from "./manifest.ts";
import type { Tombstone } from "./tombstones.ts";
import { ID_PATTERN } from "../reading.ts";
import pl from "nodejs-polars";
import { checked } from "./run-sql.ts";
import { fileChecksum, listRunFiles, type RunMeta, runStats } from "./run.ts";
import { ensureDir } from "./fsutil.ts";
import { writeRollup } from "./rollup.ts";

const RUN_NAME = /^runs\/day=(\d{4}-\d{2}-\d{2})\/L(\d+)-(\d+)\.parquet$/;

/**
 * Rebuilds the manifest from the run files present, quarantining unreadable ones.
 *
 * @returns the new manifest (already durable).
 * @example
 * ```ts
 * import { createLogger } from "../ops/logger.ts";
 *
 * const manifest = await rebuildManifest("./data", createLogger("warn"));
 * ```
 */
export async function rebuildManifest(dataDir: string, log: Logger): Promise<ManifestData> {
  const runs: RunMeta[] = [];
  const known = await knownChecksums(dataDir);
  let nextRunId = 1;
  for (const file of await listRunFiles(dataDir)) {
    const m = RUN_NAME.exec(file);
    if (!m) continue; // temp files and strangers: the orphan sweep removes them
    const full = path.join(dataDir, file);
    try {
      const { bytes, crc } = await fileChecksum(full);
      const expected = known.get(file);
      if (expected !== undefined && expected !== crc) {
        throw new Error("checksum differs from the one the old manifest recorded");
      }
      await readWholeRun(full);
      const stats = await runStats(full);
      const id = Number(m[3]);
      // Rollups are derived from the run: regenerate rather than trust what lies on disk.
      const rollup = await writeRollup(dataDir, file);
      runs.push({ id, day: m[1], level: Number(m[2]), file, bytes, crc32c: crc, ...stats, rollup });
      nextRunId = Math.max(nextRunId, id + 1);
    } catch (err) {
      const target = path.join(dataDir, "quarantine", file.replaceAll("/", "__"));
      await ensureDir(path.dirname(target));
      await fs.promises.rename(full, target);
      log.error("recovery: run file unreadable, moved to quarantine; its readings are not served", {
        file,
        quarantined: target,
        err,
      });
    }
  }
  runs.sort((a, b) => a.id - b.id);
  // Pending erasures the old manifest still names are carried over when its body can be parsed
  // (the WAL, replayed whole after a rebuild, brings back those it still holds).
  const pending = await knownTombstones(dataDir);
  const manifest: ManifestData = withTombstones({ format: 2, nextRunId, flushedSeq: 0, walSegment: 0, runs }, pending);
  if (pending.length > 0) {
    log.warn("recovery: pending erasures carried over from the old manifest", { n: pending.length });
  }
  const old = path.join(dataDir, MANIFEST_FILE);
  if (fs.existsSync(old)) await fs.promises.rename(old, path.join(dataDir, `${MANIFEST_FILE}.corrupt-${Date.now()}`));
  await writeManifest(dataDir, manifest);
  log.warn("recovery: manifest rebuilt from run files", { runs: runs.length });
  return manifest;
}

/** Decodes every page of a run (a damaged page fails to decompress or decode). */
async function readWholeRun(full: string): Promise<void> {
  const lf = pl.SQLContext({ r: pl.scanParquet(full) }).execute(
    "SELECT MAX(LENGTH(user_id)) AS a, MAX(LENGTH(device_id)) AS b, SUM(heart_rate) AS c, SUM(seq) AS d, MAX(timestamp) AS e FROM r",
  );
  const df = await checked(lf).collect();
  const hr = String(df.getColumn("c").dtype);
  if (!/int64/i.test(hr)) throw new Error(`heart_rate is ${hr}, not int64 micro-bpm (a run of an earlier format)`);
}

/** Tombstones (pending erasures) the old manifest names, when its body can still be parsed. */
async function knownTombstones(dataDir: string): Promise<Tombstone[]> {
  try {
    const text = await fs.promises.readFile(path.join(dataDir, MANIFEST_FILE), "utf8");
    const body = JSON.parse(text.slice(text.indexOf("\n") + 1)) as ManifestData;
    return (body.tombstones ?? []).filter((t) =>
      Number.isSafeInteger(t.seq) && typeof t.userId === "string" && ID_PATTERN.test(t.userId) &&
      Number.isSafeInteger(t.segment)
    );
  } catch {
    return [];
  }
}

/** Checksums recorded by the old manifest, when its body can still be parsed (checksum ignored). */
async function knownChecksums(dataDir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    const text = await fs.promises.readFile(path.join(dataDir, MANIFEST_FILE), "utf8");
    const body = JSON.parse(text.slice(text.indexOf("\n") + 1)) as ManifestData;
    for (const r of body.runs ?? []) if (typeof r.crc32c === "number") out.set(r.file, r.crc32c);
  } catch {
    // no manifest, or not parseable: nothing known
  }
  return out;
}
