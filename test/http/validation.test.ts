import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  fastReading,
  MAX_BUCKETS,
  parseQueryParams,
  parseReadingsBody,
  type ParseResult,
  readingSchema,
} from "../../src/http/validation.ts";
import { problem, problemResponse, VALIDATION_PROBLEM_TYPE } from "../../src/http/problem.ts";
import { MAX_BATCH, MAX_TS, type Reading } from "../../src/reading.ts";

const T = Date.UTC(2024, 0, 15, 10, 0, 0); // 2024-01-15T10:00:00Z
const VALID = { user_id: "user_1", device_id: "device_a", timestamp: "2024-01-15T10:00:00Z", heart_rate: 72 };
const OUT: Reading = { userId: "user_1", deviceId: "device_a", ts: T, heartRate: 72 };
const MISSING = Symbol("missing");

/** VALID with some fields replaced; a field set to MISSING is removed. */
function reading(patch: Record<string, unknown> = {}): Record<string, unknown> {
  const r: Record<string, unknown> = { ...VALID, ...patch };
  for (const k of Object.keys(r)) if (r[k] === MISSING) delete r[k];
  return r;
}

const ID_MSG = (f: string) => `${f} must be 1-128 characters from A-Z a-z 0-9 _ . : @ -`;
const TS_MSG = "timestamp must be an ISO 8601 date-time such as 2024-01-15T10:00:00Z (a real date, years 1970-9999)";
const HR_MSG = "heart_rate must be a number between 30 and 220 (inclusive)";

/** [name, input, expected reading | expected errors of a single-reading body] */
type Row = [string, Record<string, unknown>, Partial<Reading> | { path: string; message: string }[]];

