/**
 * Validation of ingest bodies and query parameters, independent of any HTTP framework.
 *
 * The zod schemas below are the declared rules and the source of every error message (and, later,
 * of the OpenAPI document: generate it with `z.toJSONSchema(schema, { io: "input" })`, because
 * `timestamp` is transformed to milliseconds on output). For speed, ingest first runs a
 * hand-written check ({@link fastReading}) that applies exactly the same rules; only when it finds
 * a problem does zod run, and then zod decides and reports. `test/http/validation.test.ts` checks that
 * the two agree.
 *
 * @module
 */

import { z } from "zod";
import { ID_PATTERN, MAX_BATCH, MAX_HEART_RATE, MIN_HEART_RATE, type Reading } from "../reading.ts";
import { parseTimestamp, subMillisecondDigits } from "./timestamp.ts";
import { type FieldError, VALIDATION_TITLE } from "./problem.ts";
export type { FieldError } from "./problem.ts";

/** The outcome of {@link parseReadingsBody}. */
export type ParseResult =
  | { ok: true; readings: Reading[]; batch: boolean }
  | { ok: false; status: 400 | 413; title: string; detail: string; errors: FieldError[] };

/**
 * At most this many field errors are listed in one answer: more than a full batch can produce, so
 * every bad field of every bad reading is named (the contract asks for all of them).
 */
export const MAX_ERRORS = 5 * MAX_BATCH;
/** At most this many buckets in one query answer. */
export const MAX_BUCKETS = 100_000;
/** The bucket widths a query may ask for, in milliseconds. */
export const BUCKET_MS = {
  "10s": 10_000,
  "30s": 30_000,
  "1m": 60_000,
  "5m": 300_000,
  "15m": 900_000,
  "30m": 1_800_000,
  "1h": 3_600_000,
  "6h": 21_600_000,
  "1d": 86_400_000,
} as const;
/** A bucket name, e.g. `"1m"`. */
export type Bucket = keyof typeof BUCKET_MS;
/** The bucket a query gets without `bucket`. */
export const DEFAULT_BUCKET: Bucket = "1m";

// ---------------------------------------------------------------------------------------------
// Schemas

const ID_RULE = "1-128 characters from A-Z a-z 0-9 _ . : @ -";
const HEART_RATE_MESSAGE = `heart_rate must be a number between ${MIN_HEART_RATE} and ${MAX_HEART_RATE} (inclusive)`;

/** `name is required` when the value is absent, else `otherwise`. */
function requiredOr(name: string, otherwise: string) {
  return (issue: { input?: unknown }) => (issue.input === undefined ? `${name} is required` : otherwise);
}

/** A user or device id: a string of 1-128 characters from `A-Z a-z 0-9 _ . : @ -`. */
function idSchema(name: string) {
  return z
    .string({ error: requiredOr(name, `${name} must be a string`) })
    .regex(ID_PATTERN, { error: `${name} must be ${ID_RULE}` })
    .meta({ description: `${ID_RULE}`, example: name === "device_id" ? "device_a" : "user_1" });
}

/** A strict ISO 8601 / RFC 3339 date-time string (see `parseTimestamp`), output as epoch ms. */
function timestampSchema(name: string) {
  const message = `${name} must be an ISO 8601 date-time such as 2024-01-15T10:00:00Z (a real date, years 1970-9999)`;
  return z
    .string({ error: requiredOr(name, message) })
    .meta({
      format: "date-time",
      description: "ISO 8601 / RFC 3339 date-time, years 1970-9999; without an offset, UTC",
      example: "2024-01-15T10:00:00Z",
    })
    .transform((s, ctx) => {
      const ms = parseTimestamp(s);
      if (ms === undefined) {
        ctx.issues.push({ code: "custom", message, input: s });
        return z.NEVER;
      }
      return ms;
    });
}

