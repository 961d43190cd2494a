/**
 * Retention (PULSE_RETENTION) with an injected clock (no sleeps): queries never answer a reading
 * older than the horizon (from the moment it expires, cached or not), POSTs of such readings are
 * 400 naming each (all or nothing, JSON and Arrow), and whole expired days are dropped from the
 * manifest and the disk while a partly expired day stays.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as arrow from "apache-arrow";
import { openPulseDb, type PulseDb } from "../../src/pulsedb.ts";
import { testConfig } from "../../src/ops/config.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { createApp } from "../../src/http/app.ts";
import { ExpiredError } from "../../src/engine.ts";
import { expiredIndices, expiredRuns, retentionHorizon } from "../../src/storage/retention.ts";
import { DAY0, removeDir, tempDir } from "../support/harness.ts";
import { loadConfig, parseDuration } from "../../src/ops/config.ts";

const H = 3_600_000;
const D = 86_400_000;

describe("Retention configuration and rules", () => {
  const durations: Array<[string, number | undefined]> = [
    ["30d", 30 * D],
    ["365d", 365 * D],
    ["12h", 12 * H],
    ["90m", 90 * 60_000],
    ["45s", 45_000],
    ["0d", undefined],
    ["30", undefined],
    ["d", undefined],
    ["-1d", undefined],
    ["1.5d", undefined],
    ["30w", undefined],
  ];
  for (const [text, ms] of durations) {
    it(`parseDuration(${JSON.stringify(text)}) is ${ms}`, () => assert.equal(parseDuration(text), ms));
  }

  it("PULSE_RETENTION defaults to unlimited; a bad value stops start-up naming the variable", () => {
    assert.equal(loadConfig({}).retentionMs, undefined);
    assert.equal(loadConfig({ PULSE_RETENTION: "unlimited" }).retentionMs, undefined);
    assert.equal(loadConfig({ PULSE_RETENTION: "30d" }).retentionMs, 30 * D);
    assert.throws(() => loadConfig({ PULSE_RETENTION: "30 days" }), /PULSE_RETENTION/);
    assert.equal(loadConfig({}).erasureDeadlineMs, 24 * H);
    assert.equal(loadConfig({ PULSE_ERASURE_DEADLINE: "2h" }).erasureDeadlineMs, 2 * H);
    assert.throws(() => loadConfig({ PULSE_ERASURE_DEADLINE: "soon" }), /PULSE_ERASURE_DEADLINE/);
  });

  it("horizon, expired readings and expired runs", () => {
    assert.equal(retentionHorizon(DAY0 + 30 * D, 30 * D), DAY0);
    assert.equal(retentionHorizon(DAY0, undefined), -Infinity);
    const r = (ts: number) => ({ userId: "u", deviceId: "d", ts, heartRate: 70 });
    assert.deepEqual(expiredIndices([r(DAY0 - 1), r(DAY0), r(DAY0 - D)], DAY0), [0, 2]);
    const run = (day: string) =>
      ({ id: 1, day, level: 0, file: "f", rows: 1, minTs: 0, maxTs: 0, minSeq: 1, maxSeq: 1, bytes: 1 }) as const;
    // 2024-01-14 ends exactly at the horizon: expired whole. 2024-01-15 is only partly expired.
    assert.deepEqual(expiredRuns([run("2024-01-14"), run("2024-01-15")], DAY0 + H).map((x) => x.day), [
      "2024-01-14",
    ]);
    assert.deepEqual(expiredRuns([run("2024-01-14")], -Infinity), []);
  });
});

describe("Retention in the engine and over HTTP (injected clock)", () => {
  let dir: string;
  let db: PulseDb;
  let clock = DAY0 + 2 * D + 12 * H; // 2024-01-17T12:00Z; retention 2d -> horizon 2024-01-15T12:00Z
  let app: ReturnType<typeof createApp>;
  before(async () => {
    dir = tempDir();
    db = await openPulseDb(
      testConfig({ dataDir: dir, compaction: false, retentionMs: 2 * D }),
      silentLogger,
      undefined,
      { now: () => clock },
    );
    app = createApp({ engine: db.engine, config: db.engine.config, log: silentLogger });
  });
  after(async () => {
    await db.engine.close();
    removeDir(dir);
  });

  const get = async (start: string, end: string) => {
    const res = await app.request(`/metrics/heart-rate?user_id=u1&start=${start}&end=${end}&bucket=1h`);
    if (res.status === 404) return [];
    assert.equal(res.status, 200);
    return ((await res.json()) as { data: Array<{ timestamp: string }> }).data.map((p) => p.timestamp);
  };

  it("refuses a POST holding an expired reading with 400 naming each, storing nothing (JSON batch)", async () => {
    const body = [
      { user_id: "u1", device_id: "device_a", timestamp: "2024-01-15T11:00:00Z", heart_rate: 70 },
      { user_id: "u1", device_id: "device_a", timestamp: "2024-01-16T11:00:00Z", heart_rate: 71 },
      { user_id: "u1", device_id: "device_a", timestamp: "2024-01-15T11:59:59.999Z", heart_rate: 72 },
    ];
    const res = await app.request("/metrics/heart-rate", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
    assert.equal(res.status, 400);
    const p = (await res.json()) as { errors: Array<{ path: string; message: string }> };
    assert.deepEqual(p.errors.map((e) => e.path), ["/0/timestamp", "/2/timestamp"]);
    assert.match(p.errors[0].message, /retention horizon \(2024-01-15T12:00:00.000Z\)/);
    assert.deepEqual(await get("2024-01-15T00:00:00Z", "2024-01-18T00:00:00Z"), []);
  });

  it("refuses a single expired reading and an Arrow batch the same way", async () => {
    const one = await app.request("/metrics/heart-rate", {
      method: "POST",
      body: JSON.stringify({ user_id: "u1", device_id: "device_a", timestamp: "2020-01-01T00:00:00Z", heart_rate: 70 }),
      headers: { "content-type": "application/json" },
    });
    assert.equal(one.status, 400);
    assert.deepEqual(((await one.json()) as { errors: Array<{ path: string }> }).errors.map((e) => e.path), [
      "/timestamp",
    ]);
    const table = arrow.tableFromArrays({
      user_id: ["u1", "u1"],
      device_id: ["device_a", "device_a"],
      timestamp: Float64Array.from([DAY0 + 2 * D, DAY0 - 5 * D]),
      heart_rate: Float64Array.from([70, 71]),
    });
    const res = await app.request("/metrics/heart-rate", {
      method: "POST",
      body: new Blob([arrow.tableToIPC(table, "stream") as Uint8Array<ArrayBuffer>]),
      headers: { "content-type": "application/vnd.apache.arrow.stream" },
    });
    assert.equal(res.status, 400, await res.clone().text());
    assert.deepEqual(((await res.json()) as { errors: Array<{ path: string }> }).errors.map((e) => e.path), [
      "/1/timestamp",
    ]);
    await assert.rejects(
      db.engine.write([{ userId: "u1", deviceId: "d", ts: DAY0, heartRate: 70 }]),
      ExpiredError,
    );
  });

  it("hides readings from the moment they expire, cached or not, and drops whole expired days", async () => {
    await db.engine.write([
      { userId: "u1", deviceId: "device_a", ts: DAY0 + 13 * H, heartRate: 70 }, // 2024-01-15T13
      { userId: "u1", deviceId: "device_a", ts: DAY0 + 23 * H, heartRate: 71 }, // 2024-01-15T23
      { userId: "u1", deviceId: "device_a", ts: DAY0 + D + 5 * H, heartRate: 72 }, // 2024-01-16T05
      { userId: "u1", deviceId: "device_a", ts: DAY0 + 2 * D + H, heartRate: 73 }, // 2024-01-17T01
    ]);
    await db.engine.flush();
    const all = () => get("2024-01-15T00:00:00Z", "2024-01-18T00:00:00Z");
    const late = () => get("2024-01-16T00:00:00Z", "2024-01-18T00:00:00Z");
    assert.deepEqual(await all(), [
      "2024-01-15T13:00:00Z",
      "2024-01-15T23:00:00Z",
      "2024-01-16T05:00:00Z",
      "2024-01-17T01:00:00Z",
    ]);
    assert.equal((await late()).length, 2);
    assert.equal((await late()).length, 2); // now cached (its range is above the horizon)
    clock += H + 1; // horizon 2024-01-15T13:00:00.001: the 13:00 reading has expired
    assert.deepEqual((await all())[0], "2024-01-15T23:00:00Z");
    clock += D; // horizon 2024-01-16T13:00:00.001: 2024-01-15 expired whole, 2024-01-16 partly
    assert.deepEqual(await late(), ["2024-01-17T01:00:00Z"], "the cached answer must not outlive the horizon");
    assert.deepEqual(await all(), ["2024-01-17T01:00:00Z"]);
    const before = db.engine.stats().runs.map((r) => r.day);
    assert.ok(before.includes("2024-01-15"));
    const file15 = db.engine.stats().runs.find((r) => r.day === "2024-01-15")!.file;
    await db.engine.lifecyclePass();
    const days = db.engine.stats().runs.map((r) => r.day).sort();
    assert.deepEqual(days, ["2024-01-16", "2024-01-17"]);
    assert.equal(fs.existsSync(path.join(dir, file15)), false);
    assert.deepEqual(await all(), ["2024-01-17T01:00:00Z"]);
    // After a restart the same holds (the drop was a manifest edit).
    await db.engine.close();
    db = await openPulseDb(
      testConfig({ dataDir: dir, compaction: false, retentionMs: 2 * D }),
      silentLogger,
      undefined,
      { now: () => clock },
    );
    app = createApp({ engine: db.engine, config: db.engine.config, log: silentLogger });
    assert.deepEqual(db.engine.stats().runs.map((r) => r.day).sort(), ["2024-01-16", "2024-01-17"]);
    assert.deepEqual(await all(), ["2024-01-17T01:00:00Z"]);
  });
});
