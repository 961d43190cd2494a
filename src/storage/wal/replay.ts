/**
 * WAL replay's repair rules, applied to one segment at open: what is a torn (never acknowledged)
 * tail that may be cut, and what is corruption with acknowledged data after it, which refuses to
 * open unless salvage is asked for. docs/format/wal.md has the table.
 *
 * @module
 */
import { dirname } from "node:path";
import { HEADER_BYTES, MAGIC, type ParsedSegment, WAL_MAGIC } from "./record.ts";
import { syncDir, truncateFile, type WalFs, type WalLogger, writeFully } from "./wal-fs.ts";
/** One cut made during recovery (a torn tail, salvaged corruption, a removed empty segment). */
export interface SegmentCut {
  file: string;
  offset: number;
  droppedBytes: number;
  reason: string;
}

/**
 * Check and (where the rules allow) repair one segment during open. `isLast`: the newest file (a
 * missing header can only be a crash during its creation). `nothingAfter`: no later segment holds
 * an intact record (so a bad tail here is a torn, never acknowledged write).
 */
export async function replaySegment(
  fs: WalFs,
  file: string,
  b: Uint8Array,
  parsed: ParsedSegment | undefined,
  isLast: boolean,
  nothingAfter: boolean,
  salvage: boolean,
  log: WalLogger,
): Promise<{ records: ParsedSegment["records"]; cut?: SegmentCut }> {
  if (parsed === undefined) {
    // A missing header (short, or only zeros) on the last segment = crash while creating it.
    if (isLast && (b.length < HEADER_BYTES || b.every((x) => x === 0))) {
      await fs.unlink(file);
      await syncDir(fs, dirname(file));
      const cut = {
        file,
        offset: 0,
        droppedBytes: b.length,
        reason: "missing segment header (crash during creation); file removed",
      };
      log("warn", "wal: removed segment without header", cut);
      return { records: [], cut };
    }
    if (!salvage) {
      throw new Error(
        `wal: segment ${file} has no valid ${WAL_MAGIC} header (${b.length} bytes) and is not the last segment; ` +
          `acknowledged data may follow in later segments. Set PULSE_WAL_SALVAGE=1 to start anyway by emptying ${file} (losing its records).`,
      );
    }
    const fd = await fs.open(file, "r+");
    try {
      await fs.ftruncate(fd, 0);
      await writeFully(fs, fd, MAGIC, 0);
      await fs.fsync(fd);
    } finally {
      await fs.close(fd).catch(() => {});
    }
    const cut = { file, offset: 0, droppedBytes: b.length, reason: "invalid segment header (salvaged)" };
    log("warn", "wal: SALVAGE emptied segment with invalid header", cut);
    return { records: [], cut };
  }

  const bad = parsed.bad;
  if (!bad) return { records: parsed.records };
  const torn = nothingAfter && bad.tail;
  if (!torn && !salvage) {
    const where = bad.tail ? "in later segments" : "later in this segment";
    throw new Error(
      `wal: corrupt record in ${file} at byte offset ${bad.offset} (${bad.reason}); acknowledged data follows the ` +
        `corruption (${where}), so the log will not be opened. Set PULSE_WAL_SALVAGE=1 to start anyway by cutting ` +
        `${file} at offset ${bad.offset}, losing everything after it in that segment.`,
    );
  }
  await truncateFile(fs, file, bad.offset);
  const cut = { file, offset: bad.offset, droppedBytes: b.length - bad.offset, reason: bad.reason };
  log("warn", torn ? "wal: torn tail truncated" : "wal: SALVAGE cut corrupt segment", cut);
  return { records: parsed.records, cut };
}
