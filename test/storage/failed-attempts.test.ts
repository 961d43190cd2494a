/**
 * A flush or compaction attempt that fails leaves no run file behind, so retries do not pile up
 * files until the next restart (issue 11, item 7). Failures are injected by putting a file or a
 * directory where the attempt needs to write.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { Compactor } from "../../src/storage/compactor.ts";
import { listRunFiles } from "../../src/storage/run.ts";
import type { Engine } from "../../src/engine.ts";
import { DAY0, reading, waitFor, withEngine } from "../support/harness.ts";

const DAY = 86_400_000;

/** Run and rollup files on disk that are not temp files, sorted. */
async function runFilesOnDisk(dir: string): Promise<string[]> {
  return (await listRunFiles(dir)).filter((f) => f.endsWith(".parquet") && !path.basename(f).startsWith(".")).sort();
}

/** The run files the manifest names, with their rollups, sorted. */
function manifestFiles(engine: Engine): string[] {
  return engine.stats().runs.flatMap((r) => [r.file, ...(r.rollup ? [r.rollup.file] : [])]).sort();
}

async function counter(c: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> {
  return (await c.get()).values[0]?.value ?? 0;
}

describe("failed attempts leave no run files", () => {
  it(
    "a flush that fails on its second day removes the first day's run, on every retry",
    { timeout: 60_000 },
    async () => {
      await withEngine({}, async (engine, dir) => {
        await engine.write([reading({ ts: DAY0 + 1000 }), reading({ ts: DAY0 + DAY + 1000 })]);
        // The second day's run directory cannot be created: a file has its name.
        fs.mkdirSync(path.join(dir, "runs"), { recursive: true });
        const blocker = path.join(dir, "runs", "day=2024-01-16");
        fs.writeFileSync(blocker, "");
        const flushed = engine.flush();
        await waitFor(async () => (await counter(engine.metrics.flushFailures)) >= 3);
        assert.deepEqual(await runFilesOnDisk(dir), [], "no run of 2024-01-15 left by the failed attempts");
        fs.rmSync(blocker);
        await flushed;
        const onDisk = await runFilesOnDisk(dir);
        assert.equal(onDisk.filter((f) => f.startsWith("runs/")).length, 2);
        assert.deepEqual(onDisk, manifestFiles(engine));
      });
    },
  );

  it("a flush whose manifest write fails removes the runs it wrote", { timeout: 60_000 }, async () => {
    await withEngine({}, async (engine, dir) => {
      await engine.write([reading({ ts: DAY0 + 1000 })]);
      // The manifest's temp file cannot be opened for writing: a directory has its name.
      fs.mkdirSync(path.join(dir, `.tmp-MANIFEST-${process.pid}`));
      fs.writeFileSync(path.join(dir, `.tmp-MANIFEST-${process.pid}`, "keep"), "");
      await engine.flush();
      assert.ok((await counter(engine.metrics.flushFailures)) >= 1, "the first attempt failed");
      assert.deepEqual(await runFilesOnDisk(dir), manifestFiles(engine), "only the published run is on disk");
      assert.equal(engine.stats().runs.length, 1);
    });
  });

  it("a compaction whose publish fails removes its output", { timeout: 60_000 }, async () => {
    await withEngine({}, async (engine, dir) => {
      for (const hr of [70, 71]) {
        await engine.write([reading({ heartRate: hr })]);
        await engine.flush();
      }
      const before = await runFilesOnDisk(dir);
      assert.equal(before.filter((f) => f.startsWith("runs/")).length, 2);
      fs.mkdirSync(path.join(dir, `.tmp-MANIFEST-${process.pid}`));
      fs.writeFileSync(path.join(dir, `.tmp-MANIFEST-${process.pid}`, "keep"), "");
      await assert.rejects(
        new Compactor(engine, { trigger: 2, settleMs: 1e9 }).runUntilIdle(),
        /compaction is failing/,
      );
      assert.deepEqual(await runFilesOnDisk(dir), before, "the merged output is gone, the inputs stay");
      assert.deepEqual(manifestFiles(engine), before);
    });
  });
});
