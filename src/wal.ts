/**
 * The write-ahead log: every accepted batch of readings is appended here, and made durable, before
 * the ingest answer is sent. On start-up the log is replayed to rebuild what was not yet flushed.
 *
 * Layout (docs/format/wal.md has the byte-level description and the recovery table):
 * - a directory of segment files `wal-00000001.log`, `wal-00000002.log`, ... (8-digit, increasing);
 * - each segment: the 8-byte magic `PDBWAL01`, then records `u32 LE length | u32 LE crc32c | payload`;
 * - payload: `u8 type=1 | f64 LE firstSeq | u32 LE count | count x reading`, a reading being
 *   `u8 len | userId | u8 len | deviceId | f64 LE ts | f64 LE heartRate`.
 *
 * Durability: group commit. `append` encodes synchronously and queues; one flush cycle at a time
 * takes everything queued, writes it with one write per segment, fdatasyncs each touched file once
 * and then settles all of those appends. New segment files are created under a temporary name,
 * synced, renamed into place, and the directory is fsync'd, so a segment either exists with a whole
 * header or not at all.
 *
 * Only `node:fs`, `node:path` and web-standard APIs are used, so this runs on Node.js and Deno.
 *
 * @module
 */

import * as nodeFs from "node:fs";
import { dirname, join } from "node:path";
import { crc32c } from "./crc32c.ts";
import type { Reading } from "./reading.ts";

// ---------------------------------------------------------------------------------------------
// Format constants

/** The 8 ASCII bytes every segment starts with. */
export const WAL_MAGIC = "PDBWAL01";
const MAGIC = new TextEncoder().encode(WAL_MAGIC);
const HEADER_BYTES = MAGIC.length; // 8
/** The largest payload one record may carry; larger appends throw. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;
const RECORD_HEADER = 8; // u32 length + u32 crc
const PAYLOAD_HEADER = 13; // u8 type + f64 firstSeq + u32 count
const MIN_READING_BYTES = 18; // two length bytes + ts + heartRate (ids themselves may be empty)
const TYPE_READINGS = 1;
const WRITE_CHUNK = 16 * 1024 * 1024; // concatenate at most this much into one write call
const SEGMENT_RE = /^wal-(\d{8,})\.log$/;
const TEMP_RE = /^wal-\d{8,}\.log\.tmp$/;

// ---------------------------------------------------------------------------------------------
// Public types

/** "always": an append resolves after the fdatasync covering it; "interval": after write(2). */
export type SyncMode = "always" | "interval";

/** Structured logger; `fields` are extra key/values for a JSON log line. */
export type WalLogger = (
  level: "info" | "warn" | "error",
  msg: string,
  fields?: Record<string, unknown>,
) => void;

/**
 * The file-system calls the WAL makes, promise-style and fd-based. The default is `nodeWalFs`
 * (node:fs); tests wrap it to inject faults. Errors should carry the errno `code` (ENOSPC, EIO...).
 */
