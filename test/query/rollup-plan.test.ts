/**
 * Rollup planning: which days answer from rollups, the raw edges of an unaligned range, and that a
 * settled day's answer from its rollup is byte-identical to the answer from its raw rows.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { dayAnswersFromRollups, type PlannedRun, planRunSources } from "../../src/query/rollup-plan.ts";
import { runQuery } from "../../src/query/query.ts";
import type { RunMeta } from "../../src/storage/run.ts";
import type { Engine } from "../../src/engine.ts";
import { Compactor } from "../../src/storage/compactor.ts";
import { DAY0, openTestDb, removeDir, tempDir } from "../support/harness.ts";

const DAY = 86_400_000;
const run = (id: number, day: string, rollup = true): PlannedRun => ({
  meta: {
    id,
    day,
    level: 0,
    file: `runs/day=${day}/L0-${id}.parquet`,
    rows: 1,
    minTs: 0,
    maxTs: 0,
    minSeq: 0,
    maxSeq: 0,
    bytes: 1,
    ...(rollup ? { rollup: { file: `rollups/day=${day}/L0-${id}.parquet`, bytes: 1 } } : {}),
  } as RunMeta,
  path: `/d/runs/${id}`,
  rollupPath: rollup ? `/d/rollups/${id}` : undefined,
});

describe("dayAnswersFromRollups", () => {
  it("takes a day with one run and a rollup, whole-minute buckets, no memtable", () => {
    assert.equal(dayAnswersFromRollups({ runs: [run(1, "2024-01-15")], inMemtable: false }, 60_000), true);
    assert.equal(dayAnswersFromRollups({ runs: [run(1, "2024-01-15")], inMemtable: false }, 86_400_000), true);
  });
  it("reads raw: 10s and 30s buckets, several runs, a memtable on the day, no rollup", () => {
    const one = [run(1, "2024-01-15")];
    assert.equal(dayAnswersFromRollups({ runs: one, inMemtable: false }, 10_000), false);
    assert.equal(dayAnswersFromRollups({ runs: one, inMemtable: false }, 30_000), false);
    assert.equal(dayAnswersFromRollups({ runs: one, inMemtable: true }, 60_000), false);
    assert.equal(dayAnswersFromRollups({ runs: [...one, run(2, "2024-01-15")], inMemtable: false }, 60_000), false);
    assert.equal(dayAnswersFromRollups({ runs: [run(3, "2024-01-15", false)], inMemtable: false }, 60_000), false);
  });
});

describe("planRunSources", () => {
  it("reads whole minutes from the rollup and the partial minutes at the ends raw", () => {
    const spec = { userId: "u", start: DAY0 + 1_500, end: DAY0 + DAY + 90_000, bucketMs: 60_000 };
    const { runs, rollups } = planRunSources(spec, [run(1, "2024-01-15"), run(2, "2024-01-16")], new Set());
    assert.deepEqual(rollups!.map((u) => u.window), [[DAY0 + 60_000, DAY0 + DAY], [DAY0 + DAY, DAY0 + DAY + 60_000]]);
    assert.deepEqual(runs.map((r) => r.windows), [[[DAY0 + 1_500, DAY0 + 60_000]], [[
      DAY0 + DAY + 60_000,
      DAY0 + DAY + 90_000,
    ]]]);
  });
  it("reads a day raw, over the whole range, when the memtable holds it", () => {
    const spec = { userId: "u", start: DAY0, end: DAY0 + DAY, bucketMs: 60_000 };
    const { runs, rollups } = planRunSources(spec, [run(1, "2024-01-15")], new Set(["2024-01-15"]));
    assert.deepEqual(rollups, []);
    assert.equal(runs.length, 1);
    assert.equal(runs[0].windows, undefined);
  });
});

describe("Rollup answers", () => {
  let dir: string;
  let engine: Engine;
  before(async () => {
    dir = tempDir();
    engine = (await openTestDb(dir)).engine;
    const readings = [];
    for (let s = 0; s < 5 * 86_400; s += 17) {
      const ts = DAY0 + s * 1000 + (s % 3);
      readings.push({ userId: "u", deviceId: s % 5 === 0 ? "zz" : "device_b", ts, heartRate: 40 + (s % 1777) / 11 });
      if (s % 13 < 6) readings.push({ userId: "u", deviceId: "device_a", ts, heartRate: 60 + (s % 997) / 7 });
      readings.push({ userId: "other", deviceId: "device_a", ts, heartRate: 100 });
    }
    for (let i = 0; i < readings.length; i += 10_000) {
      await engine.write(readings.slice(i, i + 10_000));
      await engine.flush();
    }
    await new Compactor(engine, { trigger: 2, settleMs: 0 }).runUntilIdle();
  });
  after(async () => {
    await engine.close();
    removeDir(dir);
  });

  it("are byte-identical to answers from the raw rows, for every whole-minute bucket and ranges", async () => {
    const metas = engine.stats().runs;
    assert.equal(metas.length, 5, "one settled run per day (five days of one month: read through a glob)");
    assert.ok(metas.every((m) => m.rollup !== undefined && m.rollup.bytes > 0), "each run has a rollup");
    const planned = metas.map((m) => ({
      meta: m,
      path: path.join(dir, m.file),
      rollupPath: path.join(dir, m.rollup!.file),
    }));
    const raw = {
      runs: planned.map((p) => ({ path: p.path, day: p.meta.day, devices: p.meta.devices })),
      memtables: [],
    };
    for (const bucketMs of [60_000, 300_000, 900_000, 3_600_000, 21_600_000, 86_400_000]) {
      for (
        const [start, end] of [[DAY0, DAY0 + 5 * DAY], [DAY0 + 12_345, DAY0 + 4 * DAY + 7_654_321], [
          DAY0 + 1,
          DAY0 + 59_999,
        ]]
      ) {
        for (const deviceId of [undefined, "zz"]) {
          const spec = { userId: "u", start, end, bucketMs, ...(deviceId ? { deviceId } : {}) };
          const viaRollups = { ...planRunSources(spec, planned, new Set()), memtables: [] };
          if (end - start > 60_000) assert.ok(viaRollups.rollups!.length > 0);
          const ranked = ["device_a", "device_b"];
          const a = await runQuery(viaRollups, spec, ranked);
          const b = await runQuery(raw, spec, ranked);
          if (end - start > 60_000) assert.ok(a.count > 0);
          assert.equal(a.json, b.json, JSON.stringify(spec));
        }
      }
    }
  });

  it("answer the same when a month's glob meets a file it cannot read (planned again file by file)", async () => {
    const metas = engine.stats().runs;
    const planned = metas.map((m) => ({
      meta: m,
      path: path.join(dir, m.file),
      rollupPath: path.join(dir, m.rollup!.file),
    }));
    const spec = { userId: "u", start: DAY0, end: DAY0 + 5 * DAY, bucketMs: 3_600_000 };
    const sources = { ...planRunSources(spec, planned, new Set()), memtables: [] };
    const before = await runQuery(sources, spec, ["device_a", "device_b"]);
    // A file the glob lists but the query does not read, and cannot be read (as one being deleted).
    const stray = path.join(dir, "rollups/day=2024-01-16/L9-99999999.parquet");
    fs.writeFileSync(stray, "not parquet");
    try {
      assert.equal((await runQuery(sources, spec, ["device_a", "device_b"])).json, before.json);
    } finally {
      fs.rmSync(stray);
    }
  });
});
