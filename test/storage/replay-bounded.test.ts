/**
 * WAL replay is bounded by PULSE_MEMTABLE_ROWS: a log larger than the memtable budget is replayed
 * into memtables that are flushed to runs as they fill, not into one memtable holding the whole log
 * (issue 11, item 11). Counted in rows, not RSS.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createLogger } from "../../src/ops/logger.ts";
import { testConfig } from "../../src/ops/config.ts";
import { openPulseDb } from "../../src/pulsedb.ts";
import { DAY0, openTestDb, q, reading, removeDir, tempDir } from "../support/harness.ts";

// deno-lint-ignore no-explicit-any -- log lines
type Json = Record<string, any>;

describe("WAL replay", () => {
  it("replays a WAL of 5x the memtable budget through memtables of at most PULSE_MEMTABLE_ROWS rows", async () => {
    const dir = tempDir();
    try {
      // A log of 20,000 readings in one segment (one big memtable, never flushed), then a crash.
      const first = (await openTestDb(dir, { memtableRows: 100_000, flushIntervalMs: 86_400_000 })).engine;
      for (let b = 0; b < 20; b++) {
        await first.write(
          Array.from(
            { length: 1000 },
            (_, i) => reading({ ts: DAY0 + (b * 1000 + i) * 4000, heartRate: 40 + (i % 90) }),
          ),
        );
      }
      const before = await q(first);
      assert.equal(first.stats().runs.length, 0, "nothing was flushed before the crash");
      // Crash: the engine is abandoned, never closed.

      const lines: Json[] = [];
      const log = createLogger("info", (line) => lines.push(JSON.parse(line)));
      const { engine } = await openPulseDb(
        testConfig({ dataDir: dir, compaction: false, memtableRows: 4000 }),
        log,
      );
      try {
        const replayFlushes = lines.filter((l) => l.msg === "flush" && l.memtable === "replay");
        assert.ok(replayFlushes.length >= 4, `${replayFlushes.length} memtables flushed during replay`);
        for (const f of replayFlushes) assert.ok(f.rows <= 4000, `a replay memtable held ${f.rows} rows`);
        assert.ok(engine.stats().memtableRows <= 4000, `${engine.stats().memtableRows} rows left in memory`);
        assert.equal(lines.find((l) => l.msg === "recovered")?.replayedReadings, 20_000);
        assert.deepEqual(await q(engine), before, "every reading is served as before the crash");
        await engine.flush();
        assert.deepEqual(await q(engine), before);
      } finally {
        await engine.close();
      }
      // And again after a clean restart (segments covered by the replay flushes are gone).
      const again = (await openTestDb(dir)).engine;
      try {
        assert.deepEqual(await q(again), before);
      } finally {
        await again.close();
      }
    } finally {
      removeDir(dir);
    }
  });

  it("keeps a DELETE logged between readings when the replay flushes memtables as it goes", async () => {
    const dir = tempDir();
    try {
      const first = (await openTestDb(dir, { memtableRows: 100_000, flushIntervalMs: 86_400_000 })).engine;
      const batch = (from: number, hr: number) =>
        Array.from({ length: 1000 }, (_, i) => reading({ ts: DAY0 + (from + i) * 4000, heartRate: hr }));
      for (let b = 0; b < 6; b++) await first.write(batch(b * 1000, 60));
      await first.delete({ userId: "user_1" }); // erases everything above
      for (let b = 6; b < 12; b++) await first.write(batch(b * 1000, 70));
      const before = await q(first);
      assert.ok(before.every((p) => p.heart_rate === 70), "the DELETE masks the first readings");
      // Crash, then replay through memtables of 2,000 rows.
      const { engine } = await openTestDb(dir, { memtableRows: 2000 });
      try {
        assert.ok(engine.stats().runs.length >= 3, "memtables were flushed during the replay");
        assert.deepEqual(await q(engine), before);
      } finally {
        await engine.close();
      }
      const again = (await openTestDb(dir)).engine;
      try {
        assert.deepEqual(await q(again), before, "and after a clean restart");
      } finally {
        await again.close();
      }
    } finally {
      removeDir(dir);
    }
  });
});