const ROWS: Row[] = [
  ["a valid reading", reading(), {}],
  // ids
  ...(["user_id", "device_id"] as const).flatMap((f): Row[] => {
    const key = f === "user_id" ? "userId" : "deviceId";
    return [
      [`${f} empty`, reading({ [f]: "" }), [{ path: `/${f}`, message: ID_MSG(f) }]],
      [`${f} of 1 character`, reading({ [f]: "a" }), { [key]: "a" }],
      [`${f} of 128 characters`, reading({ [f]: "x".repeat(128) }), { [key]: "x".repeat(128) }],
      [`${f} of 129 characters`, reading({ [f]: "x".repeat(129) }), [{ path: `/${f}`, message: ID_MSG(f) }]],
      ...["_", ".", ":", "@", "-"].map((c): Row => [`${f} with ${c}`, reading({ [f]: `a${c}b` }), { [key]: `a${c}b` }]),
      [`${f} of only punctuation and digits`, reading({ [f]: "_.:@-09" }), { [key]: "_.:@-09" }],
      [`${f} of mixed case`, reading({ [f]: "AbcXYZ" }), { [key]: "AbcXYZ" }],
      ...[" ", "/", "ü", "😀", "\n", "+", "#", "%", "\u0000"].map(
        (
          c,
        ): Row => [`${f} with ${JSON.stringify(c)}`, reading({ [f]: `a${c}b` }), [{
          path: `/${f}`,
          message: ID_MSG(f),
        }]],
      ),
      [`${f} with a trailing newline`, reading({ [f]: "ab\n" }), [{ path: `/${f}`, message: ID_MSG(f) }]],
      ...[42, null, true, ["a"], { id: "a" }].map(
        (
          v,
        ): Row => [`${f} as ${JSON.stringify(v)}`, reading({ [f]: v }), [{
          path: `/${f}`,
          message: `${f} must be a string`,
        }]],
      ),
      [`${f} missing`, reading({ [f]: MISSING }), [{ path: `/${f}`, message: `${f} is required` }]],
    ];
  }),
  // timestamps
  ...([
    ["2024-01-15T10:00:00Z", T],
    ["2024-01-15T12:00:00+02:00", T],
    ["2024-01-15T04:30:00-05:30", T],
    ["2024-01-15T10:00:00.1Z", T + 100],
    ["2024-01-15T10:00:00.12Z", T + 120],
    ["2024-01-15T10:00:00.123Z", T + 123],
    ["2024-01-15T10:00:00.1239Z", T + 123],
    ["2024-01-15T10:00:00.12399Z", T + 123],
    ["2024-01-15T10:00:00.123999Z", T + 123],
    ["2024-01-15T10:00:00.1239999Z", T + 123],
    ["2024-01-15T10:00:00.12399999Z", T + 123],
    ["2024-01-15T10:00:00.123999999Z", T + 123],
    ["2024-01-15T10:00:00", T],
    ["2024-01-15t10:00:00z", T],
    ["2024-02-29T00:00:00Z", Date.UTC(2024, 1, 29)],
    ["1970-01-01T00:00:00Z", 0],
    ["9999-12-31T23:59:59.999Z", MAX_TS],
  ] as const).map(([ts, ms]): Row => [`timestamp ${ts}`, reading({ timestamp: ts }), { ts: ms }]),
  ...[
    "2024-02-30T10:00:00Z",
    "2023-02-29T10:00:00Z",
    "2024-01-15",
    "1969-12-31T23:59:59Z",
    "10000-01-01T00:00:00Z",
    "1970-01-01T00:00:00+01:00",
    "2024-01-15T10:00:00Z ",
    "",
    "1705312800000",
    "yesterday",
  ].map((
    ts,
  ): Row => [`timestamp ${JSON.stringify(ts)}`, reading({ timestamp: ts }), [{ path: "/timestamp", message: TS_MSG }]]),
  ...[1705312800000, 1705312800, null, true, ["2024-01-15T10:00:00Z"]].map(
    (
      v,
    ): Row => [`timestamp as ${JSON.stringify(v)}`, reading({ timestamp: v }), [{
      path: "/timestamp",
      message: TS_MSG,
    }]],
  ),
  ["timestamp missing", reading({ timestamp: MISSING }), [{ path: "/timestamp", message: "timestamp is required" }]],
  // heart_rate
  ...[30, 220, 72.5, 30.000001, 219.999, 100].map((
    v,
  ): Row => [`heart_rate ${v}`, reading({ heart_rate: v }), { heartRate: v }]),
  ...[29.99, 220.01, 0, -72, 1000, 29, 221, "75", "", true, false, null, NaN, Infinity, -Infinity, [75], { v: 75 }].map(
    (
      v,
    ): Row => [`heart_rate ${typeof v === "number" ? v : JSON.stringify(v)}`, reading({ heart_rate: v }), [{
      path: "/heart_rate",
      message: HR_MSG,
    }]],
  ),
  ["heart_rate missing", reading({ heart_rate: MISSING }), [{
    path: "/heart_rate",
    message: "heart_rate is required",
  }]],
  // whole reading
  ["extra fields", reading({ note: "x", ts: 5, userId: "other" }), {}],
  [
    "every field bad",
    { user_id: "", device_id: 5, timestamp: "2024-02-30T00:00:00Z", heart_rate: "75" },
    [
      { path: "/user_id", message: ID_MSG("user_id") },
      { path: "/device_id", message: "device_id must be a string" },
      { path: "/timestamp", message: TS_MSG },
      { path: "/heart_rate", message: HR_MSG },
    ],
  ],
  [
    "an empty object",
    {},
    ["user_id", "device_id", "timestamp", "heart_rate"].map((f) => ({ path: `/${f}`, message: `${f} is required` })),
  ],
];

function assertOk(r: ParseResult): asserts r is Extract<ParseResult, { ok: true }> {
  if (!r.ok) assert.fail(`expected ok, got ${JSON.stringify(r)}`);
}
function assertFail(r: ParseResult): asserts r is Extract<ParseResult, { ok: false }> {
  if (r.ok) assert.fail("expected a failure, got ok");
}

describe("parseReadingsBody on single readings", () => {
  for (const [name, input, expected] of ROWS) {
    it(`parseReadingsBody ${Array.isArray(expected) ? "rejects" : "accepts"} ${name}`, () => {
      const r = parseReadingsBody(input);
      if (Array.isArray(expected)) {
        assertFail(r);
        assert.equal(r.status, 400);
        assert.deepEqual(r.errors, expected);
      } else {
        assertOk(r);
        assert.equal(r.batch, false);
        assert.deepEqual(r.readings, [{ ...OUT, ...expected }]);
      }
    });
  }

  it("parseReadingsBody names element fields with the index in a batch", () => {
    for (const [, input, expected] of ROWS) {
      if (!Array.isArray(expected)) continue;
      const r = parseReadingsBody([reading(), input]);
      assertFail(r);
      assert.deepEqual(
        r.errors,
        expected.map((e) => ({ ...e, path: "/1" + e.path })),
      );
    }
  });
});

