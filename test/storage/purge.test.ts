/**
 * Physical purge of erasures: after the purge no live file under the data directory (Parquet runs,
 * WAL segments) holds a deleted reading or the DELETE's record; other users' rows are untouched;
 * readings accepted after the DELETE stay; the purge survives a crash in the middle; it runs when
 * due (injected clock); it logs one line per erasure and the gauges follow.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { openPulseDb, type PulseDb } from "../../src/pulsedb.ts";
import { type Config, testConfig } from "../../src/ops/config.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import { scanForUser, type ScanHit } from "../../src/storage/erasure-scan.ts";
import { DAY0, removeDir, tempDir } from "../support/harness.ts";
import { runScript } from "../support/child.ts";
import type { Engine } from "../../src/engine.ts";
import type { Reading } from "../../src/reading.ts";

const H = 3_600_000;
const D = 86_400_000;

function open(dir: string, lines: string[] = [], over: Partial<Config> = {}, now?: () => number): Promise<PulseDb> {
  return openPulseDb(
    testConfig({ dataDir: dir, compaction: false, ...over }),
    createLogger("info", (l) => lines.push(l)),
    new Metrics(),
    now ? { now } : {},
  );
}

/** `n` readings per device of `user` on each of `days` days from DAY0, every 10 minutes. */
function readings(user: string, days: number, n: number, hr: number): Reading[] {
  const out: Reading[] = [];
  for (let d = 0; d < days; d++) {
    for (const deviceId of ["device_a", "device_b"]) {
      for (let i = 0; i < n; i++) {
        out.push({ userId: user, deviceId, ts: DAY0 + d * D + i * 600_000, heartRate: hr + (i % 7) });
      }
    }
  }
  return out;
}

async function answer(engine: Engine, userId: string, deviceId?: string): Promise<string> {
  return (await engine.queryJson({ userId, deviceId, start: DAY0 - D, end: DAY0 + 5 * D, bucketMs: 600_000 })).json;
}

