/**
 * `DELETE /metrics/heart-rate` (right to erasure), black-box through `app.request(...)`: validation
 * (table-driven), the answer, read-your-deletes (cached or not), idempotence, and that readings
 * accepted after the DELETE are kept.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { testApp } from "../support/harness.ts";

type T = Awaited<ReturnType<typeof testApp>>;

const ROUTE = "/metrics/heart-rate";
const DAY_START = "2024-01-15T00:00:00Z";
const DAY_END = "2024-01-16T00:00:00Z";

let userSeq = 0;
function uid(): string {
  return `del${++userSeq}`;
}

function del(t: T, params: Record<string, string>): Promise<Response> {
  return Promise.resolve(t.app.request(`${ROUTE}?${new URLSearchParams(params)}`, { method: "DELETE" }));
}

async function post(t: T, body: unknown): Promise<void> {
  const res = await t.app.request(ROUTE, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
  assert.equal(res.status, 200, await res.text());
}

/** The answer's data (empty for a 404). */
async function data(t: T, params: Record<string, string>): Promise<Array<Record<string, unknown>>> {
  const res = await t.app.request(`${ROUTE}?${new URLSearchParams({ start: DAY_START, end: DAY_END, ...params })}`);
  if (res.status === 404) return [];
  assert.equal(res.status, 200);
  return ((await res.json()) as { data: Array<Record<string, unknown>> }).data;
}

function rd(user: string, device: string, time: string, hr: number) {
  return { user_id: user, device_id: device, timestamp: `2024-01-15T${time}Z`, heart_rate: hr };
}

describe("DELETE /metrics/heart-rate validation", () => {
  let t: T;
  before(async () => (t = await testApp()));
  after(() => t.close());

  const bad: Array<[string, Record<string, string>, string[]]> = [
    ["no user_id", {}, ["user_id"]],
    ["an empty user_id", { user_id: "" }, ["user_id"]],
    ["a user_id with a space", { user_id: "a b" }, ["user_id"]],
    ["a user_id of 129 characters", { user_id: "u".repeat(129) }, ["user_id"]],
    ["a bad device_id", { user_id: "u", device_id: "dev/1" }, ["device_id"]],
    ["an empty device_id", { user_id: "u", device_id: "" }, ["device_id"]],
    ["start without end", { user_id: "u", start: DAY_START }, ["end"]],
    ["end without start", { user_id: "u", end: DAY_END }, ["start"]],
    ["start after end", { user_id: "u", start: DAY_END, end: DAY_START }, ["end"]],
    ["start equal to end", { user_id: "u", start: DAY_START, end: DAY_START }, ["end"]],
    ["an impossible date", { user_id: "u", start: "2024-02-30T00:00:00Z", end: DAY_END }, ["start"]],
    ["a date-only start", { user_id: "u", start: "2024-01-15", end: DAY_END }, ["start"]],
    ["a numeric end", { user_id: "u", start: DAY_START, end: "1705363200000" }, ["end"]],
    ["a year before 1970", { user_id: "u", start: "1969-12-31T00:00:00Z", end: DAY_END }, ["start"]],
  ];
  for (const [name, params, paths] of bad) {
    it(`answers 400 problem JSON for ${name}, naming ${paths.join(", ")}`, async () => {
      const res = await del(t, params);
      assert.equal(res.status, 400);
      assert.match(res.headers.get("content-type") ?? "", /application\/problem\+json/);
      const p = (await res.json()) as { status: number; errors: Array<{ path: string }> };
      assert.equal(p.status, 400);
      for (const path of paths) assert.ok(p.errors.some((e) => e.path === path), JSON.stringify(p.errors));
    });
  }

  const good: Array<[string, Record<string, string>]> = [
    ["a user only (all time)", { user_id: "u" }],
    ["a user and a device", { user_id: "u", device_id: "device_a" }],
    ["a user and a range", { user_id: "u", start: DAY_START, end: DAY_END }],
    ["a user, a device and a range with offsets", {
      user_id: "u",
      device_id: "device_b",
      start: "2024-01-15T10:00:00+02:00",
      end: "2024-01-15T10:00:00.0001+02:00",
    }],
  ];
  for (const [name, params] of good) {
    it(`answers 200 {"status":"deleted"} for ${name}`, async () => {
      const res = await del(t, params);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /application\/json/);
      assert.deepEqual(await res.json(), { status: "deleted" });
    });
  }
});