describe("fastReading", () => {
  const extra: [string, unknown][] = [
    ["null", null],
    ["a number", 5],
    ["a string", "x"],
    ["an array", [VALID]],
    ["an array with fields", Object.assign([], VALID)],
    ["a null-prototype object", Object.assign(Object.create(null), VALID)],
    ["an object whose fields are inherited", Object.create(VALID)],
    ["a Date", new Date()],
    ["heart_rate -0", reading({ heart_rate: -0 })],
    ["heart_rate 1e2", reading({ heart_rate: 1e2 })],
    ["heart_rate as a Number object", reading({ heart_rate: new Number(75) })],
    ["user_id as a String object", reading({ user_id: new String("u") })],
    ["timestamp with +2400", reading({ timestamp: "2024-01-15T10:00:00+2400" })],
  ];
  const inputs: [string, unknown][] = [...ROWS.map(([n, i]): [string, unknown] => [n, i]), ...extra];
  for (const [name, input] of inputs) {
    it(`fastReading agrees with readingSchema on ${name}`, () => {
      const fast = fastReading(input);
      const slow = readingSchema.safeParse(input);
      assert.equal(fast !== undefined, slow.success, `fast ${JSON.stringify(fast)} vs zod ${JSON.stringify(slow)}`);
      if (fast !== undefined && slow.success) {
        const d = slow.data;
        assert.deepEqual(fast, { userId: d.user_id, deviceId: d.device_id, ts: d.timestamp, heartRate: d.heart_rate });
      }
    });
  }
});

