/**
 * The manifest: the one file that says which runs make up the database, and how far the WAL is
 * covered by them. It is replaced atomically (temp file, fsync, rename, fsync dir), so after a crash
 * either the old or the new manifest is in force, never a mix.
 *
 * File `MANIFEST` (docs/format/manifest.md): a header line
 * `pulsedb-manifest 1 <crc32c of the body, 8 hex digits> <body length>\n` followed by a JSON body.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { crashPoint } from "./crash-point.ts";
import { crc32c } from "./crc32c.ts";
import { writeFileAtomic } from "./fsutil.ts";
import type { RunMeta } from "./run.ts";
import type { Tombstone } from "./tombstones.ts";

/** The manifest's content. */
export interface ManifestData {
  /**
   * Body version: 2 since heart rates are stored as int64 micro-bpm (format 1 runs held float64)
   * and pending erasures may be listed in `tombstones` (a format-1 pulsedb refuses it).
   */
  format: 2;
  /** The next run id to hand out. */
  nextRunId: number;
  /** Every reading with seq <= flushedSeq is in a run. */
  flushedSeq: number;
  /** WAL segments numbered <= walSegment are covered by runs and may be deleted. */
  walSegment: number;
  runs: RunMeta[];
  /** Format 2: erasures accepted and not yet purged (tombstones.ts); absent when there are none. */
  tombstones?: Tombstone[];
}

/**
 * The manifest with `tombstones` as its pending erasures (the field is left out when there are none).
 *
 * @example
 * ```ts
 * withTombstones(EMPTY_MANIFEST, []).tombstones; // undefined
 * ```
 */
export function withTombstones(data: ManifestData, tombstones: readonly Tombstone[]): ManifestData {
  const { tombstones: _old, ...rest } = data;
  return tombstones.length === 0 ? { ...rest, format: 2 } : { ...rest, format: 2, tombstones: tombstones.slice() };
}

/** The manifest of an empty database. */
export const EMPTY_MANIFEST: ManifestData = { format: 2, nextRunId: 1, flushedSeq: 0, walSegment: 0, runs: [] };

/** The manifest file name inside the data directory. */
export const MANIFEST_FILE = "MANIFEST";

/** The manifest exists but cannot be trusted; start-up stops with this message. */
export class ManifestCorruptError extends Error {
  constructor(file: string, why: string) {
    super(
      `manifest ${file} is corrupt (${why}). pulsedb will not guess which runs hold your data. ` +
        `To recover: restore ${file} from a backup, or start once with PULSE_RECOVERY=rebuild-manifest to rebuild ` +
        `it from the run files (exact: every row carries its sequence number; see docs/corruption.md).`,
    );
    this.name = "ManifestCorruptError";
  }
}

/** The manifest is of an older format this version does not read (nothing is changed). */
export class ManifestFormatError extends Error {
  constructor(file: string, format: unknown) {
    super(
      `manifest ${file} is of format ${format}, written by an earlier pulsedb that stored heart rates as floats; ` +
        `this version stores them as fixed-point micro-bpm (format 2) and does not convert old runs. ` +
        `Start with an empty PULSE_DATA_DIR and ingest the readings again (nothing in ${file}'s directory was changed).`,
    );
    this.name = "ManifestFormatError";
  }
}

/**
 * Encodes a manifest with its header.
 *
 * @example
 * ```ts
 * const bytes = encodeManifest(EMPTY_MANIFEST);
 * ```
 */
export function encodeManifest(data: ManifestData): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(data, null, 1));
  const crc = crc32c(body).toString(16).padStart(8, "0");
  const header = new TextEncoder().encode(`pulsedb-manifest 1 ${crc} ${body.length}\n`);
  const out = new Uint8Array(header.length + body.length);
  out.set(header, 0);
  out.set(body, header.length);
  return out;
}

/**
 * Decodes and verifies a manifest.
 *
 * @throws ManifestCorruptError when the header, length, checksum or JSON is wrong;
 *   ManifestFormatError for a format-1 manifest (float heart rates).
 * @example
 * ```ts
 * decodeManifest(encodeManifest(EMPTY_MANIFEST), "MANIFEST").runs; // []
 * ```
 */
export function decodeManifest(bytes: Uint8Array, file: string): ManifestData {
  const nl = bytes.indexOf(10);
  if (nl < 0) throw new ManifestCorruptError(file, "no header line");
  const header = new TextDecoder().decode(bytes.subarray(0, nl));
  const m = /^pulsedb-manifest 1 ([0-9a-f]{8}) (\d+)$/.exec(header);
  if (!m) throw new ManifestCorruptError(file, "bad header");
  const body = bytes.subarray(nl + 1);
  if (body.length !== Number(m[2])) {
    throw new ManifestCorruptError(file, `body is ${body.length} bytes, header says ${m[2]}`);
  }
  if (crc32c(body) !== parseInt(m[1], 16)) throw new ManifestCorruptError(file, "checksum mismatch");
  let data: ManifestData;
  try {
    data = JSON.parse(new TextDecoder().decode(body)) as ManifestData;
  } catch {
    throw new ManifestCorruptError(file, "body is not JSON");
  }
  if ((data.format as number) === 1) throw new ManifestFormatError(file, 1);
  if (data.format !== 2 || !Array.isArray(data.runs)) throw new ManifestCorruptError(file, "unknown format");
  if (data.tombstones !== undefined && !Array.isArray(data.tombstones)) {
    throw new ManifestCorruptError(file, "tombstones is not a list");
  }
  return data;
}

/**
 * Reads the manifest of `dataDir`; an absent manifest is an empty database.
 *
 * @example
 * ```ts
 * const manifest = await readManifest("./data");
 * ```
 */
export async function readManifest(dataDir: string): Promise<ManifestData> {
  const file = path.join(dataDir, MANIFEST_FILE);
  let bytes: Uint8Array;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return structuredClone(EMPTY_MANIFEST);
    throw err;
  }
  return decodeManifest(bytes, file);
}

/**
 * Replaces the manifest atomically. When it resolves, the new manifest is durable.
 *
 * @example
 * ```ts
 * import type { RunMeta } from "./run.ts";
 *
 * const manifest = await readManifest("./data");
 * const meta: RunMeta = {
 *   id: 3, day: "2024-01-15", level: 0, file: "runs/day=2024-01-15/L0-3.parquet",
 *   rows: 120, minTs: 1705312800000, maxTs: 1705316399000, minSeq: 1, maxSeq: 120, bytes: 4096,
 * };
 * await writeManifest("./data", { ...manifest, runs: [...manifest.runs, meta] });
 * ```
 */
export async function writeManifest(dataDir: string, data: ManifestData): Promise<void> {
  await writeFileAtomic(
    path.join(dataDir, MANIFEST_FILE),
    encodeManifest(data),
    () => crashPoint("manifest-before-rename"),
  );
  crashPoint("manifest-after-rename");
}