/** A user id. */
export const userIdSchema = idSchema("user_id");
/** A device id. */
export const deviceIdSchema = idSchema("device_id");

/**
 * One reading as sent by a client. Unknown fields are stripped. Output: the same field names,
 * with `timestamp` as integer milliseconds since the epoch (UTC).
 */
export const readingSchema = z.object(
  {
    user_id: userIdSchema,
    device_id: deviceIdSchema,
    timestamp: timestampSchema("timestamp"),
    heart_rate: z
      .number({ error: requiredOr("heart_rate", HEART_RATE_MESSAGE) })
      .min(MIN_HEART_RATE, { error: HEART_RATE_MESSAGE })
      .max(MAX_HEART_RATE, { error: HEART_RATE_MESSAGE }),
  },
  { error: "a reading must be a JSON object with user_id, device_id, timestamp and heart_rate" },
);

/** A batch: 1..10,000 readings. (Documentation; {@link parseReadingsBody} applies these rules.) */
export const readingBatchSchema = z.array(readingSchema).min(1).max(MAX_BATCH);
/** The ingest body: one reading or a batch. (Documentation; see {@link parseReadingsBody}.) */
export const readingsBodySchema = z.union([readingSchema, readingBatchSchema]);

/** The query parameters of `GET /metrics/heart-rate`, before the cross-field rules. */
export const querySchema = z.object({
  user_id: userIdSchema,
  device_id: deviceIdSchema.optional(),
  start: timestampSchema("start"),
  end: timestampSchema("end"),
  bucket: z
    .enum(Object.keys(BUCKET_MS) as [Bucket, ...Bucket[]], {
      error: `bucket must be one of ${Object.keys(BUCKET_MS).join(" ")}`,
    })
    .default(DEFAULT_BUCKET),
});

// ---------------------------------------------------------------------------------------------
// Ingest

/**
 * The hand-written twin of {@link readingSchema}: the reading if `v` is valid, else `undefined`.
 * It must accept exactly what the schema accepts (tested); when it rejects, zod has the last word.
 *
 * @example
 * fastReading({ user_id: "u1", device_id: "d1", timestamp: "2024-01-15T10:00:00Z", heart_rate: 72 });
 * // { userId: "u1", deviceId: "d1", ts: 1705312800000, heartRate: 72 }
 * fastReading({ user_id: "u1" }); // undefined
 */
export function fastReading(v: unknown): Reading | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const userId = o.user_id;
  const deviceId = o.device_id;
  const timestamp = o.timestamp;
  const heartRate = o.heart_rate;
  if (typeof userId !== "string" || !ID_PATTERN.test(userId)) return undefined;
  if (typeof deviceId !== "string" || !ID_PATTERN.test(deviceId)) return undefined;
  if (typeof heartRate !== "number" || !(heartRate >= MIN_HEART_RATE && heartRate <= MAX_HEART_RATE)) {
    return undefined; // NaN fails both comparisons, infinities fail one
  }
  if (typeof timestamp !== "string") return undefined;
  const ts = parseTimestamp(timestamp);
  if (ts === undefined) return undefined;
  return { userId, deviceId, ts, heartRate };
}

/** An RFC 6901 JSON Pointer for `path` (keys escaped: `~` as `~0`, `/` as `~1`). */
function pointer(prefix: string, path: readonly PropertyKey[]): string {
  let p = prefix;
  for (const key of path) p += "/" + String(key).replaceAll("~", "~0").replaceAll("/", "~1");
  return p;
}

function invalid(detail: string, errors: FieldError[]): ParseResult {
  return { ok: false, status: 400, title: VALIDATION_TITLE, detail, errors };
}

