/**
 * Query plans: the integer-rank plan (device lists known) and the device-name plan (fallback)
 * answer the same, for listed, unlisted and equally ranked devices.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import {
  deviceOrder,
  MAX_RANKED_DEVICES,
  type QuerySources,
  rankDevices,
  runQuery,
  toPoints,
} from "../../src/query/query.ts";
import type { Engine } from "../../src/engine.ts";
import { DAY0, openTestDb, removeDir, tempDir } from "../support/harness.ts";

describe("rankDevices", () => {
  it("orders listed devices by priority, then by name for equal priorities", () => {
    assert.deepEqual(rankDevices(new Map([["z", 2], ["b", 1], ["a", 2]])), ["b", "a", "z"]);
  });
});

describe("deviceOrder", () => {
  it("puts listed devices first, then unlisted ones by name", () => {
    assert.deepEqual(deviceOrder(["device_a", "device_b"], [["zz", "device_b"], ["aa"]]), [
      "device_a",
      "device_b",
      "aa",
      "zz",
    ]);
  });
  it("gives up when a source's device list is unknown or too long", () => {
    assert.equal(deviceOrder(["device_a"], [["x"], undefined]), undefined);
    const many = Array.from({ length: MAX_RANKED_DEVICES }, (_, i) => `d${String(i).padStart(3, "0")}`);
    assert.equal(deviceOrder(["device_a"], [many]), undefined);
  });
});

describe("Query plans", () => {
  let dir: string;
  let engine: Engine;
  const ranked = ["device_a", "device_b"];
  before(async () => {
    dir = tempDir();
    engine = (await openTestDb(dir)).engine;
    const devices = ["device_a", "device_b", "zeta", "alpha", "m1"];
    const readings = [];
    for (let i = 0; i < 600; i++) {
      // each minute gets a changing subset of devices, so every priority rule decides some bucket
      for (const [k, d] of devices.entries()) {
        if ((i + k) % (k + 2) === 0) {
          readings.push({
            userId: "u",
            deviceId: d,
            ts: DAY0 + i * 20_000 + k,
            heartRate: 40 + ((i * 7 + k * 13) % 150),
          });
        }
      }
    }
    await engine.write(readings);
    await engine.flush();
  });
  after(async () => {
    await engine.close();
    removeDir(dir);
  });

  it("answer the same with and without device lists, for every bucket size", async () => {
    const runs = engine.stats().runs;
    assert.ok(runs.every((r) => r.devices && r.devices.length === 5), "runs record their devices");
    const withLists: QuerySources = {
      runs: runs.map((r) => ({ path: path.join(dir, r.file), day: r.day, devices: r.devices })),
      memtables: [],
    };
    const withoutLists: QuerySources = {
      runs: runs.map((r) => ({ path: path.join(dir, r.file), day: r.day })),
      memtables: [],
    };
    for (const bucketMs of [10_000, 60_000, 300_000, 3_600_000]) {
      const spec = { userId: "u", start: DAY0, end: DAY0 + 86_400_000, bucketMs };
      const a = toPoints(await runQuery(withLists, spec, ranked));
      const b = toPoints(await runQuery(withoutLists, spec, ranked));
      assert.ok(a.length > 0);
      assert.deepEqual(a, b);
      if (bucketMs === 10_000) {
        assert.deepEqual(
          [...new Set(a.map((p) => p.device_id))].sort(),
          ["alpha", "device_a", "device_b"],
          "listed and unlisted devices both answer buckets",
        );
      }
    }
  });
});

describe("Query answer text", () => {
  it("prints whole heart rates as JSON.stringify would (75, not 75.0)", async () => {
    const { testApp } = await import("../support/harness.ts");
    const t = await testApp();
    try {
      for (const [ts, hr] of [["10:00:00", 75], ["10:01:00", 80.5]] as const) {
        await t.app.request("/metrics/heart-rate", {
          method: "POST",
          body: JSON.stringify({ user_id: "w", device_id: "device_a", timestamp: `2024-01-15T${ts}Z`, heart_rate: hr }),
        });
      }
      const text =
        await (await t.app.request("/metrics/heart-rate?user_id=w&start=2024-01-15T10:00:00Z&end=2024-01-15T10:30:00Z"))
          .text();
      assert.equal(
        text,
        '{"user_id":"w","data":[{"timestamp":"2024-01-15T10:00:00Z","heart_rate":75,"device_id":"device_a"},' +
          '{"timestamp":"2024-01-15T10:01:00Z","heart_rate":80.5,"device_id":"device_a"}],"count":2}',
      );
    } finally {
      await t.close();
    }
  });
});
