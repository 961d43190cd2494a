/**
 * PULSE_FSYNC=interval: after a failed background fdatasync the engine fails stop: every later
 * write answers 503 + Retry-After (nothing stored), /ready answers 503, and that lasts even when
 * the disk works again (a retried fdatasync may "succeed" after the kernel dropped the dirty
 * pages). A restart recovers (issue 11, item 9).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { testConfig } from "../../src/ops/config.ts";
import { WalWriteError } from "../../src/engine.ts";
import { createApp } from "../../src/http/app.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import { openPulseDb } from "../../src/pulsedb.ts";
import { nodeWalFs, type WalFs } from "../../src/storage/wal/wal.ts";
import { DAY0, openTestDb, q, reading, removeDir, tempDir, waitFor } from "../support/harness.ts";

const post = (app: ReturnType<typeof createApp>, hr: number, minute: number) =>
  app.request("/metrics/heart-rate", {
    method: "POST",
    body: JSON.stringify({
      user_id: "user_1",
      device_id: "device_a",
      timestamp: new Date(DAY0 + 10 * 3_600_000 + minute * 60_000).toISOString(),
      heart_rate: hr,
    }),
    headers: { "content-type": "application/json" },
  });

describe("PULSE_FSYNC=interval, a failed background fdatasync", () => {
  it("stops acknowledging writes (503 + Retry-After) and reports not ready until a restart", async () => {
    const dir = tempDir();
    const fault = { on: false };
    const walFs: WalFs = {
      ...nodeWalFs,
      fdatasync: (fd) =>
        fault.on ? Promise.reject(Object.assign(new Error("injected EIO"), { code: "EIO" })) : nodeWalFs.fdatasync(fd),
    };
    const { engine } = await openPulseDb(
      testConfig({ dataDir: dir, compaction: false, fsync: "interval", fsyncIntervalMs: 5 }),
      silentLogger,
      new Metrics(),
      { walFs },
    );
    const app = createApp({ engine, config: engine.config, log: silentLogger });
    try {
      assert.equal((await post(app, 60, 0)).status, 200);
      assert.equal((await app.request("/ready")).status, 200);
      fault.on = true;
      // Acknowledged after write(2), as interval mode does; its background sync then fails.
      assert.equal((await post(app, 61, 1)).status, 200);
      await waitFor(() => Promise.resolve(engine.failure() !== undefined));

      const refused = await post(app, 62, 2);
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("retry-after"), "1");
      await refused.body?.cancel();
      const ready = await app.request("/ready");
      assert.equal(ready.status, 503);
      assert.match(((await ready.json()) as { detail: string }).detail, /restart/);
      await assert.rejects(engine.write([reading({ heartRate: 63 })]), WalWriteError);

      fault.on = false; // the disk "recovers": the engine still refuses (fail-stop)
      const still = await post(app, 64, 4);
      assert.equal(still.status, 503);
      await still.body?.cancel();
      assert.equal((await app.request("/ready")).status, 503);
      assert.equal(
        (await q(engine)).map((p) => p.heart_rate).join(","),
        "60,61",
        "reads go on; nothing refused was stored",
      );
    } finally {
      await engine.close();
    }
    const again = await openTestDb(dir, { fsync: "interval" });
    try {
      assert.equal((await q(again.engine)).map((p) => p.heart_rate).join(","), "60,61");
      await again.engine.write([reading({ heartRate: 65, ts: DAY0 + 10 * 3_600_000 + 5 * 60_000 })]);
    } finally {
      await again.engine.close();
      removeDir(dir);
    }
  });
});
