/**
 * Disk errors: a WAL that cannot be written or synced refuses writes with 503 and acknowledges
 * nothing; reads keep working; writes resume when the disk does. A flush or compaction that fails
 * is retried and never loses the data it was moving.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { testConfig } from "../../src/ops/config.ts";
import { Compactor } from "../../src/storage/compactor.ts";
import { createApp } from "../../src/http/app.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import { openPulseDb } from "../../src/pulsedb.ts";
import { nodeWalFs, type WalFs } from "../../src/storage/wal/wal.ts";
import { DAY0, openTestDb, q, reading, removeDir, tempDir, waitFor, withEngine } from "../support/harness.ts";

/** A WAL file system whose writes or syncs fail with `code` while `fault.on` is set. */
function faultyFs(fault: { on: "write" | "sync" | undefined; code: string }): WalFs {
  const fail = () => Promise.reject(Object.assign(new Error(`injected ${fault.code}`), { code: fault.code }));
  return {
    ...nodeWalFs,
    write: (...args) => (fault.on === "write" ? fail() : nodeWalFs.write(...args)),
    fdatasync: (fd) => (fault.on === "sync" ? fail() : nodeWalFs.fdatasync(fd)),
  };
}

const body = (hr: number, minute = 0) =>
  JSON.stringify({
    user_id: "user_1",
    device_id: "device_a",
    timestamp: new Date(DAY0 + 10 * 3_600_000 + minute * 60_000).toISOString(),
    heart_rate: hr,
  });
const QUERY = `/metrics/heart-rate?user_id=user_1&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z`;

for (const [on, code] of [["write", "ENOSPC"], ["sync", "EIO"]] as const) {
  describe(`A WAL ${on} failing with ${code}`, () => {
    it("answers 503 with Retry-After, keeps serving reads, stores nothing, and recovers when the disk does", async () => {
      const dir = tempDir();
      const fault: { on: "write" | "sync" | undefined; code: string } = { on: undefined, code };
      const { engine } = await openPulseDb(
        testConfig({ dataDir: dir, compaction: false }),
        silentLogger,
        new Metrics(),
        { walFs: faultyFs(fault) },
      );
      const app = createApp({ engine, config: engine.config, log: silentLogger });
      const post = (b: string) =>
        app.request("/metrics/heart-rate", {
          method: "POST",
          body: b,
          headers: { "content-type": "application/json" },
        });
      try {
        assert.equal((await post(body(60))).status, 200);
        fault.on = on;
        const refused = await post(body(99, 1));
        assert.equal(refused.status, 503);
        assert.equal(refused.headers.get("content-type"), "application/problem+json");
        assert.ok(refused.headers.get("retry-after"));
        assert.match((await refused.json()).detail, new RegExp(code));
        // reads keep working and do not show the refused reading
        const read = await app.request(QUERY);
        assert.equal(read.status, 200);
        assert.deepEqual((await read.json()).data.map((p: { heart_rate: number }) => p.heart_rate), [60]);
        // the disk comes back
        fault.on = undefined;
        assert.equal((await post(body(70, 2))).status, 200);
        const after = await (await app.request(QUERY)).json();
        assert.deepEqual(after.data.map((p: { heart_rate: number }) => p.heart_rate), [60, 70]);
      } finally {
        await engine.close();
      }
      // after a restart: the acknowledged readings, and not the refused one
      const { engine: again } = await openTestDb(dir);
      try {
        assert.deepEqual((await q(again, { userId: "user_1" })).map((p) => p.heart_rate), [60, 70]);
      } finally {
        await again.close();
        removeDir(dir);
      }
    });
  });
}

describe("A failing flush", () => {
  it("is retried until it succeeds, and the data stays readable meanwhile", async () => {
    await withEngine({}, async (engine, dir) => {
      await engine.write([reading({ heartRate: 61 })]);
      // A file where the day directory must go makes every flush attempt fail.
      fs.mkdirSync(path.join(dir, "runs"), { recursive: true });
      const blocker = path.join(dir, "runs", "day=2024-01-15");
      fs.writeFileSync(blocker, "not a directory");
      const flushed = engine.flush();
      // While it fails, the reading is still answered from the memtable.
      await waitFor(() => engine.metrics.flushFailures.get().then((m) => m.values[0]?.value >= 1));
      assert.equal((await q(engine))[0].heart_rate, 61);
      fs.rmSync(blocker);
      await flushed;
      assert.equal(engine.stats().runs.length, 1);
      assert.equal((await q(engine))[0].heart_rate, 61);
    });
  });
});

