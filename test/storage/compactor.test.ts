/**
 * Compaction: the policy, answers that do not change, crashes at every step, bounded run counts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import { Compactor, planCompaction } from "../../src/storage/compactor.ts";
import type { RunMeta } from "../../src/storage/run.ts";
import type { Reading } from "../../src/reading.ts";
import { runScript } from "../support/child.ts";
import { DAY0, openTestDb, q, removeDir, tempDir } from "../support/harness.ts";
import type { Engine } from "../../src/engine.ts";

const meta = (id: number, day: string, level: number): RunMeta => ({
  id,
  day,
  level,
  file: `runs/day=${day}/L${level}-${id}.parquet`,
  rows: 1,
  minTs: 0,
  maxTs: 0,
  minSeq: 0,
  maxSeq: 0,
  bytes: 1,
});

describe("planCompaction", () => {
  it("merges `trigger` runs of one level and day into the next level", () => {
    const runs = [
      meta(1, "2024-01-15", 0),
      meta(2, "2024-01-15", 0),
      meta(3, "2024-01-16", 0),
      meta(4, "2024-01-15", 0),
    ];
    const job = planCompaction(runs, 3, 60_000, new Map([["2024-01-15", 0], ["2024-01-16", 0]]), 1000);
    assert.deepEqual(
      job && { day: job.day, ids: job.inputs.map((r) => r.id), level: job.outputLevel, reason: job.reason },
      {
        day: "2024-01-15",
        ids: [1, 2, 4],
        level: 1,
        reason: "tiered",
      },
    );
  });

  it("waits for a day to settle before merging fewer than `trigger` runs", () => {
    const runs = [meta(1, "2024-01-15", 0), meta(2, "2024-01-15", 1)];
    const flushed = new Map([["2024-01-15", 10_000]]);
    assert.equal(planCompaction(runs, 4, 60_000, flushed, 20_000), undefined);
    const job = planCompaction(runs, 4, 60_000, flushed, 70_000);
    assert.deepEqual(job && { ids: job.inputs.map((r) => r.id), level: job.outputLevel, reason: job.reason }, {
      ids: [1, 2],
      level: 2,
      reason: "settle",
    });
  });

  it("leaves a day with a single run alone", () => {
    assert.equal(planCompaction([meta(1, "2024-01-15", 3)], 2, 0, new Map(), 1e12), undefined);
  });
});

/** Independent model: last write per identity, then bucket means with priority, as the contract says. */
function model(writes: Reading[][], user: string, start: number, end: number, bucketMs: number) {
  const last = new Map<string, Reading>();
  for (const batch of writes) for (const r of batch) last.set(`${r.userId}|${r.deviceId}|${r.ts}`, r);
  const prio = (d: string) => (d === "device_a" ? 1 : d === "device_b" ? 2 : 3);
  const buckets = new Map<number, Map<string, number[]>>();
  for (const r of last.values()) {
    if (r.userId !== user || r.ts < start || r.ts >= end) continue;
    const b = r.ts - (r.ts % bucketMs);
    const devs = buckets.get(b) ?? new Map<string, number[]>();
    buckets.set(b, devs);
    devs.set(r.deviceId, [...(devs.get(r.deviceId) ?? []), r.heartRate]);
  }
  return [...buckets.keys()].sort((a, b) => a - b).map((b) => {
    const devs = [...buckets.get(b)!.keys()].sort((x, y) => prio(x) - prio(y) || (x < y ? -1 : 1));
    const values = buckets.get(b)!.get(devs[0])!;
    return {
      timestamp: new Date(b).toISOString().replace(".000Z", "Z"),
      device_id: devs[0],
      mean: values.reduce((s, v) => s + v, 0) / values.length,
    };
  });
}

const readingArb = fc.record({
  userId: fc.constantFrom("u1", "u2"),
  deviceId: fc.constantFrom("device_a", "device_b", "dev_x", "dev_w"),
  // three days, on a coarse grid so that identities collide often
  ts: fc.integer({ min: 0, max: 3 * 24 * 60 - 1 }).map((m) => DAY0 - 86_400_000 + m * 60_000 + (m % 3) * 20_000),
  heartRate: fc.integer({ min: 3000, max: 22000 }).map((v) => v / 100),
});

async function answers(engine: Engine) {
  const out = [];
  for (const userId of ["u1", "u2"]) {
    for (const bucketMs of [60_000, 3_600_000]) {
      out.push(await q(engine, { userId, start: DAY0 - 86_400_000, end: DAY0 + 2 * 86_400_000, bucketMs }));
    }
  }
  return out;
}

