/**
 * Black-box contract tests of the HTTP API (docs/api.md), driven through `app.request(...)`.
 *
 * Each describe block builds one app over a fresh engine in a temp dir; tests stay independent by
 * using their own user_id (see `uid()`).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { testApp } from "../support/harness.ts";

type T = Awaited<ReturnType<typeof testApp>>;
type Json = Record<string, unknown>;

const ROUTE = "/metrics/heart-rate";
const DAY_START = "2024-01-15T00:00:00Z";
const DAY_END = "2024-01-16T00:00:00Z";
const BUCKET_TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

let userSeq = 0;
/** A fresh user id, so that tests sharing an app never see each other's readings. */
function uid(prefix = "u"): string {
  return `${prefix}${++userSeq}`;
}

/** A valid reading (wire format) with some fields replaced. */
function rd(over: Json = {}): Json {
  return { user_id: "user_1", device_id: "device_a", timestamp: "2024-01-15T10:00:00Z", heart_rate: 75, ...over };
}

/** POSTs a JSON value (or, with `raw`, the given text verbatim). */
function post(t: T, body: unknown, opts: { raw?: boolean; headers?: Record<string, string> } = {}): Promise<Response> {
  const text = opts.raw ? (body as string) : JSON.stringify(body);
  return Promise.resolve(
    t.app.request(ROUTE, {
      method: "POST",
      body: text,
      headers: { "content-type": "application/json", ...opts.headers },
    }),
  );
}

/** POSTs and asserts the answer is 200. */
async function postOk(t: T, body: unknown): Promise<Json> {
  const res = await post(t, body);
  const text = await res.text();
  assert.equal(res.status, 200, `POST answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

/** GET /metrics/heart-rate with the given query parameters (URL-encoded here). */
function get(t: T, params: Record<string, string>): Promise<Response> {
  const qs = new URLSearchParams(params).toString();
  return Promise.resolve(t.app.request(`${ROUTE}?${qs}`));
}

interface Point {
  timestamp: string;
  heart_rate: number;
  device_id: string;
}
interface Answer {
  user_id: string;
  data: Point[];
  count: number;
}

/** GETs and asserts a 200 answer of the contract's shape; returns it. */
async function query(t: T, params: Record<string, string>): Promise<Answer> {
  const res = await get(t, params);
  const text = await res.text();
  assert.equal(res.status, 200, `GET answered ${res.status}: ${text}`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = JSON.parse(text) as Answer;
  assert.deepEqual(Object.keys(body).sort(), ["count", "data", "user_id"]);
  assert.equal(body.user_id, params.user_id);
  assert.equal(body.count, body.data.length, "count = length of data");
  for (const p of body.data) {
    assert.deepEqual(Object.keys(p).sort(), ["device_id", "heart_rate", "timestamp"]);
    assert.match(p.timestamp, BUCKET_TS);
  }
  const sorted = [...body.data].sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
  assert.deepEqual(body.data, sorted, "data sorted by timestamp ascending");
  return body;
}

/** The data of a whole-day query (2024-01-15) for `user`. */
async function day(t: T, user: string, extra: Record<string, string> = {}): Promise<Point[]> {
  return (await query(t, { user_id: user, start: DAY_START, end: DAY_END, ...extra })).data;
}

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: Array<{ path: string; message: string }>;
}

/** Asserts an RFC 9457 problem answer with `status`; returns the body. */
async function expectProblem(res: Response, status: number): Promise<Problem> {
  const text = await res.text();
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${text}`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/problem\+json/);
  const body = JSON.parse(text) as Problem;
  assert.equal(typeof body.type, "string");
  assert.ok(body.type.length > 0, "type is non-empty");
  assert.equal(typeof body.title, "string");
  assert.ok(body.title.length > 0, "title is non-empty");
  assert.equal(body.status, status, "status field equals the HTTP status");
  assert.equal(typeof body.detail, "string");
  assert.ok(body.detail.length > 0, "detail is non-empty");
  if (body.errors !== undefined) {
    assert.ok(Array.isArray(body.errors));
    for (const e of body.errors) {
      assert.equal(typeof e.path, "string");
      assert.equal(typeof e.message, "string");
      assert.ok(e.message.length > 0);
    }
  }
  return body;
}

/** Asserts a 400 validation problem whose errors name exactly `paths` (as a set). */
async function expectValidation(res: Response, paths: string[]): Promise<Problem> {
  const p = await expectProblem(res, 400);
  assert.ok(Array.isArray(p.errors) && p.errors.length > 0, "validation problems carry errors");
  assert.deepEqual([...new Set(p.errors!.map((e) => e.path))].sort(), [...paths].sort());
  return p;
}

/** Asserts a 404 problem answer for a query. */
async function expectNoData(t: T, params: Record<string, string>): Promise<void> {
  await expectProblem(await get(t, params), 404);
}

function withApp(overrides: Parameters<typeof testApp>[0] = {}): () => T {
  let t: T | undefined;
  before(async () => {
    t = await testApp(overrides);
  });
  after(async () => {
    await t?.close();
  });
  return () => t!;
}

// ---------------------------------------------------------------------------------------------

describe("POST readings table: ids", () => {
  const app = withApp();

  const ok: Array<[string, string]> = [
    ["a single character", "x"],
    ["128 characters", "a".repeat(128)],
    ["allowed punctuation _ . : @ -", "a_b.c:d@e-f"],
    ["only punctuation", "_.:@-"],
    ["upper and lower case and digits", "AbC019xyz"],
  ];
  for (const field of ["user_id", "device_id"] as const) {
    for (const [name, id] of ok) {
      it(`POST accepts ${field} of ${name} and the reading can be queried back`, async () => {
        const t = app();
        // user ids of this table are used once each; device-id rows get a fresh user
        const u = field === "user_id" ? id : uid();
        const d = field === "device_id" ? id : "device_a";
        const res = await post(t, rd({ user_id: u, device_id: d }));
        assert.equal(res.status, 200, await res.clone().text());
        assert.deepEqual(await res.json(), { status: "accepted" });
        const data = await day(t, u, { device_id: d });
        assert.equal(data.length, 1);
        assert.equal(data[0].device_id, d);
      });
    }
  }

  const bad: Array<[string, unknown]> = [
    ["empty", ""],
    ["129 characters", "a".repeat(129)],
    ["a space", "a b"],
    ["a slash", "a/b"],
    ["unicode", "usér"],
    ["an emoji", "u\u{1F600}"],
    ["a quote", "a'b"],
    ["a leading space", " a"],
    ["a number", 123],
    ["null", null],
    ["true", true],
    ["an array", ["a"]],
    ["an object", { id: "a" }],
  ];
  for (const field of ["user_id", "device_id"] as const) {
    for (const [name, value] of bad) {
      it(`POST rejects ${field} that is ${name} with 400 naming /${field}`, async () => {
        const p = await expectValidation(await post(app(), rd({ user_id: uid(), [field]: value })), [`/${field}`]);
        assert.equal(p.errors!.length, 1);
      });
    }
    it(`POST rejects a reading without ${field} with 400 naming /${field}`, async () => {
      const r = rd({ user_id: uid() });
      delete r[field];
      await expectValidation(await post(app(), r), [`/${field}`]);
    });
  }
});

