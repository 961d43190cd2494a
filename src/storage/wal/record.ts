/**
 * The WAL's byte format: segment names, the segment header, and the record framing
 * (`u32 LE length | u32 LE crc32c | payload`); payload type 1 holds readings, type 2 a tombstone
 * (a DELETE). Pure functions over bytes; no I/O.
 * docs/format/wal.md describes every byte.
 *
 * @module
 */
import { crc32c } from "../crc32c.ts";
import type { Reading } from "../../reading.ts";

/** The 8 ASCII bytes every segment starts with. */
export const WAL_MAGIC = "PDBWAL01";
export const MAGIC = new TextEncoder().encode(WAL_MAGIC);
export const HEADER_BYTES = MAGIC.length; // 8
/** The largest payload one record may carry; larger appends throw. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

/**
 * A batch whose record would exceed MAX_PAYLOAD_BYTES: the caller's input is too large (a client
 * error), unlike the other RangeErrors of `encodeRecord` and `Wal.append`, which are invariant
 * violations (bugs). A RangeError subclass, so callers that only care about "refused" still work.
 *
 * @example
 * ```ts
 * const huge = Array.from({ length: 300_000 }, () => ({ userId: "u".repeat(128), deviceId: "d".repeat(128), ts: 0, heartRate: 70 }));
 * try {
 *   encodeRecord(1, huge);
 * } catch (err) {
 *   if (err instanceof RecordTooLargeError) console.log(`${err.readings} readings: answer 413`);
 * }
 * ```
 */
export class RecordTooLargeError extends RangeError {
  constructor(readonly readings: number) {
    super(`wal: record payload over ${MAX_PAYLOAD_BYTES} bytes (${readings} readings)`);
    this.name = "RecordTooLargeError";
  }
}
export const RECORD_HEADER = 8; // u32 length + u32 crc
const PAYLOAD_HEADER = 13; // u8 type + f64 firstSeq + u32 count
const MIN_READING_BYTES = 18; // two length bytes + ts + heartRate (ids themselves may be empty)
const TYPE_READINGS = 1;
/** A tombstone (DELETE): `u8 2 | f64 seq | f64 requestedAt | u8 flags | id user | id device | f64 start | f64 end`. */
const TYPE_TOMBSTONE = 2;
const TOMBSTONE_FIXED = 1 + 8 + 8 + 1 + 1 + 1 + 8 + 8; // with both ids empty
const FLAG_DEVICE = 1;
const FLAG_RANGE = 2;
const SEGMENT_RE = /^wal-(\d{8,})\.log$/;
/** A segment file whose creation never finished. */
export const TEMP_RE = /^wal-\d{8,}\.log\.tmp$/;

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

export function parseSegmentName(name: string): number | null {
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
 * every id is at most 255 UTF-8 bytes; the payload is at most 64 MiB (else RecordTooLargeError). Otherwise throws RangeError.
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
  const tooBig = () => new RecordTooLargeError(n);
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

/**
 * A deletion as the WAL stores it: every reading of `userId` (of `deviceId` only, when given; with
 * `start <= ts < end` only, when given) accepted before sequence `seq` is deleted.
 * `requestedAt` is the wall-clock time (ms) the deletion was accepted.
 */
export interface WalTombstone {
  seq: number;
  requestedAt: number;
  userId: string;
  deviceId?: string;
  start?: number;
  end?: number;
}

/**
 * Encode one tombstone record (type 2) with its framing.
 *
 * Pre: `seq` a safe integer >= 0; ids at most 255 UTF-8 bytes; `start`/`end` both given or neither.
 *
 * @example
 * ```ts
 * const rec = encodeTombstoneRecord({ seq: 9, requestedAt: Date.now(), userId: "u1" });
 * // rec.length === 8 + 28 + 2
 * ```
 */
export function encodeTombstoneRecord(t: WalTombstone): Uint8Array {
  if (!Number.isSafeInteger(t.seq) || t.seq < 0) throw new RangeError(`wal: bad tombstone sequence ${t.seq}`);
  if ((t.start === undefined) !== (t.end === undefined)) throw new RangeError("wal: tombstone needs start and end");
  const device = t.deviceId ?? "";
  const size = RECORD_HEADER + TOMBSTONE_FIXED + idByteLength(t.userId) + idByteLength(device);
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, size - RECORD_HEADER, true);
  buf[8] = TYPE_TOMBSTONE;
  dv.setFloat64(9, t.seq, true);
  dv.setFloat64(17, t.requestedAt, true);
  buf[25] = (t.deviceId !== undefined ? FLAG_DEVICE : 0) | (t.start !== undefined ? FLAG_RANGE : 0);
  let p = putId(buf, 26, t.userId);
  p = putId(buf, p, device);
  dv.setFloat64(p, t.start ?? 0, true);
  dv.setFloat64(p + 8, t.end ?? 0, true);
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
  /** Empty for a tombstone record. */
  readings: Reading[];
  /** Set for a tombstone record (type 2); `firstSeq` is then its sequence. */
  tombstone?: WalTombstone;
}

