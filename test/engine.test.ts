/**
 * Engine behaviour: what a query answers wherever the readings live (memtable, sealed memtable,
 * runs, after restart), and what recovery does.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { DAY0, openTestDb, q, reading, removeDir, tempDir, withEngine } from "./support/harness.ts";
import { runScript } from "./support/child.ts";
import type { Engine } from "../src/engine.ts";
import { OverloadedError } from "../src/engine.ts";

const H10 = DAY0 + 10 * 3_600_000;
const MIN = 60_000;

/** Where a test's readings live when it queries. */
const PLACEMENTS = ["memtable", "runs", "restart"] as const;

async function place(engine: Engine, dir: string, how: (typeof PLACEMENTS)[number]): Promise<Engine> {
  if (how === "memtable") return engine;
  await engine.flush();
  if (how === "runs") return engine;
  await engine.close();
  return (await openTestDb(dir)).engine;
}

for (const how of PLACEMENTS) {
  describe(`Engine query with readings in ${how}`, () => {
    let dir: string;
    let engine: Engine;
    before(async () => {
      dir = tempDir();
      engine = (await openTestDb(dir)).engine;
      await engine.write([
        // the brief's example: device_b 80 then device_a 75 at 10:00:00
        reading({ deviceId: "device_b", ts: H10, heartRate: 80 }),
        reading({ deviceId: "device_a", ts: H10, heartRate: 75 }),
        // 10:01: only device_b
        reading({ deviceId: "device_b", ts: H10 + MIN + 5_000, heartRate: 90 }),
        // 10:02: an unknown device and device_b -> device_b; two unknown devices at 10:03 -> "aaa" wins
        reading({ deviceId: "zzz", ts: H10 + 2 * MIN, heartRate: 50 }),
        reading({ deviceId: "device_b", ts: H10 + 2 * MIN + 1, heartRate: 60 }),
        reading({ deviceId: "zzz", ts: H10 + 3 * MIN, heartRate: 51 }),
        reading({ deviceId: "aaa", ts: H10 + 3 * MIN + 59_999, heartRate: 52 }),
        // 10:04: mean 70.67 from 70, 71, 71
        reading({ ts: H10 + 4 * MIN, heartRate: 70 }),
        reading({ ts: H10 + 4 * MIN + 1, heartRate: 71 }),
        reading({ ts: H10 + 4 * MIN + 2, heartRate: 71 }),
        // 10:05: a duplicate identity, then a correction: last write wins, counted once
        reading({ ts: H10 + 5 * MIN, heartRate: 100 }),
        reading({ ts: H10 + 5 * MIN, heartRate: 100 }),
        reading({ ts: H10 + 5 * MIN + 1, heartRate: 60 }),
        // another user, same times: never mixed in
        reading({ userId: "user_2", ts: H10, heartRate: 200 }),
      ]);
      await engine.write([reading({ ts: H10 + 5 * MIN, heartRate: 120 })]);
      engine = await place(engine, dir, how);
    });
    after(async () => {
      await engine.close();
      removeDir(dir);
    });

    it("answers one bucket per minute from the highest-priority device, rounded, sorted", async () => {
      const points = await q(engine, { start: H10, end: H10 + 10 * MIN });
      assert.deepEqual(points, [
        { timestamp: "2024-01-15T10:00:00Z", heart_rate: 75, device_id: "device_a" },
        { timestamp: "2024-01-15T10:01:00Z", heart_rate: 90, device_id: "device_b" },
        { timestamp: "2024-01-15T10:02:00Z", heart_rate: 60, device_id: "device_b" },
        { timestamp: "2024-01-15T10:03:00Z", heart_rate: 52, device_id: "aaa" },
        { timestamp: "2024-01-15T10:04:00Z", heart_rate: 70.67, device_id: "device_a" },
        { timestamp: "2024-01-15T10:05:00Z", heart_rate: 90, device_id: "device_a" },
      ]);
    });

    it("filters to one device when device_id is given", async () => {
      const points = await q(engine, { deviceId: "device_b", start: H10, end: H10 + 10 * MIN });
      assert.deepEqual(points.map((p) => [p.timestamp, p.heart_rate, p.device_id]), [
        ["2024-01-15T10:00:00Z", 80, "device_b"],
        ["2024-01-15T10:01:00Z", 90, "device_b"],
        ["2024-01-15T10:02:00Z", 60, "device_b"],
      ]);
    });

    it("treats the range as half-open [start, end)", async () => {
      const inclusiveStart = await q(engine, { start: H10 + MIN + 5_000, end: H10 + MIN + 5_001 });
      assert.equal(inclusiveStart.length, 1);
      const exclusiveEnd = await q(engine, { start: H10 + MIN, end: H10 + MIN + 5_000 });
      assert.equal(exclusiveEnd.length, 0);
    });

    it("answers nothing for a user or device without readings in the range", async () => {
      assert.deepEqual(await q(engine, { userId: "nobody" }), []);
      assert.deepEqual(await q(engine, { deviceId: "device_c" }), []);
      assert.deepEqual(await q(engine, { start: DAY0 + 86_400_000, end: DAY0 + 2 * 86_400_000 }), []);
    });

    it("aligns larger buckets to the epoch", async () => {
      const hour = await q(engine, { start: H10 + 30 * MIN, end: H10 + 90 * MIN, bucketMs: 3_600_000 });
      assert.deepEqual(hour, []);
      const day = await q(engine, { deviceId: "device_b", start: H10 - 1, end: H10 + 3_600_000, bucketMs: 86_400_000 });
      assert.deepEqual(day, [{ timestamp: "2024-01-15T00:00:00Z", heart_rate: 76.67, device_id: "device_b" }]);
    });
  });
}

