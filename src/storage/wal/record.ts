/**
 * The WAL's byte format: segment names, the segment header, and the record framing
 * (`u32 LE length | u32 LE crc32c | payload`). Pure functions over bytes; no I/O.
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
function decodePayload(
  b: Uint8Array,
  dv: DataView,
  start: number,
  end: number,
  ids: { u: string; d: string },
): Decoded | string {
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
    if (b[p + RECORD_HEADER] !== TYPE_READINGS) continue;
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
    records.push({ firstSeq: r.firstSeq, readings: r.readings, offset: off });
    off = r.end;
  }
  return { records };
}

export function hasMagic(b: Uint8Array): boolean {
  if (b.length < HEADER_BYTES) return false;
  for (let i = 0; i < HEADER_BYTES; i++) if (b[i] !== MAGIC[i]) return false;
  return true;
}