describe("parseReadingsBody on bodies and batches", () => {
  for (const body of [null, 42, "a string", true, false, 0]) {
    it(`parseReadingsBody rejects a body of ${JSON.stringify(body)} with 400`, () => {
      const r = parseReadingsBody(body);
      assertFail(r);
      assert.equal(r.status, 400);
      assert.deepEqual(r.errors.map((e) => e.path), [""]);
    });
  }

  it("parseReadingsBody rejects an empty array with 400", () => {
    const r = parseReadingsBody([]);
    assertFail(r);
    assert.equal(r.status, 400);
    assert.deepEqual(r.errors.map((e) => e.path), [""]);
  });

  it("parseReadingsBody accepts one object as a non-batch and a one-element array as a batch", () => {
    const one = parseReadingsBody(reading());
    assertOk(one);
    assert.equal(one.batch, false);
    const arr = parseReadingsBody([reading()]);
    assertOk(arr);
    assert.equal(arr.batch, true);
    assert.deepEqual(arr.readings, [OUT]);
  });

  it("parseReadingsBody accepts 10,000 readings in input order, duplicates kept", () => {
    const body = Array.from(
      { length: MAX_BATCH },
      (_, i) => reading({ heart_rate: 30 + (i % 191), user_id: `u${i % 7}` }),
    );
    body[MAX_BATCH - 1] = { ...body[0], heart_rate: 99 }; // same identity as element 0, later
    const r = parseReadingsBody(body);
    assertOk(r);
    assert.equal(r.batch, true);
    assert.equal(r.readings.length, MAX_BATCH);
    assert.equal(r.readings[1].heartRate, 31);
    assert.equal(r.readings[8].userId, "u1");
    assert.deepEqual(r.readings[0], { ...OUT, userId: "u0", heartRate: 30 });
    assert.deepEqual(r.readings[MAX_BATCH - 1], { ...OUT, userId: "u0", heartRate: 99 });
  });

  it("parseReadingsBody rejects 10,001 readings with 413", () => {
    const r = parseReadingsBody(Array.from({ length: MAX_BATCH + 1 }, () => reading()));
    assertFail(r);
    assert.equal(r.status, 413);
    assert.match(r.detail, /10000/);
  });

  it("parseReadingsBody names non-object elements by index", () => {
    const r = parseReadingsBody([reading(), null, 5, "x", [reading()], reading()]);
    assertFail(r);
    assert.equal(r.status, 400);
    assert.deepEqual(r.errors.map((e) => e.path), ["/1", "/2", "/3", "/4"]);
    assert.match(r.errors[0].message, /JSON object/);
    assert.equal(r.detail, "4 of 6 readings are invalid; nothing was stored.");
  });

  it("parseReadingsBody lists all three bad elements of a batch, every bad field of each", () => {
    const body = Array.from({ length: 10 }, () => reading());
    body[2] = reading({ heart_rate: "75" });
    body[5] = reading({ user_id: "", timestamp: "2024-01-15" });
    body[9] = reading({ device_id: MISSING });
    const r = parseReadingsBody(body);
    assertFail(r);
    assert.equal(r.status, 400);
    assert.deepEqual(r.errors, [
      { path: "/2/heart_rate", message: HR_MSG },
      { path: "/5/user_id", message: ID_MSG("user_id") },
      { path: "/5/timestamp", message: TS_MSG },
      { path: "/9/device_id", message: "device_id is required" },
    ]);
    assert.equal(r.detail, "3 of 10 readings are invalid; nothing was stored.");
  });

  it("parseReadingsBody rejects a whole batch for one bad element at the end", () => {
    const body = Array.from({ length: MAX_BATCH }, () => reading());
    body[MAX_BATCH - 1] = reading({ heart_rate: 220.01 });
    const r = parseReadingsBody(body);
    assertFail(r);
    assert.deepEqual(r.errors, [{ path: `/${MAX_BATCH - 1}/heart_rate`, message: HR_MSG }]);
    assert.equal(r.detail, `1 of ${MAX_BATCH} readings is invalid; nothing was stored.`);
  });

  it("parseReadingsBody names every bad field of a batch of 10,000 bad readings", () => {
    const r = parseReadingsBody(Array.from({ length: MAX_BATCH }, () => ({})));
    assertFail(r);
    assert.equal(r.errors.length, 4 * MAX_BATCH);
    assert.equal(r.errors[0].path, "/0/user_id");
    assert.equal(r.errors.at(-1)!.path, `/${MAX_BATCH - 1}/heart_rate`);
    assert.equal(r.detail, `${MAX_BATCH} of ${MAX_BATCH} readings are invalid; nothing was stored.`);
  });

  it("parseReadingsBody words a single bad reading without batch counts", () => {
    const r = parseReadingsBody(reading({ heart_rate: null }));
    assertFail(r);
    assert.equal(r.detail, "The reading is invalid; nothing was stored.");
    assert.equal(r.title, "Validation failed");
  });

  it("parseReadingsBody accepts 10,000 valid readings and keeps their order", () => {
    const body = JSON.parse(
      JSON.stringify(
        Array.from({ length: MAX_BATCH }, (_, i) => ({
          user_id: `user_${i % 50}`,
          device_id: i % 2 ? "device_a" : "device_b",
          timestamp: new Date(T + i * 1000).toISOString(),
          heart_rate: 60 + (i % 100) / 3,
        })),
      ),
    );
    const r = parseReadingsBody(body);
    assert.equal(r.ok, true);
    if (r.ok) {
      assert.equal(r.readings.length, MAX_BATCH);
      assert.equal(r.readings[MAX_BATCH - 1].ts, T + (MAX_BATCH - 1) * 1000);
    }
  });
});