/** Decode a tombstone payload `b[start, end)` (type byte at `start`). */
function decodeTombstone(b: Uint8Array, dv: DataView, start: number, end: number): Decoded | string {
  if (end - start < TOMBSTONE_FIXED) return "tombstone payload too short";
  const seq = dv.getFloat64(start + 1, true);
  if (!Number.isSafeInteger(seq) || seq < 0) return `bad tombstone seq ${seq}`;
  const requestedAt = dv.getFloat64(start + 9, true);
  const flags = b[start + 17];
  let p = start + 18;
  const ul = b[p++];
  if (p + ul + 1 > end) return "tombstone user id runs past the payload";
  const userId = readId(b, p, ul, "");
  p += ul;
  const dl = b[p++];
  if (p + dl + 16 !== end) return "tombstone payload length mismatch";
  const deviceId = readId(b, p, dl, "");
  p += dl;
  const t: WalTombstone = { seq, requestedAt, userId };
  if (flags & FLAG_DEVICE) t.deviceId = deviceId;
  if (flags & FLAG_RANGE) {
    t.start = dv.getFloat64(p, true);
    t.end = dv.getFloat64(p + 8, true);
  }
  return { firstSeq: seq, readings: [], tombstone: t };
}

/** Decode the payload `b[start, end)`; a string result is the reason it is not valid. */
function decodePayload(
  b: Uint8Array,
  dv: DataView,
  start: number,
  end: number,
  ids: { u: string; d: string },
): Decoded | string {
  if (b[start] === TYPE_TOMBSTONE) return decodeTombstone(b, dv, start, end);
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
function readRecord(
  b: Uint8Array,
  dv: DataView,
  off: number,
  ids: { u: string; d: string },
): (Decoded & { end: number }) | string {
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
    const type = b[p + RECORD_HEADER];
    if (type !== TYPE_READINGS && type !== TYPE_TOMBSTONE) continue;
    if (typeof readRecord(b, dv, p, ids) !== "string") return true;
  }
  return false;
}

export interface ParsedSegment {
  records: Array<Decoded & { offset: number }>;
  /** The first bad record, if any; `tail` = nothing intact follows it in this file. */
  bad?: { offset: number; reason: string; tail: boolean };
}

/** Parse every record after the header, stopping at the first bad one. */
export function parseSegment(b: Uint8Array): ParsedSegment {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const ids = { u: "", d: "" };
  const records: ParsedSegment["records"] = [];
  let off = HEADER_BYTES;
  while (off < b.length) {
    const r = readRecord(b, dv, off, ids);
    if (typeof r === "string") {
      return { records, bad: { offset: off, reason: r, tail: !intactRecordAfter(b, dv, off + 1) } };
    }
    records.push(
      r.tombstone
        ? { firstSeq: r.firstSeq, readings: r.readings, tombstone: r.tombstone, offset: off }
        : { firstSeq: r.firstSeq, readings: r.readings, offset: off },
    );
    off = r.end;
  }
  return { records };
}

export function hasMagic(b: Uint8Array): boolean {
  if (b.length < HEADER_BYTES) return false;
  for (let i = 0; i < HEADER_BYTES; i++) if (b[i] !== MAGIC[i]) return false;
  return true;
}
