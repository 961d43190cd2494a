/**
 * `npm run verify-erased -- --user ID [--device ID] [--start TS --end TS] [--data-dir DIR]`:
 * proves (or disproves) that a user's readings are gone from disk. Scans every Parquet file and
 * WAL segment under the data directory (default PULSE_DATA_DIR, else ./data) directly, not through
 * the manifest, and prints one JSON object: the files still holding matching readings (with their
 * sequence numbers), WAL segments still holding the user's DELETE record, unreadable files
 * (quarantined runs may hold anything), and erasures of the user still pending a purge.
 *
 * Exit status: 0 = nothing found (erased), 1 = something found or pending, 2 = bad arguments.
 * Readings the user sent after the DELETE are real data and are listed too.
 *
 * @module
 */
import { scanForUser, type ScanTarget } from "./storage/erasure-scan.ts";
import { ID_PATTERN } from "./reading.ts";

function usage(message: string): never {
  console.error(
    `${message}\nusage: npm run verify-erased -- --user ID [--device ID] [--start TS --end TS] [--data-dir DIR]`,
  );
  process.exit(2);
}

const args = process.argv.slice(2);
const opts: Record<string, string> = {};
for (let i = 0; i < args.length; i += 2) {
  const key = args[i];
  if (!key.startsWith("--") || args[i + 1] === undefined) usage(`bad argument ${key}`);
  opts[key.slice(2)] = args[i + 1];
}
for (const key of Object.keys(opts)) {
  if (!["user", "device", "start", "end", "data-dir"].includes(key)) usage(`unknown option --${key}`);
}
if (opts.user === undefined || !ID_PATTERN.test(opts.user)) usage("--user is required (a valid user_id)");
if (opts.device !== undefined && !ID_PATTERN.test(opts.device)) usage("--device must be a valid device_id");
if ((opts.start === undefined) !== (opts.end === undefined)) usage("give --start and --end together");
const target: ScanTarget = { userId: opts.user };
if (opts.device !== undefined) target.deviceId = opts.device;
if (opts.start !== undefined) {
  target.start = Date.parse(opts.start);
  target.end = Date.parse(opts.end);
  if (!Number.isSafeInteger(target.start) || !Number.isSafeInteger(target.end) || target.start >= target.end) {
    usage("--start and --end must be ISO 8601 date-times with start < end");
  }
}
const dataDir = opts["data-dir"] ?? process.env.PULSE_DATA_DIR ?? "./data";
const report = await scanForUser(dataDir, target);
const erased = report.hits.length === 0 && report.tombstoneRecords.length === 0 && report.unreadable.length === 0 &&
  report.pending.length === 0;
console.log(JSON.stringify(
  {
    erased,
    dataDir,
    target,
    filesScanned: report.filesScanned,
    hits: report.hits.map((h) => ({
      file: h.file,
      kind: h.kind,
      rows: h.rows,
      seqs: h.seqs.length === 0 ? undefined : [Math.min(...h.seqs), Math.max(...h.seqs)],
    })),
    tombstoneRecords: report.tombstoneRecords,
    unreadable: report.unreadable,
    pending: report.pending.map((t) => ({ ...t, requestedAt: new Date(t.requestedAt).toISOString() })),
  },
  null,
  1,
));
process.exit(erased ? 0 : 1);