describe("Purge", () => {
  it("leaves no live file holding a deleted reading or the DELETE's record; other users and later readings stay", async () => {
    const dir = tempDir();
    const lines: string[] = [];
    let db = await open(dir, lines);
    try {
      await db.engine.write([...readings("alice", 3, 50, 60), ...readings("bob", 3, 50, 90)]);
      await db.engine.flush(); // runs
      await db.engine.write([...readings("alice", 1, 20, 100), ...readings("bob", 1, 20, 120)]); // memtable + WAL
      const bobBefore = await answer(db.engine, "bob");
      // Rows of readings: runs and WAL segments, not the per-minute rollups derived from the runs.
      const runRows = (hits: ScanHit[]) =>
        hits.filter((h) => !h.file.startsWith("rollups")).reduce((n, h) => n + h.rows, 0);
      const bobRowsBefore = runRows((await scanForUser(dir, { userId: "bob" })).hits);
      await db.engine.delete({ userId: "alice" });
      const seq = db.engine.tombstones.all()[0].seq;
      await db.engine.write([{ userId: "alice", deviceId: "device_a", ts: DAY0 + H, heartRate: 77 }]);
      const aliceAfter = await answer(db.engine, "alice");
      assert.equal(JSON.parse(aliceAfter).length, 1);

      const before = await scanForUser(dir, { userId: "alice" });
      assert.ok(before.hits.some((h) => h.kind === "parquet" && h.seqs.some((s) => s < seq)));
      assert.ok(before.hits.some((h) => h.kind === "wal"));
      assert.equal(before.tombstoneRecords.length, 1);
      const gauges = async () => {
        db.engine.refreshGauges();
        const text = await db.engine.metrics.registry.metrics();
        return /pulsedb_erasures_pending (\d+)/.exec(text)![1];
      };
      assert.equal(await gauges(), "1");

      const report = await db.engine.purger.run();
      assert.equal(report.tombstones, 1);
      assert.ok(report.runsRewritten >= 3, JSON.stringify(report));

      const after = await scanForUser(dir, { userId: "alice" });
      for (const h of after.hits) assert.ok(h.seqs.every((s) => s > seq), `${h.file} still holds ${h.seqs}`);
      assert.deepEqual(after.tombstoneRecords, []);
      assert.deepEqual(after.pending, []);
      assert.equal(db.engine.tombstones.size, 0);
      assert.equal(await gauges(), "0");
      assert.equal(await answer(db.engine, "alice"), aliceAfter);
      assert.equal(await answer(db.engine, "bob"), bobBefore);
      const bobRowsAfter = runRows((await scanForUser(dir, { userId: "bob" })).hits);
      // Bob's rows: the WAL copies of his memtable rows were flushed, so count his run rows only.
      assert.ok(
        bobRowsAfter >= 3 * 2 * 50 + 2 * 20 && bobRowsBefore >= bobRowsAfter - 1,
        `${bobRowsBefore} ${bobRowsAfter}`,
      );

      const purged = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "erasure purged");
      assert.equal(purged.length, 1);
      assert.equal(purged[0].userId, "alice");
      assert.ok(Date.parse(purged[0].requestedAt) <= Date.parse(purged[0].doneAt));

      await db.engine.close();
      db = await open(dir);
      assert.equal(await answer(db.engine, "alice"), aliceAfter);
      assert.equal(await answer(db.engine, "bob"), bobBefore);
      assert.equal(db.engine.tombstones.size, 0);
    } finally {
      await db.engine.close();
      removeDir(dir);
    }
  });

  it("a device and range erasure removes only the matching rows", async () => {
    const dir = tempDir();
    const db = await open(dir);
    try {
      await db.engine.write(readings("carol", 2, 30, 70));
      await db.engine.flush();
      const target = { userId: "carol", deviceId: "device_b", start: DAY0 + 2 * H, end: DAY0 + D + 2 * H };
      const wantA = await answer(db.engine, "carol", "device_a");
      await db.engine.delete(target);
      const masked = await answer(db.engine, "carol");
      await db.engine.purger.run();
      const after = await scanForUser(dir, target);
      assert.deepEqual(after.hits, []);
      assert.ok((await scanForUser(dir, { userId: "carol", deviceId: "device_b" })).hits.length > 0);
      assert.equal(await answer(db.engine, "carol", "device_a"), wantA);
      assert.equal(await answer(db.engine, "carol"), masked);
    } finally {
      await db.engine.close();
      removeDir(dir);
    }
  });

  it("finishes after a crash in the middle of the purge (the manifest still names the erasure)", async () => {
    const dir = tempDir();
    try {
      const child = runScript(`
        import { openPulseDb } from "./src/pulsedb.ts";
        import { testConfig } from "./src/ops/config.ts";
        import { silentLogger } from "./src/ops/logger.ts";
        const { engine } = await openPulseDb(testConfig({ dataDir: ${
        JSON.stringify(dir)
      }, compaction: false, crashPoint: "purge-after-manifest" }), silentLogger);
        const rows = [];
        for (let d = 0; d < 2; d++) for (const u of ["dave", "erin"]) rows.push({ userId: u, deviceId: "device_a", ts: ${DAY0} + d * ${D}, heartRate: 70 });
        await engine.write(rows);
        await engine.flush();
        await engine.delete({ userId: "dave" });
        await engine.purger.run();
      `);
      assert.equal(child.signal, "SIGKILL", child.stderr);
      const db = await open(dir);
      try {
        assert.equal(db.engine.tombstones.size, 1);
        assert.equal(await answer(db.engine, "dave"), "[]");
        assert.equal(JSON.parse(await answer(db.engine, "erin")).length, 2);
        await db.engine.purger.run();
        const after = await scanForUser(dir, { userId: "dave" });
        assert.deepEqual(after.hits, []);
        assert.deepEqual(after.pending, []);
        assert.equal(JSON.parse(await answer(db.engine, "erin")).length, 2);
      } finally {
        await db.engine.close();
      }
    } finally {
      removeDir(dir);
    }
  });

  it("after a crash, waits for the replayed WAL (a memtable whose id is above the DELETE's segment) before purging", async () => {
    const dir = tempDir();
    try {
      // Several WAL segments, the DELETE in the first, and no flush completed (the first one dies).
      const child = runScript(`
        import { openPulseDb } from "./src/pulsedb.ts";
        import { testConfig } from "./src/ops/config.ts";
        import { silentLogger } from "./src/ops/logger.ts";
        const { engine } = await openPulseDb(testConfig({ dataDir: ${
        JSON.stringify(dir)
      }, compaction: false, memtableRows: 2, crashPoint: "flush-after-sink:1" }), silentLogger);
        const r = (u, h, hr) => ({ userId: u, deviceId: "device_a", ts: ${DAY0} + h * ${H}, heartRate: hr });
        await engine.write([r("ivy", 1, 61)]);
        await engine.delete({ userId: "ivy" });
        await engine.write([r("ivy", 2, 62), r("jay", 2, 72)]);
        await engine.write([r("jay", 3, 73), r("jay", 4, 74)]);
        await new Promise(() => {}); // the background flush dies at its crash point
      `);
      assert.equal(child.signal, "SIGKILL", child.stderr);
      const db = await open(dir);
      try {
        assert.equal(db.engine.tombstones.size, 1);
        const want = await answer(db.engine, "ivy");
        assert.equal(JSON.parse(want).length, 1); // the 02:00 reading, accepted after the DELETE
        await db.engine.purger.run();
        assert.equal(await answer(db.engine, "ivy"), want);
        assert.equal(JSON.parse(await answer(db.engine, "jay")).length, 3);
        const after = await scanForUser(dir, { userId: "ivy" });
        const seq = 2; // the DELETE's sequence: the first reading had 1
        for (const h of after.hits) assert.ok(h.seqs.every((s) => s > seq), `${h.file}: ${h.seqs}`);
      } finally {
        await db.engine.close();
      }
    } finally {
      removeDir(dir);
    }
  });

  it("carries pending erasures over a manifest rebuild (PULSE_RECOVERY=rebuild-manifest) and still purges them", async () => {
    const dir = tempDir();
    let db = await open(dir);
    try {
      await db.engine.write(readings("gina", 1, 5, 70));
      await db.engine.flush();
      await db.engine.delete({ userId: "gina" });
      await db.engine.write(readings("hank", 1, 5, 80)); // the flush at close covers the DELETE's segment
      await db.engine.close();
      db = await open(dir, [], { recovery: "rebuild-manifest" });
      assert.equal(db.engine.tombstones.size, 1);
      assert.equal(await answer(db.engine, "gina"), "[]");
      await db.engine.purger.run();
      const after = await scanForUser(dir, { userId: "gina" });
      assert.deepEqual(after.hits, []);
      assert.deepEqual(after.tombstoneRecords, []);
      assert.equal(JSON.parse(await answer(db.engine, "hank")).length, 5);
    } finally {
      await db.engine.close();
      removeDir(dir);
    }
  });

  it("runs when the oldest erasure is due (a quarter of the deadline, injected clock)", async () => {
    const dir = tempDir();
    let clock = DAY0 + 10 * D;
    const db = await open(dir, [], { erasureDeadlineMs: 4 * H }, () => clock);
    try {
      await db.engine.write(readings("frank", 1, 5, 70));
      await db.engine.delete({ userId: "frank" });
      clock += H - 1;
      assert.equal(await db.engine.purger.maybeRun(), undefined);
      db.engine.refreshGauges();
      assert.match(await db.engine.metrics.registry.metrics(), /pulsedb_erasure_oldest_pending_age_seconds 3599.999/);
      clock += 1;
      await db.engine.lifecyclePass();
      assert.equal(db.engine.tombstones.size, 0);
      const after = await scanForUser(dir, { userId: "frank" });
      assert.deepEqual(after.hits, []);
      assert.deepEqual(after.tombstoneRecords, []);
    } finally {
      await db.engine.close();
      removeDir(dir);
    }
  });
});