describe("DELETE /metrics/heart-rate semantics", () => {
  let t: T;
  before(async () => (t = await testApp()));
  after(() => t.close());

  /** Each case: readings, a DELETE, and what the unfiltered query answers afterwards. */
  const cases: Array<{
    name: string;
    del: (u: string) => Record<string, string>;
    expect: Array<[string, number, string]>;
  }> = [
    { name: "all time erases every device", del: (u) => ({ user_id: u }), expect: [] },
    {
      name: "one device leaves the other device's readings (which then answer)",
      del: (u) => ({ user_id: u, device_id: "device_a" }),
      expect: [["2024-01-15T10:00:00Z", 90, "device_b"], ["2024-01-15T11:00:00Z", 91, "device_b"]],
    },
    {
      name: "a range erases only inside [start, end)",
      del: (u) => ({ user_id: u, start: "2024-01-15T10:00:00Z", end: "2024-01-15T11:00:00Z" }),
      expect: [["2024-01-15T11:00:00Z", 71, "device_a"]],
    },
    {
      name: "a range ending exactly at a reading keeps it (half-open)",
      del: (u) => ({ user_id: u, start: "2024-01-15T09:00:00Z", end: "2024-01-15T10:00:00Z" }),
      expect: [["2024-01-15T10:00:00Z", 70, "device_a"], ["2024-01-15T11:00:00Z", 71, "device_a"]],
    },
    {
      name: "device and range together",
      del: (u) => ({ user_id: u, device_id: "device_a", start: "2024-01-15T11:00:00Z", end: "2024-01-15T12:00:00Z" }),
      expect: [["2024-01-15T10:00:00Z", 70, "device_a"], ["2024-01-15T11:00:00Z", 91, "device_b"]],
    },
  ];
  for (const c of cases) {
    it(`${c.name}, other users untouched, cached answers dropped`, async () => {
      const u = uid();
      const other = uid();
      await post(t, [
        rd(u, "device_a", "10:00:00", 70),
        rd(u, "device_b", "10:00:00", 90),
        rd(u, "device_a", "11:00:00", 71),
        rd(u, "device_b", "11:00:00", 91),
        rd(other, "device_a", "10:00:00", 60),
      ]);
      // Warm the cache, then delete: the cached answer must not be served.
      assert.equal((await data(t, { user_id: u })).length, 2);
      assert.equal((await data(t, { user_id: u })).length, 2);
      const res = await del(t, c.del(u));
      assert.equal(res.status, 200);
      const got = (await data(t, { user_id: u })).map((p) => [p.timestamp, p.heart_rate, p.device_id]);
      assert.deepEqual(got, c.expect.map(([time, hr, d]) => [time.slice(0, 16) + ":00Z", hr, d]));
      assert.deepEqual(await data(t, { user_id: other }), [
        { timestamp: "2024-01-15T10:00:00Z", heart_rate: 60, device_id: "device_a" },
      ]);
    });
  }

  it("is described in /openapi.json, and /metrics reports pending erasures and the oldest one's age", async () => {
    const doc = (await (await t.app.request("/openapi.json")).json()) as {
      paths: Record<string, Record<string, { parameters: Array<{ name: string; required: boolean }> }>>;
    };
    const op = doc.paths["/metrics/heart-rate"].delete;
    assert.deepEqual(op.parameters.map((p) => [p.name, p.required]), [
      ["user_id", true],
      ["device_id", false],
      ["start", false],
      ["end", false],
    ]);
    assert.equal((await del(t, { user_id: uid() })).status, 200);
    const text = await (await t.app.request("/metrics")).text();
    assert.match(text, /^pulsedb_erasures_pending [1-9]\d*$/m);
    assert.match(text, /^pulsedb_erasure_oldest_pending_age_seconds [0-9.e+-]+$/m);
  });

  it("is idempotent: deleting again, or deleting a user who never existed, answers 200", async () => {
    const u = uid();
    await post(t, rd(u, "device_a", "10:00:00", 70));
    for (let i = 0; i < 2; i++) assert.equal((await del(t, { user_id: u })).status, 200);
    assert.equal((await del(t, { user_id: "nobody_ever" })).status, 200);
    assert.deepEqual(await data(t, { user_id: u }), []);
  });

  it("keeps a reading accepted after the DELETE, even one that matches it", async () => {
    const u = uid();
    await post(t, rd(u, "device_a", "10:00:00", 70));
    assert.equal((await del(t, { user_id: u })).status, 200);
    await post(t, rd(u, "device_a", "10:00:00", 80));
    assert.deepEqual(await data(t, { user_id: u }), [
      { timestamp: "2024-01-15T10:00:00Z", heart_rate: 80, device_id: "device_a" },
    ]);
    // a device-filtered query agrees
    assert.deepEqual(await data(t, { user_id: u, device_id: "device_a" }), [
      { timestamp: "2024-01-15T10:00:00Z", heart_rate: 80, device_id: "device_a" },
    ]);
  });

  it("holds once the readings are flushed to runs (masking, not only memory)", async () => {
    const u = uid();
    await post(t, [rd(u, "device_a", "10:00:00", 70), rd(u, "device_a", "12:00:00", 72)]);
    await t.engine.flush();
    assert.equal((await del(t, { user_id: u, start: "2024-01-15T11:00:00Z", end: DAY_END })).status, 200);
    assert.deepEqual(await data(t, { user_id: u }), [
      { timestamp: "2024-01-15T10:00:00Z", heart_rate: 70, device_id: "device_a" },
    ]);
  });
});
