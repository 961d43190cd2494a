/**
 * Arrow ingest: `POST /metrics/heart-rate` with `Content-Type: application/vnd.apache.arrow.stream`.
 *
 * The body is an Arrow IPC stream with columns
 *   user_id, device_id : utf8, large utf8, or dictionary<utf8>
 *   timestamp          : timestamp (any unit; stored at ms, truncated), or int64 / float64 ms since epoch UTC
 *   heart_rate         : float64, float32 or any integer type
 * validated column by column with the same rules as JSON readings, all or nothing: one bad value
 * rejects the request with every bad cell listed as `/<row>/<column>` (up to MAX_ARROW_ERRORS: an
 * Arrow request may hold a million rows, so the list is cut there and the detail says so).
 * Dictionary-encoded id columns are checked once per distinct value, which is what makes this path
 * fast. Extra columns are ignored.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import { ID_PATTERN, MAX_HEART_RATE, MAX_TS, MIN_HEART_RATE, MIN_TS, type Reading } from "../reading.ts";
import type { ParseResult } from "./validation.ts";
import type { FieldError } from "./problem.ts";
import { VALIDATION_TITLE } from "./problem.ts";

/** The media type of Arrow ingest bodies. */
export const ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream";
/** At most this many cell errors are listed for one Arrow request. */
export const MAX_ARROW_ERRORS = 1000;
/** At most this many rows in one Arrow request. */
export const MAX_ARROW_ROWS = 1_000_000;

const ID_MESSAGE = (f: string) => `${f} must be a string of 1-128 characters from A-Z a-z 0-9 _ . : @ -`;
const TS_MESSAGE =
  "timestamp must be a time between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z (ms since epoch, or an Arrow timestamp)";
const HR_MESSAGE = `heart_rate must be a number between ${MIN_HEART_RATE} and ${MAX_HEART_RATE} (inclusive)`;

class Errors {
  readonly list: FieldError[] = [];
  readonly badRows = new Set<number>();
  truncated = false;
  add(row: number, field: string, message: string): void {
    this.badRows.add(row);
    if (this.list.length >= MAX_ARROW_ERRORS) {
      this.truncated = true;
      return;
    }
    this.list.push({ path: `/${row}/${field}`, message });
  }
}

/**
 * Decodes and validates an Arrow IPC stream body into readings (in row order).
 *
 * @example
 * ```ts
 * import * as arrow from "apache-arrow";
 *
 * const table = arrow.tableFromArrays({ user_id: ["u1"], device_id: ["device_a"], timestamp: new Float64Array([Date.UTC(2024, 0, 15)]), heart_rate: new Float64Array([72]) });
 * parseArrowBody(arrow.tableToIPC(table, "stream")); // { ok: true, batch: true, readings: [...] }
 * ```
 */
export function parseArrowBody(bytes: Uint8Array): ParseResult {
  let table: arrow.Table;
  try {
    table = arrow.tableFromIPC(bytes);
  } catch (err) {
    return fail(`The body is not an Arrow IPC stream: ${(err as Error).message}`, [{
      path: "",
      message: "malformed Arrow IPC stream",
    }]);
  }
  const n = table.numRows;
  if (n === 0) return fail("The Arrow stream holds no rows; send at least one.", [{ path: "", message: "no rows" }]);
  if (n > MAX_ARROW_ROWS) {
    return {
      ok: false,
      status: 413,
      title: "Content Too Large",
      detail: `An Arrow request holds at most ${MAX_ARROW_ROWS} rows; this one has ${n}.`,
      errors: [],
    };
  }
  const missing: FieldError[] = [];
  const col = (name: string) => {
    const v = table.getChild(name);
    if (!v) missing.push({ path: `/${name}`, message: `column ${name} is missing` });
    return v;
  };
  const users = col("user_id");
  const devices = col("device_id");
  const times = col("timestamp");
  const rates = col("heart_rate");
  if (missing.length > 0) return fail("The Arrow stream lacks required columns; nothing was stored.", missing);

  const errors = new Errors();
  const userIds = idColumn(users!, "user_id", errors, missing);
  const deviceIds = idColumn(devices!, "device_id", errors, missing);
  const ts = timeColumn(times!, errors, missing);
  const hr = rateColumn(rates!, errors, missing);
  if (missing.length > 0) {
    return fail("The Arrow stream has columns of unsupported types; nothing was stored.", missing);
  }
  if (errors.badRows.size > 0) {
    let detail = `${errors.badRows.size} of ${n} readings ${
      errors.badRows.size === 1 ? "is" : "are"
    } invalid; nothing was stored.`;
    if (errors.truncated) detail += ` Only the first ${MAX_ARROW_ERRORS} errors are listed.`;
    return fail(detail, errors.list);
  }
  const readings: Reading[] = new Array(n);
  for (let i = 0; i < n; i++) {
    readings[i] = { userId: userIds![i], deviceId: deviceIds![i], ts: ts![i], heartRate: hr![i] };
  }
  return { ok: true, readings, batch: true };
}