describe("Engine last write wins", () => {
  it("holds across memtable, runs and restart, whichever copy is newer", async () => {
    const dir = tempDir();
    let { engine } = await openTestDb(dir);
    try {
      const r = (hr: number) => reading({ ts: H10, heartRate: hr });
      await engine.write([r(60)]);
      await engine.flush(); // 60 in a run
      await engine.write([r(61)]); // 61 in the memtable
      assert.equal((await q(engine))[0].heart_rate, 61);
      await engine.flush(); // two runs of the same day, 61 newer
      assert.equal((await q(engine))[0].heart_rate, 61);
      await engine.write([r(62)]);
      await engine.close();
      ({ engine } = await openTestDb(dir)); // 62 replayed from the WAL
      assert.equal((await q(engine))[0].heart_rate, 62);
      await engine.flush();
      assert.equal((await q(engine))[0].heart_rate, 62);
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });

  it("keeps the later element of one batch", async () => {
    await withEngine({}, async (engine) => {
      await engine.write([reading({ heartRate: 60 }), reading({ heartRate: 99 })]);
      assert.equal((await q(engine))[0].heart_rate, 99);
      await engine.flush();
      assert.equal((await q(engine))[0].heart_rate, 99);
    });
  });
});

describe("Engine flush", () => {
  it("writes one run per UTC day under runs/day=YYYY-MM-DD and drops the covered WAL segment", async () => {
    await withEngine({}, async (engine, dir) => {
      await engine.write([
        reading({ ts: DAY0 - 1 }),
        reading({ ts: DAY0 }),
        reading({ ts: DAY0 + 86_400_000 - 1 }),
        reading({ ts: DAY0 + 86_400_000 }),
      ]);
      await engine.flush();
      const runs = engine.stats().runs;
      assert.deepEqual(runs.map((r) => [r.day, r.rows]), [
        ["2024-01-14", 1],
        ["2024-01-15", 2],
        ["2024-01-16", 1],
      ]);
      for (const r of runs) assert.ok(fs.existsSync(path.join(dir, r.file)), r.file);
      const segments = fs.readdirSync(path.join(dir, "wal"));
      assert.equal(segments.length, 1, `only the current segment remains: ${segments}`);
    });
  });

  it("seals the memtable at PULSE_MEMTABLE_ROWS and flushes it in the background", async () => {
    await withEngine({ memtableRows: 10 }, async (engine) => {
      for (let i = 0; i < 25; i++) await engine.write([reading({ ts: H10 + i * 1000 })]);
      await engine.flush();
      assert.ok(engine.stats().runs.length >= 2);
      assert.equal((await q(engine, { start: H10, end: H10 + MIN }))[0].heart_rate, 75);
    });
  });
});

describe("Engine recovery", () => {
  it("replays acknowledged writes after a crash without close", async () => {
    const dir = tempDir();
    const first = (await openTestDb(dir)).engine;
    await first.write([reading({ heartRate: 66 })]);
    // Simulate a crash: the first engine is abandoned, never closed. Its lock names this process,
    // which start-up treats as its own.
    const { engine } = await openTestDb(dir);
    try {
      assert.equal((await q(engine))[0].heart_rate, 66);
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });

  it("removes orphan and temp run files the manifest does not name", async () => {
    const dir = tempDir();
    let { engine } = await openTestDb(dir);
    await engine.write([reading()]);
    await engine.close();
    const dayDir = path.join(dir, "runs", "day=2024-01-15");
    fs.mkdirSync(dayDir, { recursive: true });
    fs.writeFileSync(path.join(dayDir, ".tmp-L0-00000099.parquet"), "half");
    fs.writeFileSync(path.join(dayDir, "L1-00000098.parquet"), "orphan");
    ({ engine } = await openTestDb(dir));
    try {
      const files = fs.readdirSync(dayDir);
      assert.ok(!files.includes(".tmp-L0-00000099.parquet"));
      assert.ok(!files.includes("L1-00000098.parquet"));
      assert.equal((await q(engine))[0].heart_rate, 75);
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });

  it("refuses to start when a run the manifest names is missing, naming the file", async () => {
    const dir = tempDir();
    const { engine } = await openTestDb(dir);
    await engine.write([reading()]);
    await engine.close();
    const run = engine.stats().runs[0];
    fs.rmSync(path.join(dir, run.file));
    await assert.rejects(openTestDb(dir), (err: Error) => err.message.includes(run.file));
    removeDir(dir);
  });
});

describe("Engine backpressure", () => {
  it("refuses writes with OverloadedError at the memory budget and stores nothing of them", async () => {
    const dir = tempDir();
    // A budget smaller than one empty memtable: every write is refused.
    const { engine } = await openTestDb(dir, { memoryBudgetBytes: 1024 });
    try {
      await assert.rejects(engine.write([reading()]), OverloadedError);
      assert.deepEqual(await q(engine), []);
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });
});

describe("Engine run ids", () => {
  it("never hands out a run id twice while a manifest write is in flight", async () => {
    await withEngine({}, async (engine) => {
      const a = engine.reserveRunId();
      const publishing = engine.replaceRuns([], []);
      await new Promise((r) => setImmediate(r)); // the manifest write is now under way
      const b = engine.reserveRunId();
      await publishing;
      const c = engine.reserveRunId();
      assert.ok(a < b && b < c, `ids ${a}, ${b}, ${c}`);
    });
  });
});

describe("Engine first flush", () => {
  it("recovers by itself from a crash in the very first flush of a new database", async () => {
    const dir = tempDir();
    const child = runScript(`
      import { openPulseDb } from "./src/pulsedb.ts";
      import { testConfig } from "./src/ops/config.ts";
      import { silentLogger } from "./src/ops/logger.ts";
      const { engine } = await openPulseDb(testConfig({ dataDir: ${
      JSON.stringify(dir)
    }, compaction: false, crashPoint: "flush-after-rename" }), silentLogger);
      await engine.write([{ userId: "user_1", deviceId: "device_a", ts: ${H10}, heartRate: 64 }]);
      await engine.flush();
    `);
    assert.equal(child.signal, "SIGKILL", child.stderr);
    const { engine } = await openTestDb(dir);
    try {
      assert.equal((await q(engine))[0].heart_rate, 64);
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });
});

describe("Engine lock", () => {
  it("refuses a data directory held by a live process, and takes over a lock whose pid was reused", async () => {
    const dir = tempDir();
    const fsm = await import("node:fs");
    const pathm = await import("node:path");
    try {
      // pid 1 is alive; with its real start time the lock is held, with another one it is stale
      const stat = fsm.readFileSync("/proc/1/stat", "utf8");
      const started = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
      fsm.writeFileSync(pathm.join(dir, "LOCK"), `1 ${started}`);
      await assert.rejects(openTestDb(dir), /in use by process 1/);
      fsm.writeFileSync(pathm.join(dir, "LOCK"), "1 12345");
      const { engine } = await openTestDb(dir);
      await engine.close();
    } finally {
      removeDir(dir);
    }
  });
});