/**
 * Validates a parsed JSON ingest body: one reading object (`batch: false`) or an array of
 * 1..10,000 readings (`batch: true`). All or nothing: on failure every bad field of every bad
 * element is listed (up to {@link MAX_ERRORS}; the detail says when the list is cut short).
 * Readings come out in input order.
 *
 * Failures: an empty array, or a body that is neither object nor array: 400. More than 10,000
 * elements: 413 (`title` "Content Too Large", `errors` empty). Invalid readings: 400.
 *
 * @example
 * parseReadingsBody(JSON.parse('{"user_id":"u1","device_id":"d1","timestamp":"2024-01-15T10:00:00Z","heart_rate":72}'));
 * // { ok: true, batch: false, readings: [{ userId: "u1", deviceId: "d1", ts: 1705312800000, heartRate: 72 }] }
 * parseReadingsBody([{ user_id: "u1", device_id: "d1", timestamp: "2024-01-15T10:00:00Z", heart_rate: "75" }]);
 * // { ok: false, status: 400, title: "Validation failed", detail: "1 of 1 readings is invalid; nothing was stored.",
 * //   errors: [{ path: "/0/heart_rate", message: "heart_rate must be a number between 30 and 220 (inclusive)" }] }
 */
export function parseReadingsBody(body: unknown): ParseResult {
  if (Array.isArray(body)) {
    if (body.length === 0) {
      return invalid("The batch is empty; send 1 to 10000 readings.", [
        { path: "", message: "a batch must hold at least one reading" },
      ]);
    }
    if (body.length > MAX_BATCH) {
      return {
        ok: false,
        status: 413,
        title: "Content Too Large",
        detail: `A batch holds at most ${MAX_BATCH} readings; this one has ${body.length}.`,
        errors: [],
      };
    }
    return parseReadings(body, true);
  }
  if (typeof body === "object" && body !== null) return parseReadings([body], false);
  return invalid(`The body must be a reading object or an array of 1 to ${MAX_BATCH} readings.`, [
    { path: "", message: "the body must be a JSON object or array" },
  ]);
}

function parseReadings(items: readonly unknown[], batch: boolean): ParseResult {
  const n = items.length;
  const readings: Reading[] = new Array(n);
  let i = 0;
  for (; i < n; i++) {
    const r = fastReading(items[i]);
    if (r === undefined) break;
    readings[i] = r;
  }
  if (i === n) return { ok: true, readings, batch };

  // Slow path from the first rejected element on: zod decides and words the errors.
  const errors: FieldError[] = [];
  let bad = 0;
  let truncated = false;
  for (; i < n; i++) {
    const fast = fastReading(items[i]);
    if (fast !== undefined) {
      readings[i] = fast;
      continue;
    }
    if (errors.length >= MAX_ERRORS) {
      bad++; // counted, not listed (the fast path agrees with zod; skipping zod keeps this cheap)
      truncated = true;
      continue;
    }
    const res = readingSchema.safeParse(items[i]);
    if (res.success) {
      const d = res.data;
      readings[i] = { userId: d.user_id, deviceId: d.device_id, ts: d.timestamp, heartRate: d.heart_rate };
      continue;
    }
    bad++;
    for (const issue of res.error.issues) {
      if (errors.length >= MAX_ERRORS) {
        truncated = true;
        break;
      }
      errors.push({ path: pointer(batch ? "/" + i : "", issue.path), message: issue.message });
    }
  }
  if (bad === 0) return { ok: true, readings, batch };
  let detail = batch
    ? `${bad} of ${n} readings ${bad === 1 ? "is" : "are"} invalid; nothing was stored.`
    : "The reading is invalid; nothing was stored.";
  if (truncated) detail += ` Only the first ${MAX_ERRORS} errors are listed.`;
  return invalid(detail, errors);
}

// ---------------------------------------------------------------------------------------------
// Query

/** Validated query parameters. `start`/`end` are epoch ms, `bucketMs` the width of `bucket`. */
export interface QueryParams {
  userId: string;
  deviceId?: string;
  start: number;
  end: number;
  bucketMs: number;
  bucket: string;
}

