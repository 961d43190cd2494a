import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatTimestamp, parseTimestamp } from "../../src/http/timestamp.ts";
import { MAX_TS, MIN_TS } from "../../src/reading.ts";

const T = Date.UTC(2024, 0, 15, 10, 0, 0); // 2024-01-15T10:00:00Z

describe("parseTimestamp", () => {
  const accepted: [string, number][] = [
    ["2024-01-15T10:00:00Z", T],
    ["2024-01-15T12:00:00+02:00", T],
    ["2024-01-15T04:30:00-05:30", T],
    ["2024-01-15T12:00:00+0200", T],
    ["2024-01-15T04:30:00-0530", T],
    ["2024-01-15T10:00:00+00:00", T],
    ["2024-01-15T10:00:00-00:00", T],
    ["2024-01-15T10:00:00", T], // no offset: UTC
    ["2024-01-15T10:00", T], // seconds optional
    ["2024-01-15T10:00Z", T],
    ["2024-01-15t10:00:00z", T], // lowercase t and z
    ["2024-01-15T10:00:00.1Z", T + 100],
    ["2024-01-15T10:00:00.12Z", T + 120],
    ["2024-01-15T10:00:00.123Z", T + 123],
    ["2024-01-15T10:00:00.1239Z", T + 123], // truncated, not rounded
    ["2024-01-15T10:00:00.12399Z", T + 123],
    ["2024-01-15T10:00:00.999999Z", T + 999],
    ["2024-01-15T10:00:00.9999999Z", T + 999],
    ["2024-01-15T10:00:00.99999999Z", T + 999],
    ["2024-01-15T10:00:00.999999999Z", T + 999],
    ["2024-01-15T10:00:00.000000001Z", T],
    ["2024-01-15T12:00:00.5+02:00", T + 500],
    ["2024-02-29T00:00:00Z", Date.UTC(2024, 1, 29)], // leap year
    ["2000-02-29T00:00:00Z", Date.UTC(2000, 1, 29)], // divisible by 400: leap
    ["2023-12-31T23:59:59.999Z", Date.UTC(2023, 11, 31, 23, 59, 59, 999)],
    ["1970-01-01T00:00:00Z", MIN_TS],
    ["1970-01-01T02:00:00+02:00", MIN_TS],
    ["9999-12-31T23:59:59.999Z", MAX_TS],
    ["9999-12-31T21:59:59.999-02:00", MAX_TS], // -02:00 moves it later: exactly the last instant
    ["2024-01-15T23:59:59+23:59", Date.UTC(2024, 0, 15, 0, 0, 59)], // widest offset
    ["2024-01-15T00:00:00-23:59", Date.UTC(2024, 0, 15, 23, 59, 0)],
  ];
  for (const [input, expected] of accepted) {
    it(`parseTimestamp accepts ${input}`, () => {
      assert.equal(parseTimestamp(input), expected);
    });
  }

  const rejected: [string, string][] = [
    ["2024-01-15", "date-only"],
    ["2024-01-15T", "date and separator only"],
    ["2024-01-15T10", "hour only"],
    ["2024-02-30T10:00:00Z", "February 30"],
    ["2023-02-29T10:00:00Z", "February 29 in a non-leap year"],
    ["1900-02-29T10:00:00Z", "February 29 in a century non-leap year"],
    ["2024-04-31T10:00:00Z", "April 31"],
    ["2024-13-01T10:00:00Z", "month 13"],
    ["2024-00-01T10:00:00Z", "month 0"],
    ["2024-01-00T10:00:00Z", "day 0"],
    ["2024-01-32T10:00:00Z", "day 32"],
    ["2024-01-15T24:00:00Z", "hour 24"],
    ["2024-01-15T10:60:00Z", "minute 60"],
    ["2024-01-15T10:00:60Z", "second 60 (no leap seconds)"],
    ["2016-12-31T23:59:60Z", "a real leap second"],
    ["2024-01-15T10:00:00+24:00", "offset +24:00"],
    ["2024-01-15T10:00:00+02:60", "offset minutes 60"],
    ["2024-01-15T10:00:00+2:00", "one-digit offset hour"],
    ["2024-01-15T10:00:00+02", "offset hours only"],
    ["2024-01-15T10:00:00+02:0", "offset one minute digit"],
    ["2024-01-15T10:00:00.Z", "empty fraction"],
    ["2024-01-15T10:00.5Z", "fraction without seconds"],
    [" 2024-01-15T10:00:00Z", "leading space"],
    ["2024-01-15T10:00:00Z ", "trailing space"],
    ["2024-01-15T10:00:00Z\n", "trailing newline"],
    ["2024-01-15T10:00:00Zjunk", "trailing junk"],
    ["2024-01-15T10:00:00ZZ", "two Zs"],
    ["2024-01-15 10:00:00Z", "space separator"],
    ["2024-01-15X10:00:00Z", "other separator"],
    ["20240115T100000Z", "basic format"],
    ["2024-1-15T10:00:00Z", "one-digit month"],
    ["2024-01-15T1:00:00Z", "one-digit hour"],
    ["+2024-01-15T10:00:00Z", "signed year"],
    ["024-01-15T10:00:00Z", "three-digit year"],
    ["10000-01-01T00:00:00Z", "year 10000"],
    ["1969-12-31T23:59:59.999Z", "1969"],
    ["1969-12-31T23:00:00-02:00", "year 1969 even though the instant is in 1970"],
    ["1970-01-01T00:00:00+00:01", "offset pushing before the epoch"],
    ["1970-01-01T01:59:59+02:00", "offset pushing one second before the epoch"],
    ["9999-12-31T23:59:59.999-00:01", "offset pushing past 9999"],
    ["0000-01-01T00:00:00Z", "year 0"],
    ["2024-01-15T10:00:00\u00a0Z", "no-break space"],
    ["２０２４-01-15T10:00:00Z", "full-width digits"],
    ["2024-01-15T10:00:00.١Z", "Arabic-Indic digit in fraction"],
    ["", "empty"],
    ["1705312800000", "a number as a string"],
    ["Mon, 15 Jan 2024 10:00:00 GMT", "RFC 2822 date"],
    ["2024-01-15T10:00:00 UTC", "zone name"],
  ];
  for (const [input, why] of rejected) {
    it(`parseTimestamp rejects ${why}: ${JSON.stringify(input)}`, () => {
      assert.equal(parseTimestamp(input), undefined);
    });
  }

  it("parseTimestamp returns integer milliseconds that round-trip through toISOString", () => {
    for (let ms = MIN_TS; ms < MAX_TS; ms += 7_777_777_777_7) {
      assert.equal(parseTimestamp(new Date(ms).toISOString()), ms);
    }
  });
});

describe("formatTimestamp", () => {
  const table: [number, string][] = [
    [MIN_TS, "1970-01-01T00:00:00Z"],
    [T, "2024-01-15T10:00:00Z"],
    [T + 999, "2024-01-15T10:00:00Z"], // milliseconds dropped, not rounded
    [Date.UTC(2024, 1, 29, 23, 59, 59), "2024-02-29T23:59:59Z"],
    [Date.UTC(2000, 8, 9, 8, 7, 6), "2000-09-09T08:07:06Z"],
    [MAX_TS, "9999-12-31T23:59:59Z"],
  ];
  for (const [ms, expected] of table) {
    it(`formatTimestamp formats ${ms} as ${expected}`, () => {
      assert.equal(formatTimestamp(ms), expected);
    });
  }

  it("formatTimestamp agrees with toISOString over the whole range", () => {
    for (let ms = MIN_TS; ms < MAX_TS; ms += 3_333_333_333_3) {
      assert.equal(formatTimestamp(ms), new Date(ms).toISOString().slice(0, 19) + "Z");
    }
  });

  it("formatTimestamp output parses back to the whole second", () => {
    assert.equal(parseTimestamp(formatTimestamp(T + 456)), T);
  });
});