describe("POST readings table: timestamps", () => {
  const app = withApp();

  // [timestamp sent, expected 1m bucket start in the answer]
  const ok: Array<[string, string, string]> = [
    ["Z offset", "2024-01-15T10:00:00Z", "2024-01-15T10:00:00Z"],
    ["+02:00 offset (stored as UTC)", "2024-01-15T12:07:00+02:00", "2024-01-15T10:07:00Z"],
    ["-05:30 offset (stored as UTC)", "2024-01-15T04:30:00-05:30", "2024-01-15T10:00:00Z"],
    ["no offset (taken as UTC)", "2024-01-15T10:03:00", "2024-01-15T10:03:00Z"],
    ["fractional seconds", "2024-01-15T10:04:59.999Z", "2024-01-15T10:04:00Z"],
    ["microsecond fraction", "2024-01-15T10:05:01.123456Z", "2024-01-15T10:05:00Z"],
    ["a leap day", "2024-02-29T10:00:00Z", "2024-02-29T10:00:00Z"],
  ];
  for (const [name, ts, bucket] of ok) {
    it(`POST accepts a timestamp with ${name} and the query shows the UTC bucket ${bucket}`, async () => {
      const t = app();
      const user = uid();
      await postOk(t, rd({ user_id: user, timestamp: ts }));
      const start = bucket.slice(0, 10) + "T00:00:00Z";
      const end = new Date(Date.parse(start) + 86_400_000).toISOString();
      const a = await query(t, { user_id: user, start, end });
      assert.deepEqual(a.data, [{ timestamp: bucket, heart_rate: 75, device_id: "device_a" }]);
    });
  }

  it("POST accepts fractional seconds with more than 9 digits (RFC 3339 allows any number) and truncates them to ms", async () => {
    // RFC 3339: time-secfrac = "." 1*DIGIT. (src/http/timestamp.ts DATE_TIME allows only \.\d{1,9}.)
    const t = app();
    const user = uid();
    const res = await post(t, rd({ user_id: user, timestamp: "2024-01-15T10:00:00.1234567891Z" }));
    assert.equal(res.status, 200, await res.text());
    const a = await query(t, { user_id: user, start: "2024-01-15T10:00:00.123Z", end: "2024-01-15T10:00:00.124Z" });
    assert.equal(a.count, 1);
  });

  it("POST with an offset crossing midnight lands in the UTC day (query shows the previous UTC day)", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T01:00:00+02:00" }));
    const a = await query(t, { user_id: user, start: "2024-01-14T00:00:00Z", end: DAY_END, bucket: "1d" });
    assert.deepEqual(a.data, [{ timestamp: "2024-01-14T00:00:00Z", heart_rate: 75, device_id: "device_a" }]);
  });

  it("POST stores timestamps at millisecond precision (the half-open range sees the exact millisecond)", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T10:00:00.123Z" }));
    const hit = await query(t, {
      user_id: user,
      start: "2024-01-15T10:00:00.123Z",
      end: "2024-01-15T10:00:00.124Z",
      bucket: "10s",
    });
    assert.deepEqual(hit.data, [{ timestamp: "2024-01-15T10:00:00Z", heart_rate: 75, device_id: "device_a" }]);
    await expectNoData(t, { user_id: user, start: "2024-01-15T10:00:00.124Z", end: "2024-01-15T10:00:01Z" });
    await expectNoData(t, { user_id: user, start: "2024-01-15T10:00:00Z", end: "2024-01-15T10:00:00.123Z" });
  });

  it("POST treats sub-millisecond variants of one millisecond as the same identity (last write wins)", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T10:00:00.1231Z", heart_rate: 60 }));
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T10:00:00.1234Z", heart_rate: 90 }));
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 90,
      device_id: "device_a",
    }]);
  });

  it("POST accepts the first instant of 1970 and the last second of 9999", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, timestamp: "1970-01-01T00:00:00Z" }));
    await postOk(t, rd({ user_id: user, timestamp: "9999-12-31T23:59:59Z" }));
    const a = await query(t, { user_id: user, start: "1970-01-01T00:00:00Z", end: "1970-01-02T00:00:00Z" });
    assert.deepEqual(a.data, [{ timestamp: "1970-01-01T00:00:00Z", heart_rate: 75, device_id: "device_a" }]);
    const b = await query(t, { user_id: user, start: "9999-12-31T23:00:00Z", end: "9999-12-31T23:59:59.999Z" });
    assert.deepEqual(b.data, [{ timestamp: "9999-12-31T23:59:00Z", heart_rate: 75, device_id: "device_a" }]);
  });

  const bad: Array<[string, unknown]> = [
    ["an impossible date 2024-02-30", "2024-02-30T10:00:00Z"],
    ["Feb 29 of a non-leap year", "2023-02-29T10:00:00Z"],
    ["month 13", "2024-13-01T10:00:00Z"],
    ["hour 24", "2024-01-15T24:00:00Z"],
    ["a date only", "2024-01-15"],
    ["a time only", "10:00:00Z"],
    ["a number (epoch ms)", 1705312800000],
    ["a number (epoch s)", 1705312800],
    ["the year 1969", "1969-12-31T23:59:59Z"],
    ["year 10000", "10000-01-01T00:00:00Z"],
    ["an empty string", ""],
    ["free text", "yesterday"],
    ["null", null],
    ["trailing garbage", "2024-01-15T10:00:00Zjunk"],
  ];
  for (const [name, value] of bad) {
    it(`POST rejects a timestamp that is ${name} with 400 naming /timestamp`, async () => {
      const user = uid();
      await expectValidation(await post(app(), rd({ user_id: user, timestamp: value })), ["/timestamp"]);
      await expectNoData(app(), {
        user_id: user,
        start: "1970-01-01T00:00:00Z",
        end: "2200-01-01T00:00:00Z",
        bucket: "1d",
      });
    });
  }

  it("POST rejects a reading without timestamp with 400 naming /timestamp", async () => {
    const r = rd({ user_id: uid() });
    delete r.timestamp;
    await expectValidation(await post(app(), r), ["/timestamp"]);
  });
});