describe("A failing compaction", () => {
  it("leaves its inputs in place, and a later attempt merges them without loss", async () => {
    await withEngine({}, async (engine, dir) => {
      for (const hr of [60, 62, 64]) {
        await engine.write([reading({ heartRate: hr, ts: DAY0 + hr * 1000 })]);
        await engine.flush();
      }
      const before = await q(engine, { bucketMs: 86_400_000 });
      // The compaction output's temp path is taken by a directory: the sink fails.
      const nextId = engine.stats().runs.reduce((m, r) => Math.max(m, r.id), 0) + 1;
      const dayDir = path.join(dir, "runs", "day=2024-01-15");
      const blocker = path.join(dayDir, `.tmp-L1-${String(nextId).padStart(8, "0")}.parquet`);
      fs.mkdirSync(path.join(blocker, "x"), { recursive: true });
      const compactor = new Compactor(engine, { trigger: 3, settleMs: 0 });
      await assert.rejects(compactor.runUntilIdle());
      assert.equal(engine.stats().runs.length, 3, "inputs untouched");
      assert.deepEqual(await q(engine, { bucketMs: 86_400_000 }), before);
      assert.deepEqual(
        fs.readdirSync(dayDir).filter((f) => f.startsWith(".tmp-")),
        [],
        "the failed attempt cleaned up after itself",
      );
      await new Compactor(engine, { trigger: 3, settleMs: 0 }).runUntilIdle();
      assert.equal(engine.stats().runs.length, 1);
      assert.deepEqual(await q(engine, { bucketMs: 86_400_000 }), before);
    });
  });
});

describe("A WAL that cannot even cut back a failed write", () => {
  it("moves to a fresh segment, and the engine keeps sealing, flushing and recovering without loss", async () => {
    const dir = tempDir();
    const fault = { on: false };
    const fail = () => Promise.reject(Object.assign(new Error("injected EIO"), { code: "EIO" }));
    const walFs: WalFs = {
      ...nodeWalFs,
      fdatasync: (fd) => (fault.on ? fail() : nodeWalFs.fdatasync(fd)),
      ftruncate: (fd, n) => (fault.on ? fail() : nodeWalFs.ftruncate(fd, n)),
    };
    const { engine } = await openPulseDb(testConfig({ dataDir: dir, compaction: false }), silentLogger, new Metrics(), {
      walFs,
    });
    try {
      await engine.write([reading({ ts: DAY0 + 1000, heartRate: 60 })]);
      fault.on = true;
      await assert.rejects(engine.write([reading({ ts: DAY0 + 2000, heartRate: 200 })]));
      fault.on = false;
      await engine.write([reading({ ts: DAY0 + 3000, heartRate: 70 })]);
      await engine.flush(); // seals across the WAL's segment switch: must not throw
      await engine.write([reading({ ts: DAY0 + 4000, heartRate: 80 })]);
      assert.deepEqual((await q(engine, { bucketMs: 1000 })).map((p) => p.heart_rate), [60, 70, 80]);
    } finally {
      await engine.close();
    }
    const { engine: again } = await openTestDb(dir);
    try {
      assert.deepEqual((await q(again, { bucketMs: 1000 })).map((p) => p.heart_rate), [60, 70, 80]);
    } finally {
      await again.close();
      removeDir(dir);
    }
  });
});

describe("A DELETE while the WAL cannot be synced", () => {
  it("answers 503, hides nothing, and takes effect once retried on a working disk", async () => {
    const dir = tempDir();
    const fault: { on: "write" | "sync" | undefined; code: string } = { on: undefined, code: "EIO" };
    const { engine } = await openPulseDb(
      testConfig({ dataDir: dir, compaction: false }),
      silentLogger,
      new Metrics(),
      { walFs: faultyFs(fault) },
    );
    const app = createApp({ engine, config: engine.config, log: silentLogger });
    const del = () => app.request("/metrics/heart-rate?user_id=user_1", { method: "DELETE" });
    try {
      await engine.write([reading({ heartRate: 61 })]);
      fault.on = "sync";
      const refused = await del();
      assert.equal(refused.status, 503);
      assert.ok(refused.headers.get("retry-after"));
      assert.equal(engine.tombstones.size, 0);
      assert.equal((await q(engine)).length, 1);
      fault.on = undefined;
      assert.equal((await del()).status, 200);
      assert.equal((await q(engine)).length, 0);
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });
});