describe("Compaction", () => {
  it("never changes an answer: random writes with duplicates, before vs after, against a model", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(readingArb, { minLength: 1, maxLength: 40 }), { minLength: 2, maxLength: 10 }),
        async (batches) => {
          const dir = tempDir();
          const { engine } = await openTestDb(dir); // compaction off: driven by hand below
          try {
            for (const [i, batch] of batches.entries()) {
              await engine.write(batch);
              if (i % 2 === 1) await engine.flush();
            }
            await engine.flush();
            const before = await answers(engine);
            const runsBefore = engine.stats().runs.length;
            const c = new Compactor(engine, { trigger: 2, settleMs: 0 });
            await c.runUntilIdle();
            const after = await answers(engine);
            assert.deepEqual(after, before);
            const days = new Set(engine.stats().runs.map((r) => r.day));
            assert.equal(engine.stats().runs.length, days.size, `one run per day after settling (had ${runsBefore})`);
            for (const [i, userId] of ["u1", "u2"].entries()) {
              const expected = model(batches, userId, DAY0 - 86_400_000, DAY0 + 2 * 86_400_000, 60_000);
              const got = after[i * 2];
              assert.deepEqual(
                got.map((p) => [p.timestamp, p.device_id]),
                expected.map((e) => [e.timestamp, e.device_id]),
              );
              got.forEach((p, k) =>
                assert.ok(
                  Math.abs(p.heart_rate - expected[k].mean) <= 0.005 + 1e-9,
                  `${p.heart_rate} vs ${expected[k].mean}`,
                )
              );
            }
          } finally {
            await engine.close();
            removeDir(dir);
          }
        },
      ),
      { numRuns: 12, seed: 20241115 },
    );
  });

  it("keeps the run count bounded while writes continue", async () => {
    const dir = tempDir();
    const { engine, compactor } = await openTestDb(dir, {
      compaction: true,
      compactionTrigger: 3,
      compactionSettleMs: 3_600_000,
    });
    try {
      let maxRuns = 0;
      for (let i = 0; i < 60; i++) {
        await engine.write([{ userId: "u1", deviceId: "device_a", ts: DAY0 + i * 1000, heartRate: 60 + (i % 50) }]);
        await engine.flush();
        await compactor!.runUntilIdle();
        maxRuns = Math.max(maxRuns, engine.stats().runs.length);
      }
      // tiered with trigger 3: at most 2 runs per level, log3(60) < 4 levels
      assert.ok(maxRuns <= 8, `run count reached ${maxRuns}`);
      assert.equal((await q(engine, { userId: "u1", bucketMs: 86_400_000 }))[0].heart_rate, 81.17);
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });

  for (const point of ["compaction-after-sink", "compaction-after-manifest"]) {
    it(`loses and duplicates nothing when the process dies at ${point}`, async () => {
      const dir = tempDir();
      const writes: Reading[][] = [];
      for (let b = 0; b < 4; b++) {
        writes.push(Array.from({ length: 50 }, (_, i) => ({
          userId: "u1",
          deviceId: i % 2 ? "device_a" : "device_b",
          ts: DAY0 + ((i * 7 + b * 13) % 120) * 30_000,
          heartRate: 40 + b * 10 + (i % 10),
        })));
      }
      const script = `
        import { openPulseDb } from "./src/pulsedb.ts";
        import { Compactor } from "./src/storage/compactor.ts";
        import { testConfig } from "./src/ops/config.ts";
        import { silentLogger } from "./src/ops/logger.ts";
        const { engine } = await openPulseDb(testConfig({ dataDir: ${
        JSON.stringify(dir)
      }, compaction: false, crashPoint: ${JSON.stringify(point)} }), silentLogger);
        for (const batch of ${JSON.stringify(writes)}) { await engine.write(batch); await engine.flush(); }
        await new Compactor(engine, { trigger: 2, settleMs: 0 }).runUntilIdle();
        process.exit(3);
      `;
      const child = runScript(script);
      assert.equal(child.signal, "SIGKILL", `expected the crash point to fire: ${child.stderr}`);
      const { engine } = await openTestDb(dir);
      try {
        const files = engine.stats().runs.map((r) => r.file);
        for (const f of files) assert.ok(fs.existsSync(path.join(dir, f)));
        const onDisk = fs.readdirSync(path.join(dir, "runs", "day=2024-01-15"));
        assert.equal(onDisk.length, files.length, `orphans removed: ${onDisk}`);
        const got = await q(engine, { userId: "u1", bucketMs: 30_000 });
        const expected = model(writes, "u1", DAY0, DAY0 + 86_400_000, 30_000);
        assert.deepEqual(
          got.map((p) => [p.timestamp, p.device_id, p.heart_rate]),
          expected.map((e) => [e.timestamp, e.device_id, Math.round(e.mean * 100) / 100]),
        );
      } finally {
        await engine.close();
        removeDir(dir);
      }
    });
  }
});