const QUERY_PARAMS = ["user_id", "device_id", "start", "end", "bucket"] as const;
/** A date-time whose offset sign was a "+" decoded to a space by form encoding. */
const UNENCODED_PLUS = /^(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$/;

/** The 400 for invalid query parameters, naming each parameter once. */
function invalidParams(errors: FieldError[]) {
  return {
    ok: false,
    status: 400,
    title: VALIDATION_TITLE,
    detail: `Invalid query parameters: ${[...new Set(errors.map((e) => e.path))].join(", ")}.`,
    errors,
  } as const;
}

/** An unencoded "+" of a time offset arrives decoded as a space; it can only mean "+", so put it back. */
function restorePlus(raw: Record<string, string | undefined>): void {
  for (const name of ["start", "end"] as const) {
    const v = raw[name];
    if (v !== undefined) raw[name] = v.replace(UNENCODED_PLUS, "$1+$2");
  }
}

/**
 * Validates the query parameters of `GET /metrics/heart-rate`. `get(name)` returns a parameter's
 * value, or `undefined` when absent; for a repeated parameter it should return the first value
 * (Hono's `c.req.query(name)` and `URLSearchParams.get` both do).
 *
 * Rules: `user_id`, `start`, `end` required (an empty value counts as invalid, for optional
 * parameters too); ids follow the id rule, `start`/`end` the timestamp rule; `start < end`;
 * `bucket` one of `10s 30s 1m 5m 15m 30m 1h 6h 1d` (default `1m`); at most 100,000 buckets, counted
 * on epoch-aligned bounds: `ceil(end / b) - floor(start / b)`. Error paths are parameter names.
 *
 * @example
 * const q = new URLSearchParams("user_id=u1&start=2024-01-15T10:00:00Z&end=2024-01-15T11:00:00Z&bucket=5m");
 * parseQueryParams((name) => q.get(name) ?? undefined);
 * // { ok: true, value: { userId: "u1", start: 1705312800000, end: 1705316400000, bucketMs: 300000, bucket: "5m" } }
 */
export function parseQueryParams(
  get: (name: string) => string | undefined,
):
  | { ok: true; value: QueryParams }
  | { ok: false; status: 400; title: string; detail: string; errors: FieldError[] } {
  const raw: Record<string, string | undefined> = {};
  for (const name of QUERY_PARAMS) raw[name] = get(name) ?? undefined;
  restorePlus(raw); // `start=2024-01-15T10:00:00+02:00` typed into curl, unencoded
  const res = querySchema.safeParse(raw);
  if (!res.success) {
    const errors = res.error.issues.map((issue) => ({ path: String(issue.path[0] ?? ""), message: issue.message }));
    // Report a reversed range too when both ends parsed.
    const start = raw.start === undefined ? undefined : parseTimestamp(raw.start);
    const end = raw.end === undefined ? undefined : parseTimestamp(raw.end);
    if (start !== undefined && end !== undefined && start >= end) errors.push(rangeError());
    return invalidParams(errors);
  }
  const { user_id, device_id, bucket } = res.data;
  // Readings are stored at whole milliseconds, but a bound may be finer: compare the bounds exactly,
  // then round each up to a whole millisecond, which keeps [start, end) exact for stored readings
  // (t >= 10.0005 ms  <=>  t >= 11 ms;  t < 10.0005 ms  <=>  t < 11 ms).
  const subStart = subMillisecondDigits(raw.start!);
  const subEnd = subMillisecondDigits(raw.end!);
  if (compareExact(res.data.start, subStart, res.data.end, subEnd) >= 0) return invalidParams([rangeError()]);
  const start = res.data.start + (subStart === "" ? 0 : 1);
  const end = res.data.end + (subEnd === "" ? 0 : 1);
  const bucketMs = BUCKET_MS[bucket];
  const count = Math.ceil(end / bucketMs) - Math.floor(start / bucketMs);
  if (count > MAX_BUCKETS) {
    return invalidParams([
      {
        path: "bucket",
        message:
          `the range spans ${count} buckets of ${bucket}; at most ${MAX_BUCKETS} are allowed (narrow the range or use a larger bucket)`,
      },
    ]);
  }
  const value: QueryParams = { userId: user_id, start, end, bucketMs, bucket };
  if (device_id !== undefined) value.deviceId = device_id;
  return { ok: true, value };
}

function rangeError(): FieldError {
  return { path: "end", message: "end must be later than start (the range is start <= timestamp < end)" };
}

/** Compares two instants given as whole ms plus the decimal digits beyond them. */
function compareExact(a: number, aSub: string, b: number, bSub: string): number {
  if (a !== b) return a < b ? -1 : 1;
  const n = Math.max(aSub.length, bSub.length);
  const x = aSub.padEnd(n, "0");
  const y = bSub.padEnd(n, "0");
  return x < y ? -1 : x > y ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Deletion

/** Validated parameters of `DELETE /metrics/heart-rate`: `start`/`end` both present or both absent. */
export interface DeleteParams {
  userId: string;
  deviceId?: string;
  start?: number;
  end?: number;
}

/** The parameters of a DELETE, before the cross-field rules. */
export const deleteSchema = z.object({
  user_id: userIdSchema,
  device_id: deviceIdSchema.optional(),
  start: timestampSchema("start").optional(),
  end: timestampSchema("end").optional(),
});

/**
 * Validates the query parameters of `DELETE /metrics/heart-rate`: the query's rules for `user_id`,
 * `device_id`, `start` and `end` (the same messages, `start < end`, sub-millisecond bounds rounded
 * the same way), except that `start` and `end` are optional, both or neither (neither: all time).
 *
 * @example
 * const q = new URLSearchParams("user_id=u1&device_id=device_a");
 * parseDeleteParams((name) => q.get(name) ?? undefined);
 * // { ok: true, value: { userId: "u1", deviceId: "device_a" } }
 */
export function parseDeleteParams(
  get: (name: string) => string | undefined,
):
  | { ok: true; value: DeleteParams }
  | { ok: false; status: 400; title: string; detail: string; errors: FieldError[] } {
  const raw: Record<string, string | undefined> = {};
  for (const name of ["user_id", "device_id", "start", "end"] as const) raw[name] = get(name) ?? undefined;
  restorePlus(raw);
  const res = deleteSchema.safeParse(raw);
  const errors: FieldError[] = res.success
    ? []
    : res.error.issues.map((issue) => ({ path: String(issue.path[0] ?? ""), message: issue.message }));
  const hasStart = raw.start !== undefined;
  const hasEnd = raw.end !== undefined;
  if (hasStart !== hasEnd) {
    const missing = hasStart ? "end" : "start";
    errors.push({
      path: missing,
      message: `${missing} is required when ${
        hasStart ? "start" : "end"
      } is given (give both, or neither to delete all time)`,
    });
  }
  if (!res.success || errors.length > 0) {
    const start = hasStart ? parseTimestamp(raw.start!) : undefined;
    const end = hasEnd ? parseTimestamp(raw.end!) : undefined;
    if (start !== undefined && end !== undefined && start >= end) errors.push(rangeError());
    return invalidParams(errors);
  }
  const value: DeleteParams = { userId: res.data.user_id };
  if (res.data.device_id !== undefined) value.deviceId = res.data.device_id;
  if (hasStart) {
    const subStart = subMillisecondDigits(raw.start!);
    const subEnd = subMillisecondDigits(raw.end!);
    if (compareExact(res.data.start!, subStart, res.data.end!, subEnd) >= 0) return invalidParams([rangeError()]);
    value.start = res.data.start! + (subStart === "" ? 0 : 1);
    value.end = res.data.end! + (subEnd === "" ? 0 : 1);
  }
  return { ok: true, value };
}
