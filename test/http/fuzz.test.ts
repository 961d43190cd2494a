/**
 * Hostile input: property-based requests (fast-check) must never get a 5xx, every error must be
 * problem JSON, and the server must keep serving correct answers afterwards.
 *
 * FUZZ_RUNS (default 1500 per property) sets the count: `FUZZ_RUNS=10000 node --import tsx --test test/http/fuzz.test.ts`.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { testApp } from "../support/harness.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 1500);
const ROUTE = "/metrics/heart-rate";

type App = Awaited<ReturnType<typeof testApp>>;

async function check(res: Response): Promise<void> {
  assert.ok(res.status < 500, `got ${res.status}: ${await res.clone().text()}`);
  if (res.status >= 400) {
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    const p = await res.json();
    assert.equal(p.status, res.status);
    assert.equal(typeof p.title, "string");
    assert.equal(typeof p.detail, "string");
    assert.equal(typeof p.type, "string");
  }
}

/** Strings that stress parsers: odd unicode, control characters, long runs, near-valid values. */
const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 50 }),
  fc.string({ unit: "binary", maxLength: 50 }),
  fc.constantFrom(
    "",
    " ",
    "\u0000",
    "\ud800",
    "😀",
    "a".repeat(129),
    "a".repeat(100_000),
    "2024-01-15T10:00:00Z",
    "2024-02-30T10:00:00Z",
    "1e400",
    "NaN",
    "__proto__",
    "constructor",
    "null",
    "device_a",
  ),
);
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    nasty,
    fc.double(),
    fc.integer(),
    fc.constantFrom(30, 220, 29.999, 220.0001, -0, 1e308, Number.MAX_SAFE_INTEGER, true, false, null),
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(fc.oneof(nasty, fc.constantFrom("user_id", "device_id", "timestamp", "heart_rate")), tie("v"), {
      maxKeys: 5,
    }),
  ),
})).v;
/** Readings that are nearly valid: one field at a time goes wrong. */
const nearReading = fc.record({
  user_id: fc.oneof(fc.constantFrom("u1", "user_123"), nasty, value),
  device_id: fc.oneof(fc.constantFrom("device_a", "device_b", "x"), nasty, value),
  timestamp: fc.oneof(
    fc.date({ min: new Date(0), max: new Date(253402300799999), noInvalidDate: true }).map((d) => d.toISOString()),
    nasty,
    value,
  ),
  heart_rate: fc.oneof(fc.double({ min: 25, max: 225 }), value),
}, { requiredKeys: [] });

describe("Hostile input", () => {
  let t: App;
  before(async () => {
    t = await testApp({ maxBodyBytes: 256 * 1024 });
  });
  after(() => t.close());

  it("POST bodies of random JSON never get a 5xx and errors are problem JSON", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(value, nearReading, fc.array(nearReading, { maxLength: 20 })), async (body) => {
        let text: string;
        try {
          text = JSON.stringify(body) ?? "null";
        } catch {
          return; // not representable as JSON (e.g. BigInt): nothing to send
        }
        await check(
          await t.app.request(ROUTE, { method: "POST", body: text, headers: { "content-type": "application/json" } }),
        );
      }),
      { numRuns: RUNS },
    );
  });

  it("POST bodies of random bytes, deep nesting and odd content types never get a 5xx", async () => {
    const weird = fc.oneof(
      fc.uint8Array({ maxLength: 2000 }).map((b) => ({
        body: new Blob([b]) as Blob | string,
        type: "application/json",
      })),
      fc.integer({ min: 1, max: 100_000 }).map((n) => ({
        body: "[".repeat(n) + "]".repeat(n),
        type: "application/json",
      })),
      fc.integer({ min: 1, max: 10_000 }).map((n) => ({
        body: '{"a":'.repeat(n) + "1" + "}".repeat(n),
        type: "application/json",
      })),
      fc.tuple(
        nasty,
        fc.constantFrom(
          "text/plain",
          "application/x-www-form-urlencoded",
          "multipart/form-data",
          "application/vnd.apache.arrow.stream",
          "",
          "application/json; charset=latin1",
        ),
      ).map(([body, type]) => ({ body: body as Blob | string, type })),
    );
    await fc.assert(
      fc.asyncProperty(weird, async ({ body, type }) => {
        const headers: Record<string, string> = type ? { "content-type": type } : {};
        await check(await t.app.request(ROUTE, { method: "POST", body, headers }));
      }),
      { numRuns: Math.ceil(RUNS / 2) },
    );
  });

  it("GET query strings of random parameters never get a 5xx", async () => {
    const param = fc.oneof(
      nasty,
      fc.date({ min: new Date(-1e13), max: new Date(3e14), noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom("10s", "1m", "1d", "2m", "u1"),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.constantFrom("user_id", "device_id", "start", "end", "bucket", "x", "user_id[]"), param, {
          maxKeys: 6,
        }),
        async (params) => {
          const qs = new URLSearchParams(params as Record<string, string>).toString();
          await check(await t.app.request(`${ROUTE}?${qs}`));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("keeps serving correct answers after the barrage", async () => {
    const ok = await t.app.request(ROUTE, {
      method: "POST",
      body: JSON.stringify({
        user_id: "after_fuzz",
        device_id: "device_a",
        timestamp: "2024-01-15T10:00:00Z",
        heart_rate: 75,
      }),
      headers: { "content-type": "application/json" },
    });
    assert.equal(ok.status, 200);
    const res = await t.app.request(`${ROUTE}?user_id=after_fuzz&start=2024-01-15T10:00:00Z&end=2024-01-15T11:00:00Z`);
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).data, [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 75,
      device_id: "device_a",
    }]);
    assert.equal((await t.app.request("/health")).status, 200);
  });
});