describe("POST readings table: heart_rate", () => {
  const app = withApp();

  const ok: Array<[string, number]> = [
    ["30 (lower bound, inclusive)", 30],
    ["220 (upper bound, inclusive)", 220],
    ["a decimal 72.5", 72.5],
    ["a decimal 30.01", 30.01],
    ["a decimal 219.99", 219.99],
  ];
  for (const [name, hr] of ok) {
    it(`POST accepts heart_rate ${name} and the query answers it`, async () => {
      const t = app();
      const user = uid();
      await postOk(t, rd({ user_id: user, heart_rate: hr }));
      assert.deepEqual(await day(t, user), [{
        timestamp: "2024-01-15T10:00:00Z",
        heart_rate: hr,
        device_id: "device_a",
      }]);
    });
  }

  const bad: Array<[string, string]> = [
    ["29.99", "29.99"],
    ["220.01", "220.01"],
    ["0", "0"],
    ["-75", "-75"],
    ['"75" (a string)', '"75"'],
    ["true", "true"],
    ["null", "null"],
    ["an array", "[75]"],
    ["an object", '{"v":75}'],
    ["1e400 (Infinity once parsed)", "1e400"],
    ["-1e400", "-1e400"],
  ];
  for (const [name, json] of bad) {
    it(`POST rejects heart_rate ${name} with 400 naming /heart_rate`, async () => {
      const t = app();
      const user = uid();
      const body =
        `{"user_id":"${user}","device_id":"device_a","timestamp":"2024-01-15T10:00:00Z","heart_rate":${json}}`;
      await expectValidation(await post(t, body, { raw: true }), ["/heart_rate"]);
      await expectNoData(t, { user_id: user, start: DAY_START, end: DAY_END });
    });
  }

  it("POST rejects a reading without heart_rate with 400 naming /heart_rate", async () => {
    const r = rd({ user_id: uid() });
    delete r.heart_rate;
    await expectValidation(await post(app(), r), ["/heart_rate"]);
  });

  it("POST names every bad field of a single reading", async () => {
    const p = await expectValidation(
      await post(app(), { user_id: "", device_id: "a b", timestamp: "2024-02-30T00:00:00Z", heart_rate: "75" }),
      [
        "/user_id",
        "/device_id",
        "/timestamp",
        "/heart_rate",
      ],
    );
    assert.equal(p.status, 400);
  });

  it("POST ignores extra fields (and stores the reading)", async () => {
    const t = app();
    const user = uid();
    await postOk(t, {
      ...rd({ user_id: user, heart_rate: 70 }),
      note: "x",
      extra: { nested: [1, 2] },
      unit: "bpm",
      heart_rate_2: "no",
    });
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 70,
      device_id: "device_a",
    }]);
  });

  it("POST ignores an extra __proto__ field", async () => {
    const t = app();
    const user = uid();
    const body =
      `{"__proto__":{"heart_rate":"x"},"user_id":"${user}","device_id":"device_a","timestamp":"2024-01-15T10:00:00Z","heart_rate":71}`;
    const res = await post(t, body, { raw: true });
    assert.equal(res.status, 200, await res.text());
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 71,
      device_id: "device_a",
    }]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("POST answers and batches", () => {
  const app = withApp();

  it('POST of one reading answers exactly 200 {"status":"accepted"} as application/json', async () => {
    const res = await post(app(), rd({ user_id: uid() }));
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await res.json(), { status: "accepted" });
  });

  it('POST of a batch answers exactly 200 {"status":"accepted","count":N}', async () => {
    const t = app();
    const user = uid();
    const batch = [0, 1, 2].map((i) => rd({ user_id: user, timestamp: `2024-01-15T10:0${i}:00Z`, heart_rate: 70 + i }));
    const res = await post(t, batch);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await res.json(), { status: "accepted", count: 3 });
    assert.deepEqual(
      (await day(t, user)).map((p) => p.heart_rate),
      [70, 71, 72],
    );
  });

  it("POST of a batch of one reading answers count 1", async () => {
    assert.deepEqual(await postOk(app(), [rd({ user_id: uid() })]), { status: "accepted", count: 1 });
  });

  it("POST of a batch of exactly 10,000 readings is accepted with count 10000", async () => {
    const t = app();
    const user = uid();
    const base = Date.parse("2024-01-15T00:00:00Z");
    const batch = Array.from(
      { length: 10_000 },
      (_, i) => rd({ user_id: user, timestamp: new Date(base + i * 1000).toISOString() }),
    );
    assert.deepEqual(await postOk(t, batch), { status: "accepted", count: 10_000 });
    const a = await query(t, { user_id: user, start: DAY_START, end: DAY_END, bucket: "1h" });
    assert.equal(a.count, 3); // 10,000 s = 2 h 46 min 40 s
  });

  it("POST of a batch with bad elements answers 400 naming index and field of every bad reading, and stores nothing", async () => {
    const t = app();
    const user = uid();
    const batch = [
      rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z" }),
      rd({ user_id: user, timestamp: "2024-01-15T10:01:00Z", heart_rate: 29.99 }),
      rd({ user_id: user, timestamp: "2024-01-15T10:02:00Z" }),
      rd({ user_id: "bad user", timestamp: "2024-01-15T10:03:00Z" }),
      rd({ user_id: user, timestamp: "2024-01-15T10:04:00Z" }),
      rd({ user_id: user, timestamp: "2024-02-30T10:05:00Z", device_id: "" }),
    ];
    const p = await expectValidation(await post(t, batch), [
      "/1/heart_rate",
      "/3/user_id",
      "/5/timestamp",
      "/5/device_id",
    ]);
    assert.equal(p.type !== "about:blank", true, "validation problems have their own type");
    await expectNoData(t, { user_id: user, start: DAY_START, end: DAY_END });
  });

  it("POST of a batch with 1,500 bad readings names the index and field of every one of them", async () => {
    // docs/api.md: "one invalid reading rejects the whole batch with 400, naming the index and field of
    // every bad reading". (src/http/validation.ts caps the list at MAX_ERRORS = 1000.)
    const t = app();
    const user = uid();
    const batch = Array.from(
      { length: 1500 },
      (_, i) =>
        rd({ user_id: user, timestamp: new Date(Date.UTC(2024, 0, 15) + i * 1000).toISOString(), heart_rate: 10 }),
    );
    const p = await expectProblem(await post(t, batch), 400);
    const paths = new Set((p.errors ?? []).map((e) => e.path));
    const missing = batch.map((_, i) => `/${i}/heart_rate`).filter((path) => !paths.has(path));
    assert.deepEqual(missing.slice(0, 3), [], `${missing.length} of 1500 bad readings are not named`);
    await expectNoData(t, { user_id: user, start: DAY_START, end: DAY_END });
  });

  it("POST of a batch whose last element is bad stores none of the good ones (answer unchanged)", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, heart_rate: 60 }));
    const before = await day(t, user);
    const batch = [
      rd({ user_id: user, heart_rate: 100 }), // same identity: would change the answer
      rd({ user_id: user, timestamp: "2024-01-15T11:00:00Z" }), // new bucket
      rd({ user_id: user, heart_rate: true }),
    ];
    await expectValidation(await post(t, batch), ["/2/heart_rate"]);
    assert.deepEqual(await day(t, user), before);
    assert.deepEqual(before, [{ timestamp: "2024-01-15T10:00:00Z", heart_rate: 60, device_id: "device_a" }]);
  });

  it("POST of a batch with a non-object element names the element's index", async () => {
    const t = app();
    const user = uid();
    await expectValidation(await post(t, [rd({ user_id: user }), 5, null, "x", [rd()]]), ["/1", "/2", "/3", "/4"]);
    await expectNoData(t, { user_id: user, start: DAY_START, end: DAY_END });
  });

  it("POST of a batch: a later element with the same identity wins", async () => {
    const t = app();
    const user = uid();
    const batch = [
      rd({ user_id: user, heart_rate: 70 }),
      rd({ user_id: user, heart_rate: 90 }),
      rd({ user_id: user, device_id: "device_b", heart_rate: 50 }),
      rd({ user_id: user, heart_rate: 80 }),
    ];
    assert.deepEqual(await postOk(t, batch), { status: "accepted", count: 4 });
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 80,
      device_id: "device_a",
    }]);
    assert.deepEqual(await day(t, user, { device_id: "device_b" }), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 50,
      device_id: "device_b",
    }]);
  });

  it("POST of a batch: a duplicate within the batch is counted once in the mean", async () => {
    const t = app();
    const user = uid();
    await postOk(t, [
      rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z", heart_rate: 70 }),
      rd({ user_id: user, timestamp: "2024-01-15T10:00:30Z", heart_rate: 80 }),
      rd({ user_id: user, timestamp: "2024-01-15T10:00:30Z", heart_rate: 80 }),
    ]);
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 75,
      device_id: "device_a",
    }]);
  });

  it("POST of a batch may mix users; each user's query sees only its own readings", async () => {
    const t = app();
    const u1 = uid();
    const u2 = uid();
    await postOk(t, [rd({ user_id: u1, heart_rate: 61 }), rd({ user_id: u2, heart_rate: 62 })]);
    assert.deepEqual((await day(t, u1)).map((p) => p.heart_rate), [61]);
    assert.deepEqual((await day(t, u2)).map((p) => p.heart_rate), [62]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("POST malformed bodies", () => {
  const app = withApp();

  const bad: Array<[string, string]> = [
    ["malformed JSON", '{"user_id": "u", '],
    ["a trailing comma", '{"user_id":"u","device_id":"device_a","timestamp":"2024-01-15T10:00:00Z","heart_rate":75,}'],
    ["an empty body", ""],
    ["whitespace only", "   \n"],
    ["a JSON string", '"hello"'],
    ["a JSON number", "42"],
    ["JSON null", "null"],
    ["JSON true", "true"],
    ["an empty array", "[]"],
    ["an empty object", "{}"],
    ["two JSON values", '{"a":1} {"b":2}'],
    ["not JSON at all", "user_id=u&heart_rate=75"],
  ];
  for (const [name, body] of bad) {
    it(`POST with ${name} answers 400 problem JSON`, async () => {
      const p = await expectProblem(await post(app(), body, { raw: true }), 400);
      assert.ok(p.title.length > 0);
    });
  }

  it("POST with a deeply nested array answers 400, not 500", async () => {
    const depth = 50_000;
    await expectProblem(await post(app(), "[".repeat(depth) + "]".repeat(depth), { raw: true }), 400);
  });

  it("POST with a lone surrogate in an id answers 400 naming /user_id", async () => {
    const body = '{"user_id":"\\ud800","device_id":"device_a","timestamp":"2024-01-15T10:00:00Z","heart_rate":75}';
    await expectValidation(await post(app(), body, { raw: true }), ["/user_id"]);
  });

  it("POST of a batch of 10,001 readings answers 413 problem JSON and stores nothing", async () => {
    const t = app();
    const user = uid();
    const base = Date.parse("2024-01-15T00:00:00Z");
    const batch = Array.from(
      { length: 10_001 },
      (_, i) => rd({ user_id: user, timestamp: new Date(base + i * 1000).toISOString() }),
    );
    await expectProblem(await post(t, batch), 413);
    await expectNoData(t, { user_id: user, start: DAY_START, end: DAY_END });
  });
});

describe("POST body size limit (maxBodyBytes 2048)", () => {
  const app = withApp({ maxBodyBytes: 2048 });

  /** A valid single-reading body padded with an ignored field to exactly `bytes` bytes. */
  function paddedBody(user: string, bytes: number): string {
    const head =
      `{"user_id":"${user}","device_id":"device_a","timestamp":"2024-01-15T10:00:00Z","heart_rate":75,"pad":"`;
    const tail = `"}`;
    const body = head + "x".repeat(bytes - head.length - tail.length) + tail;
    assert.equal(Buffer.byteLength(body), bytes);
    return body;
  }

  it("POST of a body of exactly the limit (2048 bytes) is accepted", async () => {
    const t = app();
    const user = uid();
    const res = await post(t, paddedBody(user, 2048), { raw: true });
    assert.equal(res.status, 200, await res.text());
    assert.equal((await day(t, user)).length, 1);
  });

  it("POST of a body one byte over the limit answers 413 problem JSON and stores nothing", async () => {
    const t = app();
    const user = uid();
    await expectProblem(await post(t, paddedBody(user, 2049), { raw: true }), 413);
    await expectNoData(t, { user_id: user, start: DAY_START, end: DAY_END });
  });

  it("POST of a body over the limit with a Content-Length header answers 413", async () => {
    const t = app();
    const body = paddedBody(uid(), 5000);
    await expectProblem(
      await post(t, body, { raw: true, headers: { "content-length": String(Buffer.byteLength(body)) } }),
      413,
    );
  });

  it("POST of a large body that is not even JSON answers 413 (size is checked first)", async () => {
    await expectProblem(await post(app(), "x".repeat(10_000), { raw: true }), 413);
  });

  it("POST counts bytes, not characters: 1,000 two-byte characters plus a reading exceed 2048 bytes", async () => {
    const t = app();
    const user = uid();
    const body =
      `{"user_id":"${user}","device_id":"device_a","timestamp":"2024-01-15T10:00:00Z","heart_rate":75,"pad":"${
        "é".repeat(1000)
      }"}`;
    assert.ok(body.length < 2048 && Buffer.byteLength(body) > 2048);
    await expectProblem(await post(t, body, { raw: true }), 413);
  });
});

// ---------------------------------------------------------------------------------------------

describe("problem JSON, routes and methods", () => {
  const app = withApp();

  it("a validation problem has type, title, status 400, detail and errors [{path, message}]", async () => {
    const p = await expectValidation(await post(app(), rd({ user_id: uid(), heart_rate: 29.99 })), ["/heart_rate"]);
    assert.deepEqual(Object.keys(p).sort(), ["detail", "errors", "status", "title", "type"]);
    assert.equal(p.errors![0].path, "/heart_rate");
    assert.match(p.errors![0].message, /heart_rate/);
  });

  const unknown: Array<[string, string]> = [
    ["GET", "/nope"],
    ["GET", "/index.html"],
    ["POST", "/metrics/heart-rates"],
    ["GET", "/metrics/heart-rate/extra"],
    ["DELETE", "/health/x"],
  ];
  for (const [method, path] of unknown) {
    it(`${method} ${path} (unknown route) answers 404 problem JSON`, async () => {
      const res = await app().app.request(path, { method });
      await expectProblem(res, 404);
    });
  }

  for (const method of ["PUT", "PATCH"]) {
    it(`${method} /metrics/heart-rate answers 405 problem JSON with an Allow header listing GET, POST and DELETE`, async () => {
      const res = await app().app.request(ROUTE, { method, body: JSON.stringify(rd()) });
      await expectProblem(res, 405);
      const allow = (res.headers.get("allow") ?? "").split(",").map((s) => s.trim().toUpperCase());
      assert.ok(
        allow.includes("GET") && allow.includes("POST") && allow.includes("DELETE"),
        `Allow: ${res.headers.get("allow")}`,
      );
      assert.ok(!allow.includes(method));
    });
  }

  it("a 404 for a query without data is problem JSON with status 404", async () => {
    const p = await expectProblem(await get(app(), { user_id: uid(), start: DAY_START, end: DAY_END }), 404);
    assert.equal(p.errors, undefined);
  });

  it("a 413 is problem JSON with status 413", async () => {
    const batch = Array.from({ length: 10_001 }, () => rd());
    const p = await expectProblem(await post(app(), batch), 413);
    assert.equal(p.status, 413);
  });
});

// ---------------------------------------------------------------------------------------------

describe("GET query semantics", () => {
  const app = withApp();

  /** One bucket of an answer; the device defaults to device_a. */
  const pt = (timestamp: string, heart_rate: number, device_id = "device_a"): Point => ({
    timestamp,
    heart_rate,
    device_id,
  });

  /**
   * One step of a case: a POST (one reading or a batch), a flush of the memtables to runs, or a GET
   * with its expected data (or 404). A GET's parameters are merged over a whole-day query
   * (2024-01-15) for the case's first user.
   */
  type Query = { user_id?: string; device_id?: string; start?: string; end?: string; bucket?: string };
  type Step =
    | { post: Json | Json[] }
    | { flush: true }
    | { get?: Query; data: Point[] | 404 };

  interface Case {
    name: string;
    /** The case's user ids, made when it runs (default: one fresh id). */
    users?: () => string[];
    /** The steps, given the case's user ids. */
    steps: (user: string, ...others: string[]) => Step[];
  }

  const cases: Case[] = [
    {
      name: "brief's example: at 10:00:00 device_b 80 and device_a 75 answer 75 from device_a",
      steps: (user) => [
        { post: rd({ user_id: user, device_id: "device_b", heart_rate: 80 }) },
        { post: rd({ user_id: user, device_id: "device_a", heart_rate: 75 }) },
        {
          get: { start: "2024-01-15T10:00:00Z", end: "2024-01-15T10:30:00Z" },
          data: [pt("2024-01-15T10:00:00Z", 75, "device_a")],
        },
      ],
    },
    {
      name: "priority is per bucket: a bucket where only device_b reported is answered by device_b",
      steps: (user) => [
        {
          post: [
            rd({ user_id: user, device_id: "device_b", timestamp: "2024-01-15T10:00:10Z", heart_rate: 80 }),
            rd({ user_id: user, device_id: "device_a", timestamp: "2024-01-15T10:00:20Z", heart_rate: 75 }),
            rd({ user_id: user, device_id: "device_b", timestamp: "2024-01-15T10:01:00Z", heart_rate: 82 }),
            rd({ user_id: user, device_id: "device_a", timestamp: "2024-01-15T10:02:00Z", heart_rate: 71 }),
          ],
        },
        {
          data: [
            pt("2024-01-15T10:00:00Z", 75, "device_a"),
            pt("2024-01-15T10:01:00Z", 82, "device_b"),
            pt("2024-01-15T10:02:00Z", 71, "device_a"),
          ],
        },
      ],
    },
    {
      name: "the winning device's mean is used, not the mean across devices",
      steps: (user) => [
        {
          post: [
            rd({ user_id: user, device_id: "device_a", timestamp: "2024-01-15T10:00:00Z", heart_rate: 70 }),
            rd({ user_id: user, device_id: "device_a", timestamp: "2024-01-15T10:00:10Z", heart_rate: 71 }),
            rd({ user_id: user, device_id: "device_a", timestamp: "2024-01-15T10:00:20Z", heart_rate: 71 }),
            rd({ user_id: user, device_id: "device_b", timestamp: "2024-01-15T10:00:30Z", heart_rate: 200 }),
          ],
        },
        { data: [pt("2024-01-15T10:00:00Z", 70.67, "device_a")] },
      ],
    },
    {
      name: "a device not in the priority table ranks below configured devices (even when it sorts first)",
      steps: (user) => [
        {
          post: [
            rd({ user_id: user, device_id: "aaa_watch", heart_rate: 60 }),
            rd({ user_id: user, device_id: "device_b", heart_rate: 80 }),
            rd({ user_id: user, device_id: "A", timestamp: "2024-01-15T10:01:00Z", heart_rate: 61 }),
            rd({ user_id: user, device_id: "device_a", timestamp: "2024-01-15T10:01:00Z", heart_rate: 81 }),
          ],
        },
        { data: [pt("2024-01-15T10:00:00Z", 80, "device_b"), pt("2024-01-15T10:01:00Z", 81, "device_a")] },
      ],
    },
    {
      name: "between two unknown devices the smaller device_id wins",
      steps: (user) => [
        { post: rd({ user_id: user, device_id: "zeta", heart_rate: 60 }) },
        { post: rd({ user_id: user, device_id: "alpha", heart_rate: 90 }) },
        { post: rd({ user_id: user, device_id: "mid", heart_rate: 50 }) },
        { data: [pt("2024-01-15T10:00:00Z", 90, "alpha")] },
      ],
    },
    {
      name: "a bucket with only an unknown device is answered by that device",
      steps: (user) => [
        { post: rd({ user_id: user, device_id: "polar-h10", heart_rate: 66.5 }) },
        { data: [pt("2024-01-15T10:00:00Z", 66.5, "polar-h10")] },
      ],
    },
    {
      name: "device_id filters to that device only, one entry per bucket",
      steps: (user) => [
        {
          post: [
            rd({ user_id: user, device_id: "device_a", timestamp: "2024-01-15T10:00:00Z", heart_rate: 75 }),
            rd({ user_id: user, device_id: "device_b", timestamp: "2024-01-15T10:00:00Z", heart_rate: 80 }),
            rd({ user_id: user, device_id: "device_b", timestamp: "2024-01-15T10:00:30Z", heart_rate: 90 }),
            rd({ user_id: user, device_id: "device_b", timestamp: "2024-01-15T10:02:00Z", heart_rate: 70 }),
            rd({ user_id: user, device_id: "zeta", timestamp: "2024-01-15T10:03:00Z", heart_rate: 99 }),
          ],
        },
        {
          get: { device_id: "device_b" },
          data: [pt("2024-01-15T10:00:00Z", 85, "device_b"), pt("2024-01-15T10:02:00Z", 70, "device_b")],
        },
        { get: { device_id: "zeta" }, data: [pt("2024-01-15T10:03:00Z", 99, "zeta")] },
        { get: { device_id: "device_c" }, data: 404 },
      ],
    },
    {
      name: "device_id of another user's device gives 404 for this user",
      users: () => [uid(), uid()],
      steps: (u1, u2) => [
        { post: rd({ user_id: u1, device_id: "only_u1" }) },
        { post: rd({ user_id: u2, device_id: "device_a" }) },
        { get: { user_id: u2, device_id: "only_u1" }, data: 404 },
      ],
    },
    {
      name: "the range is half-open: a reading exactly at start is included, exactly at end excluded",
      steps: (user) => [
        {
          post: [
            rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z", heart_rate: 60 }),
            rd({ user_id: user, timestamp: "2024-01-15T10:04:59.999Z", heart_rate: 70 }),
            rd({ user_id: user, timestamp: "2024-01-15T10:05:00Z", heart_rate: 200 }),
          ],
        },
        {
          get: { start: "2024-01-15T10:00:00Z", end: "2024-01-15T10:05:00Z", bucket: "5m" },
          data: [pt("2024-01-15T10:00:00Z", 65)],
        },
        // A range starting at the later reading sees only it.
        {
          get: { start: "2024-01-15T10:05:00Z", end: "2024-01-15T10:05:00.001Z" },
          data: [pt("2024-01-15T10:05:00Z", 200)],
        },
        // A range ending exactly at the first reading sees nothing.
        { get: { start: "2024-01-15T09:00:00Z", end: "2024-01-15T10:00:00Z" }, data: 404 },
      ],
    },
    {
      name: "a range not aligned to the bucket reports the epoch-aligned bucket start, with only in-range readings",
      steps: (user) => [
        {
          post: [
            rd({ user_id: user, timestamp: "2024-01-15T10:00:10Z", heart_rate: 100 }), // before start
            rd({ user_id: user, timestamp: "2024-01-15T10:00:40Z", heart_rate: 60 }),
          ],
        },
        {
          get: { start: "2024-01-15T10:00:30Z", end: "2024-01-15T10:01:00Z" },
          data: [pt("2024-01-15T10:00:00Z", 60)],
        },
      ],
    },
    {
      name: "start and end with offsets are converted to UTC",
      steps: (user) => [
        { post: rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z" }) },
        {
          get: { start: "2024-01-15T11:30:00+02:00", end: "2024-01-15T12:30:00+02:00" },
          data: [pt("2024-01-15T10:00:00Z", 75)],
        },
        { get: { start: "2024-01-15T10:30:00+02:00", end: "2024-01-15T11:30:00+02:00" }, data: 404 },
      ],
    },
    // Means, rounded to 2 decimals: [readings in one bucket, answer].
    ...([
      [[70, 71, 71], 70.67],
      [[30, 30, 31], 30.33],
      [[72.5], 72.5],
      [[60, 61], 60.5],
      [[100, 100, 101], 100.33],
      [[80.123, 80.123, 80.123], 80.12],
      [[219.99, 220, 220], 220],
    ] as Array<[number[], number]>).map(([values, mean]): Case => ({
      name: `the mean of ${values.join(", ")} is answered as ${mean} (rounded to 2 decimals)`,
      steps: (user) => [
        { post: values.map((v, i) => rd({ user_id: user, timestamp: `2024-01-15T10:00:0${i}Z`, heart_rate: v })) },
        { data: [pt("2024-01-15T10:00:00Z", mean)] },
      ],
    })),
    // Bucket widths: [bucket, reading timestamp, expected bucket start].
    ...([
      ["10s", "2024-01-15T10:00:19.999Z", "2024-01-15T10:00:10Z"],
      ["30s", "2024-01-15T10:00:59Z", "2024-01-15T10:00:30Z"],
      ["1m", "2024-01-15T10:07:59.500Z", "2024-01-15T10:07:00Z"],
      ["5m", "2024-01-15T10:09:59Z", "2024-01-15T10:05:00Z"],
      ["15m", "2024-01-15T10:29:59Z", "2024-01-15T10:15:00Z"],
      ["30m", "2024-01-15T10:44:59Z", "2024-01-15T10:30:00Z"],
      ["1h", "2024-01-15T10:59:59Z", "2024-01-15T10:00:00Z"],
      ["6h", "2024-01-15T17:59:59Z", "2024-01-15T12:00:00Z"],
      ["1d", "2024-01-15T23:59:59.999Z", "2024-01-15T00:00:00Z"],
    ] as Array<[string, string, string]>).map(([bucket, ts, expected]): Case => ({
      name: `bucket=${bucket} groups ${ts} into the epoch-aligned bucket ${expected}`,
      steps: (user) => [
        {
          post: [
            rd({ user_id: user, timestamp: ts, heart_rate: 70 }),
            rd({ user_id: user, timestamp: expected, heart_rate: 80 }), // the bucket's first instant joins it
          ],
        },
        { get: { start: "2024-01-14T00:00:00Z", end: "2024-01-17T00:00:00Z", bucket }, data: [pt(expected, 75)] },
      ],
    })),
    {
      name: "bucket=6h and 1d buckets are aligned to the UTC epoch, not to the query start",
      steps: (user) => [
        {
          post: [
            rd({ user_id: user, timestamp: "2024-01-15T05:00:00Z", heart_rate: 60 }),
            rd({ user_id: user, timestamp: "2024-01-15T07:00:00Z", heart_rate: 70 }),
          ],
        },
        {
          get: { start: "2024-01-15T03:00:00Z", end: "2024-01-15T09:00:00Z", bucket: "6h" },
          data: [pt("2024-01-15T00:00:00Z", 60), pt("2024-01-15T06:00:00Z", 70)],
        },
        {
          get: { start: "2024-01-15T03:00:00Z", end: "2024-01-16T03:00:00Z", bucket: "1d" },
          data: [pt("2024-01-15T00:00:00Z", 65)],
        },
      ],
    },
    {
      name: "without bucket the default is 1 minute",
      steps: (user) => [
        {
          post: [
            rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z", heart_rate: 60 }),
            rd({ user_id: user, timestamp: "2024-01-15T10:00:59Z", heart_rate: 70 }),
            rd({ user_id: user, timestamp: "2024-01-15T10:01:00Z", heart_rate: 80 }),
          ],
        },
        { data: [pt("2024-01-15T10:00:00Z", 65), pt("2024-01-15T10:01:00Z", 80)] },
      ],
    },
    {
      name: "data is sorted ascending regardless of insert order (memtable and runs mixed)",
      steps: (user) => [
        { post: rd({ user_id: user, timestamp: "2024-01-15T10:05:00Z", heart_rate: 65 }) },
        { post: rd({ user_id: user, timestamp: "2024-01-15T10:01:00Z", heart_rate: 61 }) },
        { flush: true },
        { post: rd({ user_id: user, timestamp: "2024-01-15T23:59:00Z", heart_rate: 99 }) },
        { post: rd({ user_id: user, timestamp: "2024-01-15T10:03:00Z", heart_rate: 63 }) },
        { post: rd({ user_id: user, timestamp: "2024-01-15T00:00:00Z", heart_rate: 50 }) },
        {
          data: [
            pt("2024-01-15T00:00:00Z", 50),
            pt("2024-01-15T10:01:00Z", 61),
            pt("2024-01-15T10:03:00Z", 63),
            pt("2024-01-15T10:05:00Z", 65),
            pt("2024-01-15T23:59:00Z", 99),
          ],
        },
      ],
    },
    {
      name: "readings days late and across several days come back in order, one day per 1d bucket",
      steps: (user) => [
        { post: rd({ user_id: user, timestamp: "2024-01-20T08:00:00Z", heart_rate: 90 }) },
        { post: rd({ user_id: user, timestamp: "2024-01-10T08:00:00Z", heart_rate: 50 }) },
        { flush: true },
        { post: rd({ user_id: user, timestamp: "2024-01-15T08:00:00Z", heart_rate: 70 }) },
        {
          get: { start: "2024-01-01T00:00:00Z", end: "2024-02-01T00:00:00Z", bucket: "1d" },
          data: [pt("2024-01-10T00:00:00Z", 50), pt("2024-01-15T00:00:00Z", 70), pt("2024-01-20T00:00:00Z", 90)],
        },
      ],
    },
    {
      name: "404 when the user has no reading at all",
      steps: () => [{ data: 404 }],
    },
    {
      name: "404 when the user's readings are all outside the range",
      steps: (user) => [
        { post: rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z" }) },
        { get: { start: "2024-01-15T10:00:00.001Z", end: "2024-01-15T11:00:00Z" }, data: 404 },
        { get: { start: "2024-01-14T00:00:00Z", end: DAY_START }, data: 404 },
      ],
    },
    {
      name: "user ids are exact: a prefix or a differently cased user id does not see the readings",
      users: () => [uid("Case")],
      steps: (user) => [
        { post: rd({ user_id: user }) },
        { get: { user_id: user.toLowerCase() }, data: 404 },
        { get: { user_id: user.slice(0, -1) }, data: 404 },
      ],
    },
    {
      name: "the same identity sent twice is counted once",
      steps: (user) => [
        { post: rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z", heart_rate: 70 }) },
        { post: rd({ user_id: user, timestamp: "2024-01-15T10:00:30Z", heart_rate: 80 }) },
        { post: rd({ user_id: user, timestamp: "2024-01-15T10:00:30Z", heart_rate: 80 }) },
        { data: [pt("2024-01-15T10:00:00Z", 75)] },
      ],
    },
    {
      name: "the same identity written with an equivalent timestamp spelling (+02:00 vs Z) is one reading",
      steps: (user) => [
        { post: rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z", heart_rate: 70 }) },
        { post: rd({ user_id: user, timestamp: "2024-01-15T12:00:00.000+02:00", heart_rate: 90 }) },
        { post: rd({ user_id: user, timestamp: "2024-01-15T10:00:30Z", heart_rate: 80 }) },
        { data: [pt("2024-01-15T10:00:00Z", 85)] },
      ],
    },
    {
      name: "a re-sent identity with a different heart_rate: the last write wins",
      steps: (user) => [
        { post: rd({ user_id: user, heart_rate: 70 }) },
        { post: rd({ user_id: user, heart_rate: 90 }) },
        { data: [pt("2024-01-15T10:00:00Z", 90)] },
        { post: rd({ user_id: user, heart_rate: 65 }) },
        { data: [pt("2024-01-15T10:00:00Z", 65)] },
      ],
    },
    {
      name: "the same timestamp from two devices is two readings (identity includes device_id)",
      steps: (user) => [
        { post: rd({ user_id: user, device_id: "device_a", heart_rate: 70 }) },
        { post: rd({ user_id: user, device_id: "device_b", heart_rate: 90 }) },
        { get: { device_id: "device_a" }, data: [pt("2024-01-15T10:00:00Z", 70, "device_a")] },
        { get: { device_id: "device_b" }, data: [pt("2024-01-15T10:00:00Z", 90, "device_b")] },
      ],
    },
    {
      name: "the same device and timestamp for two users is two readings (identity includes user_id)",
      users: () => [uid(), uid()],
      steps: (u1, u2) => [
        { post: rd({ user_id: u1, heart_rate: 70 }) },
        { post: rd({ user_id: u2, heart_rate: 90 }) },
        { get: { user_id: u1 }, data: [pt("2024-01-15T10:00:00Z", 70)] },
        { get: { user_id: u2 }, data: [pt("2024-01-15T10:00:00Z", 90)] },
      ],
    },
    {
      name: "ids with punctuation work as query parameters (URL-encoded)",
      users: () => [`${uid()}@x.y:z_-`],
      steps: (user) => [
        { post: rd({ user_id: user, device_id: "dev:1@home.net" }) },
        { get: { device_id: "dev:1@home.net" }, data: [pt("2024-01-15T10:00:00Z", 75, "dev:1@home.net")] },
      ],
    },
  ];

  // Every case: run its steps against one app; each GET answers 200 of the contract's shape
  // (`query()` checks user_id, count = data.length, the point keys, the timestamp form and the order)
  // with exactly the expected data, or 404 problem JSON.
  for (const c of cases) {
    it(c.name, async () => {
      const t = app();
      const [user, ...others] = c.users?.() ?? [uid()];
      for (const step of c.steps(user, ...others)) {
        if ("post" in step) await postOk(t, step.post);
        else if ("flush" in step) await t.engine.flush();
        else {
          const params = { user_id: user, start: DAY_START, end: DAY_END, ...step.get };
          if (step.data === 404) await expectNoData(t, params);
          else assert.deepEqual((await query(t, params)).data, step.data);
        }
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe("GET query validation", () => {
  const app = withApp();
  const U = "valid_user";
  const base = { user_id: U, start: DAY_START, end: DAY_END };
  const without = (k: keyof typeof base) => {
    const p: Record<string, string> = { ...base };
    delete p[k];
    return p;
  };

  // [name, params, the paths the errors must name]
  const bad: Array<[string, Record<string, string>, string[]]> = [
    ["missing user_id", without("user_id"), ["user_id"]],
    ["missing start", without("start"), ["start"]],
    ["missing end", without("end"), ["end"]],
    ["no parameters at all", {}, ["user_id", "start", "end"]],
    ["empty user_id", { ...base, user_id: "" }, ["user_id"]],
    ["user_id with a space", { ...base, user_id: "a b" }, ["user_id"]],
    ["user_id with a quote", { ...base, user_id: "a'b" }, ["user_id"]],
    ["user_id of 129 characters", { ...base, user_id: "a".repeat(129) }, ["user_id"]],
    ["start equal to end", { ...base, end: DAY_START }, ["end"]],
    ["start after end", { ...base, start: DAY_END, end: DAY_START }, ["end"]],
    ["start a date only", { ...base, start: "2024-01-15" }, ["start"]],
    ["end an impossible date", { ...base, end: "2024-02-30T00:00:00Z" }, ["end"]],
    ["start a number", { ...base, start: "1705312800000" }, ["start"]],
    ["start in 1969", { ...base, start: "1969-12-31T00:00:00Z" }, ["start"]],
    ["bucket 2m", { ...base, bucket: "2m" }, ["bucket"]],
    ["bucket 1M", { ...base, bucket: "1M" }, ["bucket"]],
    ["bucket 60s", { ...base, bucket: "60s" }, ["bucket"]],
    ["an empty bucket", { ...base, bucket: "" }, ["bucket"]],
    ["empty device_id", { ...base, device_id: "" }, ["device_id"]],
    ["device_id with a slash", { ...base, device_id: "a/b" }, ["device_id"]],
    ["device_id with unicode", { ...base, device_id: "gerät" }, ["device_id"]],
    [
      "100,001 buckets of 10s",
      {
        user_id: U,
        start: "2024-01-15T00:00:00Z",
        end: new Date(Date.UTC(2024, 0, 15) + 100_001 * 10_000).toISOString(),
        bucket: "10s",
      },
      ["bucket"],
    ],
    [
      "100,001 buckets of 1m (default)",
      {
        user_id: U,
        start: "2024-01-15T00:00:00Z",
        end: new Date(Date.UTC(2024, 0, 15) + 100_001 * 60_000).toISOString(),
      },
      ["bucket"],
    ],
  ];
  for (const [name, params, paths] of bad) {
    it(`GET with ${name} answers 400 naming ${paths.join(", ")}`, async () => {
      await expectValidation(await get(app(), params), paths);
    });
  }

  it("GET with exactly 100,000 buckets is allowed (404 without data, not 400)", async () => {
    const end = new Date(Date.UTC(2024, 0, 15) + 100_000 * 10_000).toISOString();
    await expectNoData(app(), { user_id: uid(), start: DAY_START, end, bucket: "10s" });
  });

  it("GET takes an unencoded + in an offset (decoded by form rules as a space) as the + it was", async () => {
    const res = await app().app.request(`${ROUTE}?user_id=${U}&start=2024-01-15T10:00:00+02:00&end=${DAY_END}`);
    assert.notEqual(res.status, 400, await res.clone().text());
    assert.ok(res.status === 200 || res.status === 404);
  });

  it("GET still rejects a space that cannot be an offset sign", async () => {
    const res = await app().app.request(`${ROUTE}?user_id=${U}&start=2024-01-15%2010:00:00Z&end=${DAY_END}`);
    await expectValidation(res, ["start"]);
  });

  it("GET validation happens before lookup: bad parameters answer 400 even for a user with data", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user }));
    await expectValidation(await get(t, { user_id: user, start: DAY_END, end: DAY_START }), ["end"]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("last write wins across memtable and runs", () => {
  const app = withApp();

  it("write v1, flush to a run, write v2 (memtable): v2 wins", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, heart_rate: 60 }));
    await t.engine.flush();
    await postOk(t, rd({ user_id: user, heart_rate: 90 }));
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 90,
      device_id: "device_a",
    }]);
  });

  it("write v1, flush, write v2, flush (two runs of one day): v2; then v3 unflushed: v3; flushed again: v3", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, heart_rate: 60 }));
    await t.engine.flush();
    await postOk(t, rd({ user_id: user, heart_rate: 90 }));
    await t.engine.flush();
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 90,
      device_id: "device_a",
    }]);
    await postOk(t, rd({ user_id: user, heart_rate: 120 }));
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 120,
      device_id: "device_a",
    }]);
    await t.engine.flush();
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 120,
      device_id: "device_a",
    }]);
  });

  it("a duplicate living in a run and in the memtable is counted once in the mean", async () => {
    const t = app();
    const user = uid();
    await postOk(t, [
      rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z", heart_rate: 70 }),
      rd({ user_id: user, timestamp: "2024-01-15T10:00:30Z", heart_rate: 80 }),
    ]);
    await t.engine.flush();
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T10:00:30Z", heart_rate: 80 }));
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 75,
      device_id: "device_a",
    }]);
    await t.engine.flush();
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 75,
      device_id: "device_a",
    }]);
  });

  it("last write wins with device_id filtering and with priority, across runs", async () => {
    const t = app();
    const user = uid();
    await postOk(t, [
      rd({ user_id: user, device_id: "device_a", heart_rate: 60 }),
      rd({ user_id: user, device_id: "device_b", heart_rate: 61 }),
    ]);
    await t.engine.flush();
    await postOk(t, [rd({ user_id: user, device_id: "device_b", heart_rate: 100 })]);
    await t.engine.flush();
    await postOk(t, [rd({ user_id: user, device_id: "device_a", heart_rate: 110 })]);
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 110,
      device_id: "device_a",
    }]);
    assert.deepEqual(await day(t, user, { device_id: "device_b" }), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 100,
      device_id: "device_b",
    }]);
  });

  it("a rejected batch after a flush leaves the flushed value in place", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, heart_rate: 60 }));
    await t.engine.flush();
    await expectValidation(
      await post(t, [rd({ user_id: user, heart_rate: 99 }), rd({ user_id: user, heart_rate: 221 })]),
      ["/1/heart_rate"],
    );
    assert.deepEqual(await day(t, user), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 60,
      device_id: "device_a",
    }]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("read-your-writes through the result cache", () => {
  const app = withApp();
  const range = (user: string) => ({ user_id: user, start: "2024-01-15T10:00:00Z", end: "2024-01-15T11:00:00Z" });

  it("GET (fills the cache), GET again is a cache hit with the same answer", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user }));
    const h0 = t.engine.cache.hits;
    const m0 = t.engine.cache.misses;
    const a1 = await query(t, range(user));
    assert.equal(t.engine.cache.misses, m0 + 1);
    const a2 = await query(t, range(user));
    assert.equal(t.engine.cache.hits, h0 + 1);
    assert.deepEqual(a2, a1);
  });

  it("GET, POST a reading inside the range, GET again: the answer reflects it", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z", heart_rate: 60 }));
    await query(t, range(user));
    await query(t, range(user)); // now surely cached
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T10:30:00Z", heart_rate: 80 }));
    assert.deepEqual((await query(t, range(user))).data, [
      { timestamp: "2024-01-15T10:00:00Z", heart_rate: 60, device_id: "device_a" },
      { timestamp: "2024-01-15T10:30:00Z", heart_rate: 80, device_id: "device_a" },
    ]);
  });

  it("GET, overwrite an identity inside the range, GET again: the new value is answered", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, heart_rate: 60 }));
    await query(t, range(user));
    await postOk(t, rd({ user_id: user, heart_rate: 61 }));
    assert.deepEqual((await query(t, range(user))).data, [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 61,
      device_id: "device_a",
    }]);
  });

  it("a cached 404 becomes 200 after a POST inside the range", async () => {
    const t = app();
    const user = uid();
    await expectNoData(t, range(user));
    await expectNoData(t, range(user));
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T10:59:59.999Z" }));
    assert.deepEqual((await query(t, range(user))).data, [{
      timestamp: "2024-01-15T10:59:00Z",
      heart_rate: 75,
      device_id: "device_a",
    }]);
  });

  it("a reading at the first instant of a cached range is reflected", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T10:30:00Z", heart_rate: 60 }));
    await query(t, range(user));
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T10:00:00Z", heart_rate: 90 }));
    assert.deepEqual((await query(t, range(user))).data.map((p) => p.heart_rate), [90, 60]);
  });

  it("a cached answer with device_id reflects a later POST for that device", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, device_id: "device_b", heart_rate: 60 }));
    const p = { ...range(user), device_id: "device_b" };
    await query(t, p);
    await postOk(t, rd({ user_id: user, device_id: "device_b", timestamp: "2024-01-15T10:00:30Z", heart_rate: 80 }));
    assert.deepEqual((await query(t, p)).data, [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 70,
      device_id: "device_b",
    }]);
  });

  it("a cached answer reflects a higher-priority device arriving later", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, device_id: "device_b", heart_rate: 80 }));
    assert.equal((await query(t, range(user))).data[0].device_id, "device_b");
    await postOk(t, rd({ user_id: user, device_id: "device_a", heart_rate: 75 }));
    assert.deepEqual((await query(t, range(user))).data, [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 75,
      device_id: "device_a",
    }]);
  });

  it("a batch spanning the cached range (one reading inside) is reflected", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, heart_rate: 60 }));
    await query(t, range(user));
    await postOk(t, [
      rd({ user_id: user, timestamp: "2024-01-15T09:00:00Z", heart_rate: 100 }),
      rd({ user_id: user, timestamp: "2024-01-15T10:20:00Z", heart_rate: 70 }),
      rd({ user_id: user, timestamp: "2024-01-15T12:00:00Z", heart_rate: 100 }),
    ]);
    assert.deepEqual((await query(t, range(user))).data.map((p) => p.heart_rate), [60, 70]);
  });

  it("POST for another user does not change the answer (and it stays cached)", async () => {
    const t = app();
    const user = uid();
    const other = uid();
    await postOk(t, rd({ user_id: user, heart_rate: 60 }));
    const a1 = await query(t, range(user));
    await postOk(t, rd({ user_id: other, heart_rate: 100 }));
    const h = t.engine.cache.hits;
    assert.deepEqual(await query(t, range(user)), a1);
    assert.equal(t.engine.cache.hits, h + 1, "a write of another user keeps this user's answer cached");
  });

  it("POST outside the range does not change the answer (and it stays cached)", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, heart_rate: 60 }));
    const a1 = await query(t, range(user));
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T11:00:00Z", heart_rate: 100 })); // exactly at end
    await postOk(t, rd({ user_id: user, timestamp: "2024-01-15T09:59:59.999Z", heart_rate: 100 }));
    const h = t.engine.cache.hits;
    assert.deepEqual(await query(t, range(user)), a1);
    assert.equal(t.engine.cache.hits, h + 1, "a write outside the range keeps the answer cached");
  });

  it("a flush between two GETs does not change the answer", async () => {
    const t = app();
    const user = uid();
    await postOk(t, [
      rd({ user_id: user, heart_rate: 60 }),
      rd({ user_id: user, device_id: "device_b", timestamp: "2024-01-15T10:01:00Z", heart_rate: 70 }),
    ]);
    const a1 = await query(t, range(user));
    await t.engine.flush();
    assert.deepEqual(await query(t, range(user)), a1);
    await postOk(t, rd({ user_id: user, heart_rate: 62 }));
    assert.deepEqual((await query(t, range(user))).data[0], {
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 62,
      device_id: "device_a",
    });
  });

  it("a rejected POST does not invalidate or change a cached answer", async () => {
    const t = app();
    const user = uid();
    await postOk(t, rd({ user_id: user, heart_rate: 60 }));
    const a1 = await query(t, range(user));
    await expectValidation(
      await post(t, [rd({ user_id: user, heart_rate: 99 }), rd({ user_id: user, heart_rate: "x" })]),
      ["/1/heart_rate"],
    );
    assert.deepEqual(await query(t, range(user)), a1);
  });
});