describe("parseQueryParams", () => {
  const BASE = { user_id: "user_1", start: "2024-01-15T10:00:00Z", end: "2024-01-15T11:00:00Z" };
  const q = (params: Record<string, string | undefined>) => parseQueryParams((name) => params[name]);

  it("parseQueryParams keeps sub-millisecond bounds exact by rounding them up to whole milliseconds", () => {
    const T = Date.UTC(2024, 0, 15, 10);
    const at = (start: string, end: string) => q({ user_id: "u", start, end });
    const ok = (r: ReturnType<typeof at>) => {
      assert.equal(r.ok, true);
      return r.ok ? [r.value.start, r.value.end] : [];
    };
    // a reading at T is before end = T + 0.5 us: the bound becomes T + 1 ms
    assert.deepEqual(ok(at("2024-01-15T09:59:59Z", "2024-01-15T10:00:00.0005Z")), [T - 1000, T + 1]);
    // and a reading at T is before start = T + 0.5 us: excluded
    assert.deepEqual(ok(at("2024-01-15T10:00:00.0005Z", "2024-01-15T10:00:01Z")), [T + 1, T + 1000]);
    // both bounds inside one millisecond: a valid, empty range
    assert.deepEqual(ok(at("2024-01-15T10:00:00.0005Z", "2024-01-15T10:00:00.0009Z")), [T + 1, T + 1]);
    assert.equal(at("2024-01-15T10:00:00.0009Z", "2024-01-15T10:00:00.0005Z").ok, false);
    assert.equal(at("2024-01-15T10:00:00.00050Z", "2024-01-15T10:00:00.0005Z").ok, false);
    assert.deepEqual(ok(at("2024-01-15T10:00:00.1230Z", "2024-01-15T10:00:00.124Z")), [T + 123, T + 124]);
  });

  it("parseQueryParams reads an offset whose + arrived as a space (unencoded in a URL) as +", () => {
    const r = q({ ...BASE, start: "2024-01-15T11:00:00 01:00", end: "2024-01-15T12:30:00.5 0100" });
    assert.equal(r.ok, true);
    if (r.ok) {
      assert.equal(r.value.start, Date.UTC(2024, 0, 15, 10));
      assert.equal(r.value.end, Date.UTC(2024, 0, 15, 11, 30, 0, 500));
    }
  });
  const fails = (params: Record<string, string | undefined>) => {
    const r = q(params);
    if (r.ok) assert.fail(`expected a failure for ${JSON.stringify(params)}`);
    assert.equal(r.status, 400);
    return r;
  };

  it("parseQueryParams accepts the required parameters with bucket 1m by default", () => {
    const r = q(BASE);
    assert.ok(r.ok);
    assert.deepEqual(r.value, { userId: "user_1", start: T, end: T + 3_600_000, bucketMs: 60_000, bucket: "1m" });
    assert.equal("deviceId" in r.value, false);
  });

  it("parseQueryParams accepts device_id and converts offsets to UTC", () => {
    const r = q({ ...BASE, device_id: "device_b", start: "2024-01-15T12:00:00+02:00" });
    assert.ok(r.ok);
    assert.equal(r.value.deviceId, "device_b");
    assert.equal(r.value.start, T);
  });

  const buckets: [string, number][] = [
    ["10s", 10_000],
    ["30s", 30_000],
    ["1m", 60_000],
    ["5m", 300_000],
    ["15m", 900_000],
    ["30m", 1_800_000],
    ["1h", 3_600_000],
    ["6h", 21_600_000],
    ["1d", 86_400_000],
  ];
  for (const [bucket, ms] of buckets) {
    it(`parseQueryParams accepts bucket ${bucket}`, () => {
      const r = q({ ...BASE, bucket });
      assert.ok(r.ok);
      assert.equal(r.value.bucket, bucket);
      assert.equal(r.value.bucketMs, ms);
    });
  }

  const bad: [string, Record<string, string | undefined>, string[]][] = [
    ["missing user_id", { ...BASE, user_id: undefined }, ["user_id"]],
    ["missing start", { ...BASE, start: undefined }, ["start"]],
    ["missing end", { ...BASE, end: undefined }, ["end"]],
    ["nothing", {}, ["user_id", "start", "end"]],
    ["empty user_id", { ...BASE, user_id: "" }, ["user_id"]],
    ["empty start", { ...BASE, start: "" }, ["start"]],
    ["empty end", { ...BASE, end: "" }, ["end"]],
    ["empty device_id", { ...BASE, device_id: "" }, ["device_id"]],
    ["empty bucket", { ...BASE, bucket: "" }, ["bucket"]],
    ["bad user_id", { ...BASE, user_id: "user 1" }, ["user_id"]],
    ["user_id of 129 characters", { ...BASE, user_id: "u".repeat(129) }, ["user_id"]],
    ["bad device_id", { ...BASE, device_id: "device/a" }, ["device_id"]],
    ["device_id of 129 characters", { ...BASE, device_id: "d".repeat(129) }, ["device_id"]],
    ["bucket 2m", { ...BASE, bucket: "2m" }, ["bucket"]],
    ["bucket 1M", { ...BASE, bucket: "1M" }, ["bucket"]],
    ["bucket 60s", { ...BASE, bucket: "60s" }, ["bucket"]],
    ["bucket 1 m", { ...BASE, bucket: "1 m" }, ["bucket"]],
    ["date-only start", { ...BASE, start: "2024-01-15" }, ["start"]],
    ["impossible end", { ...BASE, end: "2024-02-30T00:00:00Z" }, ["end"]],
    ["numeric start", { ...BASE, start: "1705312800000" }, ["start"]],
    ["start 1969", { ...BASE, start: "1969-12-31T00:00:00Z" }, ["start"]],
    ["start equal to end", { ...BASE, end: BASE.start }, ["end"]],
    ["start after end", { ...BASE, start: BASE.end, end: BASE.start }, ["end"]],
    ["start after end by offset", { ...BASE, end: "2024-01-15T11:00:00+02:00" }, ["end"]],
    ["start after end and a bad user_id", { ...BASE, user_id: "", start: BASE.end, end: BASE.start }, [
      "user_id",
      "end",
    ]],
  ];
  for (const [name, params, paths] of bad) {
    it(`parseQueryParams rejects ${name}`, () => {
      const r = fails(params);
      assert.deepEqual(r.errors.map((e) => e.path), paths);
      for (const e of r.errors) assert.ok(e.message.startsWith(e.path), e.message);
      assert.equal(r.title, "Validation failed");
    });
  }

  it("parseQueryParams says which parameter is required", () => {
    assert.deepEqual(fails({ ...BASE, user_id: undefined }).errors, [{
      path: "user_id",
      message: "user_id is required",
    }]);
  });

  const MIN = 60_000;
  const iso = (ms: number) => new Date(ms).toISOString();
  const counts: [string, number, number, string, boolean][] = [
    ["100,000 aligned 1m buckets", 0, MAX_BUCKETS * MIN, "1m", true],
    ["100,001 1m buckets (end 1 ms past a boundary)", 0, MAX_BUCKETS * MIN + 1, "1m", false],
    ["100,000 buckets from an unaligned start", 30_000, MAX_BUCKETS * MIN, "1m", true],
    ["100,001 buckets from an unaligned start and end", 30_000, MAX_BUCKETS * MIN + 30_000, "1m", false],
    ["100,000 10s buckets", T, T + MAX_BUCKETS * 10_000, "10s", true],
    ["100,001 10s buckets", T, T + (MAX_BUCKETS + 1) * 10_000, "10s", false],
    ["a year of 1h buckets", Date.UTC(2024, 0, 1), Date.UTC(2025, 0, 1), "1h", true],
    ["the whole range 1970-9999 in 1d buckets", 0, MAX_TS, "1d", false],
  ];
  for (const [name, start, end, bucket, ok] of counts) {
    it(`parseQueryParams ${ok ? "accepts" : "rejects"} ${name}`, () => {
      const r = q({ user_id: "u", start: iso(start), end: iso(end), bucket });
      assert.equal(r.ok, ok, JSON.stringify(r));
      if (!r.ok) assert.deepEqual(r.errors.map((e) => e.path), ["bucket"]);
    });
  }

  it("parseQueryParams uses the first value of a repeated parameter (via URLSearchParams.get)", () => {
    const sp = new URLSearchParams("user_id=a&user_id=b&start=2024-01-15T10:00:00Z&end=2024-01-15T11:00:00Z");
    const r = parseQueryParams((name) => sp.get(name) ?? undefined);
    assert.ok(r.ok);
    assert.equal(r.value.userId, "a");
  });
});

describe("problem", () => {
  it("problem uses the validation type when there are field errors", () => {
    const errors = [{ path: "/heart_rate", message: HR_MSG }];
    assert.deepEqual(problem(400, "Validation failed", "bad", errors), {
      type: VALIDATION_PROBLEM_TYPE,
      title: "Validation failed",
      status: 400,
      detail: "bad",
      errors,
    });
  });

  it("problem uses about:blank and leaves out errors otherwise", () => {
    assert.deepEqual(problem(413, "Content Too Large", "too many", []), {
      type: "about:blank",
      title: "Content Too Large",
      status: 413,
      detail: "too many",
    });
    assert.equal(problem(404, "Not Found", "none").type, "about:blank");
  });

  it("problemResponse answers problem JSON with the status and extra headers", async () => {
    const p = problem(503, "Service Unavailable", "busy");
    const res = problemResponse(p, { "Retry-After": "1", "Content-Type": "text/plain" });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    assert.equal(res.headers.get("retry-after"), "1");
    assert.deepEqual(await res.json(), p);
  });
});