export interface WalFs {
  open(path: string, flags: string): Promise<number>;
  /** Positioned write of `data[offset, offset+length)` at file `position`; resolves bytes written. */
  write(fd: number, data: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  close(fd: number): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  readdir(path: string): Promise<string[]>;
  /** Recursive: no error if it exists. */
  mkdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

export interface WalOptions {
  /** The directory holding the segment files (normally `<dataDir>/wal`); created if missing. */
  dir: string;
  /** Default "always". */
  syncMode?: SyncMode;
  /** How often "interval" mode fdatasyncs, in ms. Default 100. */
  syncIntervalMs?: number;
  /** Default: warnings and errors as JSON lines on stderr. */
  logger?: WalLogger;
  /** Default `nodeWalFs`. */
  fs?: WalFs;
  /**
   * Start even if a segment is corrupt in the middle: cut it at the bad record (losing what follows
   * in that segment) instead of refusing to open. The engine maps PULSE_WAL_SALVAGE=1 to this.
   */
  salvage?: boolean;
  /** The lowest number a new segment may get (the engine passes one past what its manifest covers). */
  minSegment?: number;
  /** Called after each record fdatasync with its duration in ms and the records it covered (metrics). Must not throw. */
  onSync?: (ms: number, records: number) => void;
}

/** One replayed record. Reading `i` has sequence number `firstSeq + i`. */
export interface ReplayedBatch {
  segment: number;
  firstSeq: number;
  readings: Reading[];
}

/** What `Wal.open` found and did. */
export interface WalOpenResult {
  wal: Wal;
  /** Every intact record, in log order. */
  batches: ReplayedBatch[];
  /** The highest sequence number replayed; 0 if none. */
  maxSeq: number;
  /** Each cut made during recovery (torn tails, salvaged corruption, removed empty segments). */
  truncated: Array<{ file: string; offset: number; droppedBytes: number; reason: string }>;
}

// ---------------------------------------------------------------------------------------------
// Default file system (node:fs callbacks; Deno implements them too)

type Cb<T> = (err: NodeJS.ErrnoException | null, value: T) => void;
function call<T>(f: (cb: Cb<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => f((err, value) => (err ? reject(err) : resolve(value))));
}

/**
 * The default `WalFs`, backed by `node:fs`.
 *
 * @example
 * ```ts
 * // Wrap it to inject a fault in tests:
 * const fs: WalFs = { ...nodeWalFs, fdatasync: () => Promise.reject(Object.assign(new Error("EIO"), { code: "EIO" })) };
 * ```
 */
export const nodeWalFs: WalFs = {
  open: (path, flags) => call<number>((cb) => nodeFs.open(path, flags, 0o644, cb)),
  write: (fd, data, offset, length, position) =>
    call<number>((cb) => nodeFs.write(fd, data, offset, length, position, cb)),
  fdatasync: (fd) => call<void>((cb) => nodeFs.fdatasync(fd, cb)),
  fsync: (fd) => call<void>((cb) => nodeFs.fsync(fd, cb)),
  ftruncate: (fd, length) => call<void>((cb) => nodeFs.ftruncate(fd, length, cb)),
  close: (fd) => call<void>((cb) => nodeFs.close(fd, cb)),
  readFile: (path) => call<Uint8Array>((cb) => nodeFs.readFile(path, cb)),
  readdir: (path) => call<string[]>((cb) => nodeFs.readdir(path, cb)),
  mkdir: (path) => call<string | undefined>((cb) => nodeFs.mkdir(path, { recursive: true }, cb)).then(() => {}),
  rename: (from, to) => call<void>((cb) => nodeFs.rename(from, to, cb)),
  unlink: (path) => call<void>((cb) => nodeFs.unlink(path, cb)),
};

const defaultLogger: WalLogger = (level, msg, fields) => {
  if (level !== "info") console.error(JSON.stringify({ level, msg, ...fields }));
};

function errCode(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

/** fsync a directory so that entries created/renamed/removed in it are durable. */
async function syncDir(fs: WalFs, dir: string): Promise<void> {
  // Platforms that cannot open or fsync a directory (Windows) answer with one of these: skip.
  const unsupported = (e: unknown) => ["EISDIR", "EINVAL", "EPERM", "ENOTSUP", "EBADF"].includes(errCode(e) ?? "");
  let fd: number;
  try {
    fd = await fs.open(dir, "r");
  } catch (e) {
    if (unsupported(e)) return;
    throw e;
  }
  try {
    await fs.fsync(fd);
  } catch (e) {
    if (!unsupported(e)) throw e;
  } finally {
    await fs.close(fd).catch(() => {});
  }
}

/** Write all of `data` at `position`, looping over short writes. */
async function writeFully(fs: WalFs, fd: number, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const n = await fs.write(fd, data, done, data.length - done, position + done);
    if (!(n > 0)) throw Object.assign(new Error("wal: write(2) wrote nothing"), { code: "EIO" });
    done += n;
  }
}

/** Cut `path` to `length` bytes and make that durable. */
async function truncateFile(fs: WalFs, path: string, length: number): Promise<void> {
  const fd = await fs.open(path, "r+");
  try {
    await fs.ftruncate(fd, length);
    await fs.fsync(fd);
  } finally {
    await fs.close(fd).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Naming

/**
 * The file name of segment `n`.
 *
 * @example
 * ```ts
 * segmentFileName(1); // "wal-00000001.log"
 * ```
 */
export function segmentFileName(n: number): string {
  return `wal-${String(n).padStart(8, "0")}.log`;
}

function parseSegmentName(name: string): number | null {
  const m = SEGMENT_RE.exec(name);
  return m ? Number(m[1]) : null;
}

// ---------------------------------------------------------------------------------------------
// Encoding

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** UTF-8 byte length of an id; throws if it does not fit the u8 length prefix. */
function idByteLength(s: string): number {
  if (s.length > 255) throw new RangeError(`wal: id longer than 255 bytes: ${s.slice(0, 32)}...`);
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      const n = utf8Encoder.encode(s).length;
      if (n > 255) throw new RangeError(`wal: id longer than 255 UTF-8 bytes: ${s.slice(0, 32)}...`);
      return n;
    }
  }
  return s.length;
}

/** Write `u8 len | bytes` of an id at `p`; returns the position after it. ASCII fast path. */
function putId(buf: Uint8Array, p: number, s: string): number {
  const len = s.length;
  let i = 0;
  for (; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) break;
    buf[p + 1 + i] = c;
  }
  if (i === len) {
    buf[p] = len;
    return p + 1 + len;
  }
  const { written } = utf8Encoder.encodeInto(s, buf.subarray(p + 1, p + 256));
  buf[p] = written;
  return p + 1 + written;
}

/**
 * Encode one whole record (`length | crc | payload`) into a single new Uint8Array.
 *
 * Pre: `readings.length >= 1`; `firstSeq` is a safe integer >= 0 and so is `firstSeq + count - 1`;
 * every id is at most 255 UTF-8 bytes; the payload is at most 64 MiB. Otherwise throws RangeError.
 *
 * @example
 * ```ts
 * const rec = encodeRecord(1, [{ userId: "u1", deviceId: "device_a", ts: 1705312800000, heartRate: 72 }]);
 * // rec.length === 8 + 13 + (1 + 2 + 1 + 8 + 16)
 * ```
 */
export function encodeRecord(firstSeq: number, readings: readonly Reading[]): Uint8Array {
  const n = readings.length;
  if (n === 0) throw new RangeError("wal: a record needs at least one reading");
  if (!Number.isSafeInteger(firstSeq) || firstSeq < 0 || !Number.isSafeInteger(firstSeq + n - 1)) {
    throw new RangeError(`wal: bad sequence number ${firstSeq} for ${n} readings`);
  }
  const tooBig = () => new RangeError(`wal: record payload over ${MAX_PAYLOAD_BYTES} bytes (${n} readings)`);
  if (PAYLOAD_HEADER + n * MIN_READING_BYTES > MAX_PAYLOAD_BYTES) throw tooBig();
  let size = RECORD_HEADER + PAYLOAD_HEADER;
  for (let i = 0; i < n; i++) {
    const r = readings[i];
    size += MIN_READING_BYTES + idByteLength(r.userId) + idByteLength(r.deviceId);
  }
  if (size - RECORD_HEADER > MAX_PAYLOAD_BYTES) throw tooBig();

  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, size - RECORD_HEADER, true);
  buf[8] = TYPE_READINGS;
  dv.setFloat64(9, firstSeq, true);
  dv.setUint32(17, n, true);
  let p = RECORD_HEADER + PAYLOAD_HEADER;
  for (let i = 0; i < n; i++) {
    const r = readings[i];
    p = putId(buf, p, r.userId);
    p = putId(buf, p, r.deviceId);
    dv.setFloat64(p, r.ts, true);
    dv.setFloat64(p + 8, r.heartRate, true);
    p += 16;
  }
  dv.setUint32(4, crc32c(buf, RECORD_HEADER, size), true);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Decode an id, reusing `prev` when the bytes are the same ASCII (interns repeated ids). */
function readId(b: Uint8Array, p: number, len: number, prev: string): string {
  if (prev.length === len) {
    let i = 0;
    while (i < len && b[p + i] < 0x80 && prev.charCodeAt(i) === b[p + i]) i++;
    if (i === len) return prev;
  }
  let ascii = true;
  for (let i = 0; i < len; i++) if (b[p + i] > 0x7f) ascii = false;
  if (!ascii) return utf8Decoder.decode(b.subarray(p, p + len));
  return String.fromCharCode.apply(null, b.subarray(p, p + len) as unknown as number[]);
}

interface Decoded {
  firstSeq: number;
  readings: Reading[];
}

/** Decode the payload `b[start, end)`; a string result is the reason it is not valid. */
function decodePayload(b: Uint8Array, dv: DataView, start: number, end: number, ids: { u: string; d: string }): Decoded | string {
  if (b[start] !== TYPE_READINGS) return `unknown record type ${b[start]}`;
  const firstSeq = dv.getFloat64(start + 1, true);
  const count = dv.getUint32(start + 9, true);
  if (!Number.isSafeInteger(firstSeq) || firstSeq < 0) return `bad firstSeq ${firstSeq}`;
  if (count === 0 || count > (end - start - PAYLOAD_HEADER) / MIN_READING_BYTES) return `bad reading count ${count}`;
  if (!Number.isSafeInteger(firstSeq + count - 1)) return `sequence overflow`;
  const readings = new Array<Reading>(count);
  let p = start + PAYLOAD_HEADER;
  for (let i = 0; i < count; i++) {
    const ul = b[p++];
    if (p + ul + 1 > end) return `reading ${i} runs past the payload`;
    const userId = (ids.u = readId(b, p, ul, ids.u));
    p += ul;
    const dl = b[p++];
    if (p + dl + 16 > end) return `reading ${i} runs past the payload`;
    const deviceId = (ids.d = readId(b, p, dl, ids.d));
    p += dl;
    readings[i] = { userId, deviceId, ts: dv.getFloat64(p, true), heartRate: dv.getFloat64(p + 8, true) };
    p += 16;
  }
  if (p !== end) return `${end - p} trailing bytes in payload`;
  return { firstSeq, readings };
}

/** Try the record at `off`: its decoded content and end, or the reason it is bad. */
function readRecord(b: Uint8Array, dv: DataView, off: number, ids: { u: string; d: string }): (Decoded & { end: number }) | string {
  if (b.length - off < RECORD_HEADER) return `record header cut short (${b.length - off} of 8 bytes)`;
  const len = dv.getUint32(off, true);
  if (len < PAYLOAD_HEADER || len > MAX_PAYLOAD_BYTES) return `implausible payload length ${len}`;
  const end = off + RECORD_HEADER + len;
  if (end > b.length) return `payload length ${len} runs past end of file`;
  const crc = dv.getUint32(off + 4, true);
  if (crc32c(b, off + RECORD_HEADER, end) !== crc) return `checksum mismatch`;
  const d = decodePayload(b, dv, off + RECORD_HEADER, end, ids);
  return typeof d === "string" ? `undecodable payload: ${d}` : { ...d, end };
}

/** Is there any intact record starting anywhere in `b[from, EOF)`? (Distinguishes torn tails.) */
function intactRecordAfter(b: Uint8Array, dv: DataView, from: number): boolean {
  const ids = { u: "", d: "" };
  for (let p = from; p + RECORD_HEADER + PAYLOAD_HEADER <= b.length; p++) {
    const len = dv.getUint32(p, true);
    // Cheap filters first: plausible length inside the file and the right type byte.
    if (len < PAYLOAD_HEADER || len > MAX_PAYLOAD_BYTES || p + RECORD_HEADER + len > b.length) continue;
    if (b[p + RECORD_HEADER] !== TYPE_READINGS) continue;
    if (typeof readRecord(b, dv, p, ids) !== "string") return true;
  }
  return false;
}

interface ParsedSegment {
  records: Array<Decoded & { offset: number }>;
  /** The first bad record, if any; `tail` = nothing intact follows it in this file. */
  bad?: { offset: number; reason: string; tail: boolean };
}

/** Parse every record after the header, stopping at the first bad one. */
function parseSegment(b: Uint8Array): ParsedSegment {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const ids = { u: "", d: "" };
  const records: ParsedSegment["records"] = [];
  let off = HEADER_BYTES;
  while (off < b.length) {
    const r = readRecord(b, dv, off, ids);
    if (typeof r === "string") {
      return { records, bad: { offset: off, reason: r, tail: !intactRecordAfter(b, dv, off + 1) } };
    }
    records.push({ firstSeq: r.firstSeq, readings: r.readings, offset: off });
    off = r.end;
  }
  return { records };
}

function hasMagic(b: Uint8Array): boolean {
  if (b.length < HEADER_BYTES) return false;
  for (let i = 0; i < HEADER_BYTES; i++) if (b[i] !== MAGIC[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// The log

/** One segment file and its write state. */
interface Segment {
  readonly number: number;
  readonly path: string;
  fd: number; // -1 when not open
  created: boolean; // header written+synced and file renamed into place
  size: number; // end of the last record known good (written; and synced in "always" mode)
  unsynced: number; // records written but not yet fdatasync'ed ("interval" mode)
  queued: number; // appends queued for this segment and not yet settled
  retired: boolean; // no longer the current segment
  broken: boolean; // a failed write could not be truncated away yet
  deleted: boolean; // removed by deleteSegmentsThrough
  wantCreate: boolean; // create eagerly at the next cycle
}

interface PendingAppend {
  seg: Segment;
  bytes: Uint8Array;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * The write-ahead log. Obtain one with `Wal.open`.
 *
 * Invariants: records in a file are in `append()` call order; sequence numbers strictly increase
 * across the log; at most one flush cycle touches the files at a time.
 *
 * @example
 * ```ts
 * const { wal, batches, maxSeq } = await Wal.open({ dir: "data/wal" });
 * for (const b of batches) memtable.apply(b.firstSeq, b.readings);
 * let seq = maxSeq;
 * await wal.append(seq + 1, readings); // durable once this resolves
 * seq += readings.length;
 * const closed = wal.rotate(); // before flushing the memtable
 * // ... flush memtable to a run ...
 * await wal.deleteSegmentsThrough(closed);
 * await wal.close();
 * ```
 */
export class Wal {
  private readonly fs: WalFs;
  private readonly dir: string;
  private readonly mode: SyncMode;
  private readonly log: WalLogger;
  private readonly segments: Segment[] = []; // open or still-referenced segments, ascending
  private current: Segment;
  private lastSeq: number;
  private pending: PendingAppend[] = [];
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private enqueued = 0;
  private settled = 0;
  private waiters: Array<{ target: number; resolve: () => void }> = [];
  private syncRequested = false;
  private housekeeping = false;
  private closed = false;
  private closing: Promise<void> | null = null;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly counters = { syncs: 0, syncedRecords: 0, lastSyncMs: 0 };
  private readonly onSync: ((ms: number, records: number) => void) | undefined;

  private constructor(opts: WalOptions, fs: WalFs, log: WalLogger, segment: number, lastSeq: number) {
    this.fs = fs;
    this.dir = opts.dir;
    this.mode = opts.syncMode ?? "always";
    this.onSync = opts.onSync;
    this.log = log;
    this.lastSeq = lastSeq;
    this.current = this.newSegment(segment);
  }

  /**
   * Open (creating if missing) the log in `opts.dir`, replay it, and start a new segment.
   *
   * Pre: no other process has the directory open.
   * Post: `batches` holds every intact record in log order; torn tails of the last segment are cut
   * (and listed in `truncated`); leftover temp files are removed; a new segment numbered
   * last+1 exists on disk (durably) and takes all appends. Rejects, naming the file and offset, on
   * corruption that has acknowledged data after it, unless `opts.salvage`.
   *
   * @example
   * ```ts
   * const { wal, batches, maxSeq, truncated } = await Wal.open({ dir: "data/wal", salvage: process.env.PULSE_WAL_SALVAGE === "1" });
   * ```
   */
  static async open(opts: WalOptions): Promise<WalOpenResult> {
    const fs = opts.fs ?? nodeWalFs;
    const log = opts.logger ?? defaultLogger;
    const mode = opts.syncMode ?? "always";
    const intervalMs = opts.syncIntervalMs ?? 100;
    if (mode !== "always" && mode !== "interval") throw new RangeError(`wal: unknown syncMode ${String(mode)}`);
    if (!(intervalMs > 0)) throw new RangeError(`wal: syncIntervalMs must be > 0, got ${intervalMs}`);

    await fs.mkdir(opts.dir);
    await syncDir(fs, dirname(opts.dir)); // in case we just created it
    const names = await fs.readdir(opts.dir);
    for (const name of names.filter((n) => TEMP_RE.test(n))) {
      await fs.unlink(join(opts.dir, name)); // a segment whose creation never finished: holds no records
      log("info", "wal: removed unfinished segment file", { file: join(opts.dir, name) });
    }
    const numbers = names.map(parseSegmentName).filter((n): n is number => n !== null).sort((a, b) => a - b);

    const batches: ReplayedBatch[] = [];
    const truncated: WalOpenResult["truncated"] = [];
    let maxSeq = 0;
    // A bad tail is a torn (never acknowledged) write when no later segment holds an intact record:
    // a rotation can create segment N+1 before N's last queued record is written and synced, so a
    // crash there leaves N torn with only an empty N+1 after it.
    const files = numbers.map((n) => join(opts.dir, segmentFileName(n)));
    const contents = await Promise.all(files.map((f) => fs.readFile(f)));
    const parsed = contents.map((b) => (hasMagic(b) ? parseSegment(b) : undefined));
    const holdsRecords = parsed.map((p) => p !== undefined && p.records.length > 0);
    for (let k = 0; k < numbers.length; k++) {
      const number = numbers[k];
      const file = files[k];
      const nothingAfter = !holdsRecords.slice(k + 1).some(Boolean);
      const res = await replaySegment(fs, file, contents[k], parsed[k], k === numbers.length - 1, nothingAfter, opts.salvage === true, log);
      if (res.cut) truncated.push(res.cut);
      for (const r of res.records) {
        if (r.firstSeq <= maxSeq) {
          log("warn", "wal: sequence numbers not increasing", { file, offset: r.offset, firstSeq: r.firstSeq, maxSeq });
        }
        maxSeq = Math.max(maxSeq, r.firstSeq + r.readings.length - 1);
        batches.push({ segment: number, firstSeq: r.firstSeq, readings: r.readings });
      }
    }

    const wal = new Wal(opts, fs, log, Math.max((numbers.at(-1) ?? 0) + 1, opts.minSegment ?? 1), maxSeq);
    try {
      await wal.createSegment(wal.current);
    } catch (err) {
      await wal.abandonCreate(wal.current);
      throw err;
    }
    if (mode === "interval") {
      wal.timer = setInterval(() => {
        if (wal.segments.some((s) => s.unsynced > 0)) {
          wal.syncRequested = true;
          wal.kick();
        }
      }, intervalMs);
      (wal.timer as { unref?: () => void }).unref?.();
    }
    return { wal, batches, maxSeq, truncated };
  }

  /**
   * Queue `readings` (sequence numbers `firstSeq ..= firstSeq + n - 1`) for the current segment.
   *
   * Pre: the log is open; `firstSeq` > every sequence number appended or replayed before; see
   * `encodeRecord` for the size limits. Violations throw synchronously and nothing is queued.
   * Post: the promise resolves once the record is fdatasync'ed ("always") or written ("interval");
   * it rejects with the fs error (its `code` kept) if that write or sync failed, in which case the
   * record is not in the log.
   *
   * @example
   * ```ts
   * await wal.append(42, [{ userId: "u1", deviceId: "device_a", ts: Date.now(), heartRate: 72 }]);
   * ```
   */
  append(firstSeq: number, readings: readonly Reading[]): Promise<void> {
    if (this.closed) throw new Error("wal: append after close");
    if (!(firstSeq > this.lastSeq)) {
      throw new RangeError(`wal: sequence number ${firstSeq} not above the last one (${this.lastSeq})`);
    }
    const bytes = encodeRecord(firstSeq, readings);
    this.lastSeq = firstSeq + readings.length - 1;
    const seg = this.current;
    seg.queued++;
    this.enqueued++;
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ seg, bytes, resolve, reject });
      this.kick();
    });
  }

  /**
   * Switch appends to a new segment (number = current + 1), synchronously.
   *
   * Post: returns the number of the segment that was current; records already queued for it are
   * still written and synced to it, then its file is closed. The new file is created in the
   * background (and at the latest with its first record).
   *
   * @example
   * ```ts
   * const closed = wal.rotate(); // all data up to here is in segments <= closed
   * ```
   */
  rotate(): number {
    if (this.closed) throw new Error("wal: rotate after close");
    const old = this.current;
    old.retired = true;
    this.current = this.newSegment(old.number + 1);
    this.current.wantCreate = true;
    this.housekeeping = true;
    this.kick();
    return old.number;
  }

  /**
   * The number of the segment appends currently go to.
   *
   * @example
   * ```ts
   * wal.currentSegment(); // 7
   * ```
   */
  currentSegment(): number {
    return this.current.number;
  }

  /**
   * Delete every segment file numbered <= `segment` (never the current one), then fsync the
   * directory.
   *
   * Pre: the caller no longer needs those records (they are flushed elsewhere).
   * Post: every append made before the call has settled; the files are gone, durably.
   *
   * @example
   * ```ts
   * const closed = wal.rotate();
   * await flushMemtable();
   * await wal.deleteSegmentsThrough(closed);
   * ```
   */
  async deleteSegmentsThrough(segment: number): Promise<void> {
    const limit = Math.min(segment, this.current.number - 1);
    if (!(limit >= 1)) return;
    await this.whenSettled();
    for (const s of this.segments) if (s.number <= limit) s.deleted = true;
    this.housekeeping = true; // let the flush loop close their fds
    this.kick();
    let removed = 0;
    for (const name of await this.fs.readdir(this.dir)) {
      const n = parseSegmentName(name);
      if (n === null || n > limit) continue;
      try {
        await this.fs.unlink(join(this.dir, name));
        removed++;
      } catch (err) {
        if (errCode(err) !== "ENOENT") throw err;
      }
    }
    if (removed > 0) await syncDir(this.fs, this.dir);
  }

  /**
   * Write and sync everything queued, then close all files. Idempotent.
   *
   * Post: no further append/rotate is allowed. Rejects if a final sync ("interval" mode) fails.
   *
   * @example
   * ```ts
   * await wal.close();
   * ```
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    clearInterval(this.timer);
    this.closing = (async () => {
      await this.whenSettled();
      while (this.running) await this.loopDone;
      await this.repairBroken();
      let firstErr: unknown;
      for (const seg of this.segments) {
        if (seg.fd < 0) continue;
        if (seg.unsynced > 0 && !seg.deleted) {
          try {
            await this.timedSync(seg, seg.unsynced);
          } catch (err) {
            firstErr ??= err;
          }
        }
        await this.fs.close(seg.fd).catch(() => {});
        seg.fd = -1;
      }
      this.segments.length = 0;
      if (firstErr !== undefined) throw firstErr;
    })();
    return this.closing;
  }

  /**
   * Counters for metrics and back-pressure: `syncs` = record fdatasyncs done, `syncedRecords` =
   * records those covered, `lastSyncMs` = duration of the latest one, `pendingRecords` = appends
   * not yet settled.
   *
   * @example
   * ```ts
   * if (wal.stats().pendingRecords > 50_000) return overloaded();
   * ```
   */
  stats(): { syncs: number; syncedRecords: number; lastSyncMs: number; pendingRecords: number } {
    return { ...this.counters, pendingRecords: this.enqueued - this.settled };
  }

  // -------------------------------------------------------------------------------------------
  // Flush loop

  private newSegment(number: number): Segment {
    const seg: Segment = {
      number, path: join(this.dir, segmentFileName(number)), fd: -1, created: false, size: 0,
      unsynced: 0, queued: 0, retired: false, broken: false, deleted: false, wantCreate: false,
    };
    this.segments.push(seg);
    return seg;
  }

  /** Start the flush loop unless it runs; deferred a microtask so a synchronous burst shares it. */
  private kick(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = Promise.resolve().then(() => this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (this.pending.length > 0 || this.syncRequested || this.housekeeping) await this.cycle();
    } catch (err) {
      // cycle() handles fs errors itself; this is a bug. Fail what is queued rather than hang it.
      this.log("error", "wal: flush loop failed", { error: String(err) });
      const stranded = this.pending;
      this.pending = [];
      for (const p of stranded) p.reject(err);
      this.settle(stranded, 0, stranded.length);
    } finally {
      this.running = false;
    }
  }

  /** One group-commit cycle: everything queued right now shares its writes and syncs. */
  private async cycle(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const syncDue = this.syncRequested;
    this.syncRequested = false;
    this.housekeeping = false;

    await this.repairBroken();
    const cur = this.current;
    if (cur.wantCreate && !cur.created) {
      cur.wantCreate = false;
      try {
        await this.createSegment(cur);
      } catch (err) {
        this.log("warn", "wal: could not create segment yet", { file: cur.path, error: String(err), code: errCode(err) });
        await this.abandonCreate(cur);
      }
    }
    // Records are in append order, so each segment's records are contiguous.
    for (let i = 0; i < batch.length; ) {
      let j = i + 1;
      while (j < batch.length && batch[j].seg === batch[i].seg) j++;
      await this.writeGroup(batch[i].seg, batch, i, j);
      i = j;
    }
    for (const seg of this.segments) {
      if (seg.unsynced > 0 && !seg.deleted && (syncDue || seg.retired)) {
        try {
          await this.timedSync(seg, seg.unsynced);
          seg.unsynced = 0;
        } catch (err) {
          this.log("error", "wal: background fdatasync failed; acknowledged records may be lost", { file: seg.path, error: String(err), code: errCode(err) });
        }
      }
    }
    await this.closeRetired();
  }

  /** Write (and in "always" mode sync) `batch[i, j)`, all for `seg`; settle their promises. */
  private async writeGroup(seg: Segment, batch: PendingAppend[], i: number, j: number): Promise<void> {
    try {
      if (!seg.created) await this.createSegment(seg);
      let pos = seg.size;
      for (let k = i; k < j; ) {
        let m = k;
        let total = 0;
        while (m < j && (m === k || total + batch[m].bytes.length <= WRITE_CHUNK)) total += batch[m++].bytes.length;
        let buf = batch[k].bytes;
        if (m - k > 1) {
          buf = new Uint8Array(total);
          for (let q = k, o = 0; q < m; o += batch[q].bytes.length, q++) buf.set(batch[q].bytes, o);
        }
        await writeFully(this.fs, seg.fd, buf, pos);
        pos += total;
        k = m;
      }
      if (this.mode === "always") await this.timedSync(seg, j - i);
      else seg.unsynced += j - i;
      seg.size = pos;
      for (let k = i; k < j; k++) batch[k].resolve();
      this.settle(batch, i, j);
    } catch (err) {
      this.log("error", "wal: append failed", { file: seg.path, records: j - i, error: String(err), code: errCode(err) });
      await this.recover(seg); // never throws; done first so callers see the log in its post-error state
      for (let k = i; k < j; k++) batch[k].reject(err);
      this.settle(batch, i, j);
    }
  }

  /**
   * After a failed write/sync: cut the file back to the last good offset so no garbage sits
   * before later records. If even that fails, mark it broken (repaired at later cycles) and move
   * appends to a fresh segment.
   */
  private async recover(seg: Segment): Promise<void> {
    if (!seg.created) return this.abandonCreate(seg);
    try {
      await this.fs.ftruncate(seg.fd, seg.size);
      await this.fs.fdatasync(seg.fd);
    } catch (err) {
      seg.broken = true;
      this.log("error", "wal: could not truncate after a failed write; switching segment", { file: seg.path, offset: seg.size, error: String(err), code: errCode(err) });
      if (seg === this.current) {
        seg.retired = true;
        this.current = this.newSegment(seg.number + 1);
        this.current.wantCreate = true;
        for (const p of this.pending) {
          if (p.seg === seg) {
            p.seg = this.current;
            seg.queued--;
            this.current.queued++;
          }
        }
      }
    }
  }

  /** Retry the truncation of broken segments; they must not end in garbage at the next start. */
  private async repairBroken(): Promise<void> {
    for (const seg of this.segments) {
      if (!seg.broken || seg.deleted || seg.fd < 0) continue;
      try {
        await this.fs.ftruncate(seg.fd, seg.size);
        await this.fs.fdatasync(seg.fd);
        seg.broken = false;
        this.log("info", "wal: repaired segment after earlier write failure", { file: seg.path, offset: seg.size });
      } catch {
        // still failing; try again next cycle
      }
    }
  }

  /** Create `seg` durably: temp file, header, fdatasync, rename, directory fsync. */
  private async createSegment(seg: Segment): Promise<void> {
    const tmp = seg.path + ".tmp";
    seg.fd = await this.fs.open(tmp, "w");
    await writeFully(this.fs, seg.fd, MAGIC, 0);
    await this.fs.fdatasync(seg.fd);
    await this.fs.rename(tmp, seg.path);
    await syncDir(this.fs, this.dir);
    seg.created = true;
    seg.size = HEADER_BYTES;
  }

  /** Undo a failed createSegment so that it can be retried from scratch (nothing is in the file). */
  private async abandonCreate(seg: Segment): Promise<void> {
    if (seg.fd >= 0) await this.fs.close(seg.fd).catch(() => {});
    seg.fd = -1;
    await this.fs.unlink(seg.path + ".tmp").catch(() => {});
    await this.fs.unlink(seg.path).catch(() => {});
  }

  /** Close the files of retired segments that have nothing left to write, sync or repair. */
  private async closeRetired(): Promise<void> {
    for (let k = 0; k < this.segments.length; k++) {
      const seg = this.segments[k];
      if (seg === this.current || seg.queued > 0) continue;
      if (!seg.deleted && !(seg.retired && seg.unsynced === 0 && !seg.broken)) continue;
      if (seg.fd >= 0) await this.fs.close(seg.fd).catch(() => {});
      seg.fd = -1;
      this.segments.splice(k--, 1);
    }
  }

  private async timedSync(seg: Segment, records: number): Promise<void> {
    const t0 = performance.now();
    await this.fs.fdatasync(seg.fd);
    const ms = performance.now() - t0;
    this.counters.lastSyncMs = ms;
    this.counters.syncs++;
    this.counters.syncedRecords += records;
    this.onSync?.(ms, records);
  }

  /** Account for `batch[i, j)` having been resolved or rejected; wake `whenSettled` waiters. */
  private settle(batch: PendingAppend[], i: number, j: number): void {
    for (let k = i; k < j; k++) batch[k].seg.queued--;
    this.settled += j - i;
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) (w.target <= this.settled ? w.resolve() : still.push(w));
    this.waiters = still;
  }

  /** Resolves when every append made before this call has settled (resolved or rejected). */
  private whenSettled(): Promise<void> {
    const target = this.enqueued;
    if (this.settled >= target) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ target, resolve }));
  }
}

/**
 * Check and (where the rules allow) repair one segment during open. `isLast`: the newest file (a
 * missing header can only be a crash during its creation). `nothingAfter`: no later segment holds
 * an intact record (so a bad tail here is a torn, never acknowledged write).
 */
async function replaySegment(
  fs: WalFs,
  file: string,
  b: Uint8Array,
  parsed: ParsedSegment | undefined,
  isLast: boolean,
  nothingAfter: boolean,
  salvage: boolean,
  log: WalLogger,
): Promise<{ records: ParsedSegment["records"]; cut?: WalOpenResult["truncated"][number] }> {
  if (parsed === undefined) {
    // A missing header (short, or only zeros) on the last segment = crash while creating it.
    if (isLast && (b.length < HEADER_BYTES || b.every((x) => x === 0))) {
      await fs.unlink(file);
      await syncDir(fs, dirname(file));
      const cut = { file, offset: 0, droppedBytes: b.length, reason: "missing segment header (crash during creation); file removed" };
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
