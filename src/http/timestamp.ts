/**
 * Strict RFC 3339 / ISO 8601 date-time parsing and bucket-start formatting.
 *
 * No `Date.parse` anywhere: its leniency (date-only strings, rolled-over days, local time) is
 * exactly what the contract forbids. A regex checks the shape, integer arithmetic checks the ranges,
 * and `Date.UTC` turns the checked fields into milliseconds.
 *
 * @module
 */

import { MAX_TS, MIN_TS } from "../reading.ts";

// YYYY-MM-DD T HH:MM [:SS [.fraction]] [Z | ±HH:MM | ±HHMM]. Only the shape is checked here;
// the digits are then read by position, which avoids allocating match groups for every reading.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2})?$/;

/** Days in each month of a non-leap year, January first. */
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/** The value of the ASCII digit at `i` (the regex has already checked it is one). */
function digit(s: string, i: number): number {
  return s.charCodeAt(i) - 48;
}

/** The two-digit number at `i`. */
function two(s: string, i: number): number {
  return digit(s, i) * 10 + digit(s, i + 1);
}

/**
 * Parses a strict RFC 3339 / ISO 8601 extended date-time into integer milliseconds since the
 * Unix epoch, UTC.
 *
 * Accepted: `YYYY-MM-DDTHH:MM`, optionally `:SS` and `.fraction` (any number of digits, as RFC 3339 allows, truncated to
 * milliseconds, never rounded), `T` or `t` as separator, and an optional offset `Z`, `z`,
 * `±HH:MM` or `±HHMM` (at most ±23:59). Without an offset the time is taken as UTC.
 *
 * Rejected (returns `undefined`): date-only strings, impossible dates (`2024-02-30`, `2023-02-29`),
 * month 13, hour 24, minute 60, second 60 (no leap seconds), surrounding spaces or any other
 * extra characters, years outside 1970-9999, and instants (after the offset is applied) outside
 * `1970-01-01T00:00:00.000Z` .. `9999-12-31T23:59:59.999Z`.
 *
 * @example
 * parseTimestamp("2024-01-15T10:00:00Z");          // 1705312800000
 * parseTimestamp("2024-01-15T12:00:00.1239+02:00"); // 1705312800123
 * parseTimestamp("2024-01-15T10:00");              // 1705312800000 (no offset: UTC)
 * parseTimestamp("2024-02-30T10:00:00Z");          // undefined
 * parseTimestamp("2024-01-15");                    // undefined
 */
export function parseTimestamp(s: string): number | undefined {
  if (!DATE_TIME.test(s)) return undefined;
  // Fixed positions: YYYY-MM-DDTHH:MM
  const year = two(s, 0) * 100 + two(s, 2);
  const month = two(s, 5);
  const day = two(s, 8);
  const hour = two(s, 11);
  const minute = two(s, 14);
  if (year < 1970 || month < 1 || month > 12 || day < 1) return undefined;
  const monthDays = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1];
  if (day > monthDays || hour > 23 || minute > 59) return undefined;
  let i = 16;
  let second = 0;
  let ms = 0;
  if (s.charCodeAt(i) === 58 /* : */) {
    second = two(s, 17);
    if (second > 59) return undefined;
    i = 19;
    if (s.charCodeAt(i) === 46 /* . */) {
      // Truncate the fraction to milliseconds: "5" -> 500, "1239" -> 123.
      i++;
      for (let scale = 100; i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57; i++, scale /= 10) {
        if (scale >= 1) ms += digit(s, i) * scale;
      }
    }
  }
  let offsetMinutes = 0;
  const sign = s.charCodeAt(i);
  if (sign === 43 /* + */ || sign === 45 /* - */) {
    const oh = two(s, i + 1);
    const om = two(s, s.charCodeAt(i + 3) === 58 /* : */ ? i + 4 : i + 3);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (sign === 45 ? -1 : 1) * (oh * 60 + om);
  }
  const t = Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMinutes * 60_000;
  return t < MIN_TS || t > MAX_TS ? undefined : t;
}

/**
 * The digits of a valid timestamp's fraction beyond milliseconds, without trailing zeros
 * ("" when there are none): what `parseTimestamp` truncates away. Query bounds use it to stay
 * exact (see `parseQueryParams`).
 *
 * @example
 * subMillisecondDigits("2024-01-15T10:00:00.0005Z"); // "5"
 * subMillisecondDigits("2024-01-15T10:00:00.123Z");  // ""
 */
export function subMillisecondDigits(s: string): string {
  if (s.charCodeAt(19) !== 46 /* . */) return "";
  let end = 20;
  while (end < s.length && s.charCodeAt(end) >= 48 && s.charCodeAt(end) <= 57) end++;
  return s.slice(Math.min(23, end), end).replace(/0+$/, "");
}

function pad2(n: number): string {
  return n < 10 ? "0" + n : "" + n;
}

/**
 * Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds; the
 * milliseconds are dropped, not rounded). Meant for bucket starts. `ms` must lie in
 * `MIN_TS..MAX_TS` (years 1970-9999); the result for other values is unspecified.
 *
 * @example
 * formatTimestamp(1705312800000); // "2024-01-15T10:00:00Z"
 * formatTimestamp(0);             // "1970-01-01T00:00:00Z"
 */
export function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  return (
    d.getUTCFullYear() +
    "-" +
    pad2(d.getUTCMonth() + 1) +
    "-" +
    pad2(d.getUTCDate()) +
    "T" +
    pad2(d.getUTCHours()) +
    ":" +
    pad2(d.getUTCMinutes()) +
    ":" +
    pad2(d.getUTCSeconds()) +
    "Z"
  );
}