// ---------------------------------------------------------------------------------------------

describe("operations endpoints", () => {
  const app = withApp();

  it('GET /health answers 200 {"status":"ok"}', async () => {
    const res = await app().app.request("/health");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await res.json(), { status: "ok" });
  });

  /** The value of an unlabelled sample in Prometheus text. */
  function sample(text: string, name: string): number {
    const line = text.split("\n").find((l) => l.startsWith(name + " "));
    assert.ok(line, `${name} is exported`);
    return Number(line.split(" ")[1]);
  }

  it("GET /metrics answers 200 Prometheus text with pulsedb_readings_accepted_total that counts accepted readings", async () => {
    const t = app();
    const r1 = await t.app.request("/metrics");
    assert.equal(r1.status, 200);
    assert.match(r1.headers.get("content-type") ?? "", /^text\/plain/);
    const before = await r1.text();
    assert.match(before, /pulsedb_readings_accepted_total/);
    const n0 = sample(before, "pulsedb_readings_accepted_total");
    const user = uid();
    await postOk(t, [0, 1, 2].map((i) => rd({ user_id: user, timestamp: `2024-01-15T10:0${i}:00Z` })));
    await expectValidation(await post(t, rd({ user_id: user, heart_rate: 10 })), ["/heart_rate"]);
    const after = await (await t.app.request("/metrics")).text();
    assert.equal(sample(after, "pulsedb_readings_accepted_total"), n0 + 3);
  });

  it("GET /metrics exports rejections, cache hits/misses, memtable rows and query latency", async () => {
    const text = await (await app().app.request("/metrics")).text();
    for (
      const name of [
        "pulsedb_readings_rejected_total",
        "pulsedb_cache_hits_total",
        "pulsedb_cache_misses_total",
        "pulsedb_memtable_rows",
        "pulsedb_query_duration_seconds",
        "pulsedb_wal_sync_duration_seconds",
        "pulsedb_flushes_total",
      ]
    ) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, "m"), `${name} exported`);
    }
  });

  it("the server keeps serving after a barrage of bad input (no 5xx, health still ok)", async () => {
    const t = app();
    const bodies = ["{", "[]", "null", '"x"', "[1,2,3]", JSON.stringify(rd({ heart_rate: -1 })), "[".repeat(1000)];
    for (const b of bodies) {
      const res = await post(t, b, { raw: true });
      assert.ok(res.status >= 400 && res.status < 500, `${b.slice(0, 20)} -> ${res.status}`);
    }
    const user = uid();
    await postOk(t, rd({ user_id: user }));
    assert.equal((await day(t, user)).length, 1);
    assert.equal((await t.app.request("/health")).status, 200);
  });
});