function fail(detail: string, errors: FieldError[]): ParseResult {
  return { ok: false, status: 400, title: VALIDATION_TITLE, detail, errors };
}

/** Each chunk of a column with the row offset it starts at. */
function* chunks(v: arrow.Vector): Generator<[arrow.Data, number]> {
  let offset = 0;
  for (const d of v.data) {
    yield [d, offset];
    offset += d.length;
  }
}

function isNull(d: arrow.Data, i: number): boolean {
  return d.nullCount > 0 && !d.getValid(i);
}

function idColumn(v: arrow.Vector, field: string, errors: Errors, unsupported: FieldError[]): string[] | undefined {
  const out: string[] = new Array(v.length);
  if (arrow.DataType.isDictionary(v.type)) {
    if (!arrow.DataType.isUtf8(v.type.dictionary) && !arrow.DataType.isLargeUtf8(v.type.dictionary)) {
      unsupported.push({ path: `/${field}`, message: `${field} must be a utf8 or dictionary<utf8> column` });
      return undefined;
    }
    for (const [d, offset] of chunks(v)) {
      const dict = d.dictionary!;
      const values: (string | null)[] = new Array(dict.length);
      const valid: boolean[] = new Array(dict.length);
      for (let k = 0; k < dict.length; k++) {
        const s = dict.get(k) as string | null;
        values[k] = s;
        valid[k] = typeof s === "string" && ID_PATTERN.test(s);
      }
      const codes = d.values as ArrayLike<number>;
      for (let i = 0; i < d.length; i++) {
        const code = Number(codes[i]);
        if (isNull(d, i) || !valid[code]) errors.add(offset + i, field, ID_MESSAGE(field));
        else out[offset + i] = values[code]!;
      }
    }
    return out;
  }
  if (!arrow.DataType.isUtf8(v.type) && !arrow.DataType.isLargeUtf8(v.type)) {
    unsupported.push({ path: `/${field}`, message: `${field} must be a utf8 or dictionary<utf8> column` });
    return undefined;
  }
  for (let i = 0; i < v.length; i++) {
    const s = v.get(i) as string | null;
    if (typeof s !== "string" || !ID_PATTERN.test(s)) errors.add(i, field, ID_MESSAGE(field));
    else out[i] = s;
  }
  return out;
}

function timeColumn(v: arrow.Vector, errors: Errors, unsupported: FieldError[]): Float64Array | undefined {
  const out = new Float64Array(v.length);
  const type = v.type;
  let toMs: (raw: number | bigint) => number;
  if (arrow.DataType.isTimestamp(type)) {
    const unit = type.unit;
    toMs = unit === arrow.TimeUnit.SECOND
      ? (x) => Number(x) * 1000
      : unit === arrow.TimeUnit.MILLISECOND
      ? (x) => Number(x)
      : unit === arrow.TimeUnit.MICROSECOND
      ? (x) => Number(BigInt(x) / 1000n)
      : (x) => Number(BigInt(x) / 1_000_000n);
  } else if (arrow.DataType.isInt(type) && type.bitWidth === 64) {
    toMs = (x) => Number(x);
  } else if (arrow.DataType.isFloat(type)) {
    toMs = (x) => (Number.isInteger(x) ? (x as number) : NaN);
  } else {
    unsupported.push({
      path: "/timestamp",
      message: "timestamp must be an Arrow timestamp, int64 or float64 (ms since epoch) column",
    });
    return undefined;
  }
  for (const [d, offset] of chunks(v)) {
    const values = d.values as ArrayLike<number | bigint>;
    // Timestamps and int64 in Arrow JS come as BigInt64Array.
    for (let i = 0; i < d.length; i++) {
      const ms = isNull(d, i) ? NaN : toMs(values[i]);
      if (!(ms >= MIN_TS && ms <= MAX_TS)) errors.add(offset + i, "timestamp", TS_MESSAGE);
      else out[offset + i] = Math.floor(ms);
    }
  }
  return out;
}

function rateColumn(v: arrow.Vector, errors: Errors, unsupported: FieldError[]): Float64Array | undefined {
  const type = v.type;
  if (!arrow.DataType.isFloat(type) && !arrow.DataType.isInt(type)) {
    unsupported.push({ path: "/heart_rate", message: "heart_rate must be a float or integer column" });
    return undefined;
  }
  const out = new Float64Array(v.length);
  for (const [d, offset] of chunks(v)) {
    const values = d.values as ArrayLike<number | bigint>;
    for (let i = 0; i < d.length; i++) {
      const x = isNull(d, i) ? NaN : Number(values[i]);
      if (!(x >= MIN_HEART_RATE && x <= MAX_HEART_RATE)) errors.add(offset + i, "heart_rate", HR_MESSAGE);
      else out[offset + i] = x;
    }
  }
  return out;
}
