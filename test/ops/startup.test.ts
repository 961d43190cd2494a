/**
 * The start-up window (issue 11, item 1): from the first 200 of /health, data requests are served;
 * one that arrives while the WAL is replayed waits for the replay instead of answering 503.
 * /ready stays 503 until the engine is open.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { testConfig } from "../../src/ops/config.ts";
import type { Engine } from "../../src/engine.ts";
import { createApp } from "../../src/http/app.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import { openPulseDb, type PulseDb } from "../../src/pulsedb.ts";
import { removeDir, tempDir } from "../support/harness.ts";
import { postJson, startDaemon } from "../support/daemon.ts";

const ROUTE = "/metrics/heart-rate";
const QUERY = `${ROUTE}?user_id=boot_user&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z&bucket=1m`;

function rd(i: number, hr = 70): Record<string, unknown> {
  return {
    user_id: "boot_user",
    device_id: "device_a",
    timestamp: new Date(Date.UTC(2024, 0, 15) + i * 1000).toISOString(),
    heart_rate: hr,
  };
}

describe("start-up window", () => {
  it("a POST, a GET and a DELETE that arrive while the engine opens wait for it and are served; /ready stays 503", async () => {
    const dir = tempDir();
    const config = testConfig({ dataDir: dir, compaction: false });
    const metrics = new Metrics();
    let engine: Engine | undefined;
    let opened!: () => void;
    const opening = new Promise<void>((resolve) => (opened = resolve));
    const app = createApp({ engine: () => engine, opening, metrics, config, log: silentLogger });
    let db: PulseDb | undefined;
    try {
      assert.equal((await app.request("/health")).status, 200);
      const settled: string[] = [];
      const post = Promise.resolve(app.request(ROUTE, {
        method: "POST",
        body: JSON.stringify(rd(1)),
        headers: { "content-type": "application/json" },
      })).then((r) => (settled.push("post"), r));
      const get = Promise.resolve(app.request(QUERY)).then((r) => (settled.push("get"), r));
      const del = Promise.resolve(app.request(`${ROUTE}?user_id=someone_else`, { method: "DELETE" }))
        .then((r) => (settled.push("delete"), r));
      assert.equal((await app.request("/ready")).status, 503, "not ready while opening");
      // The open is blocked: let every pending callback run, and the requests still wait.
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(settled, [], "data requests wait for the open instead of answering");

      db = await openPulseDb(config, silentLogger, metrics);
      engine = db.engine;
      opened();
      const [p, g, d] = await Promise.all([post, get, del]);
      assert.equal(p.status, 200, await p.clone().text());
      assert.equal(d.status, 200, await d.clone().text());
      await d.body?.cancel();
      assert.ok([200, 404].includes(g.status), `GET answered ${g.status}`);
      await p.body?.cancel();
      await g.body?.cancel();
      assert.equal((await app.request("/ready")).status, 200);
    } finally {
      await db?.engine.close();
      removeDir(dir);
    }
  });

  it("a data request waits at most startupWaitMs, then answers 503 with Retry-After", async () => {
    const dir = tempDir();
    const config = testConfig({ dataDir: dir, compaction: false });
    const never = new Promise<void>(() => {});
    const app = createApp({
      engine: () => undefined,
      opening: never,
      startupWaitMs: 20,
      metrics: new Metrics(),
      config,
      log: silentLogger,
    });
    try {
      const res = await app.request(QUERY);
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("retry-after"), "1");
      await res.body?.cancel();
    } finally {
      removeDir(dir);
    }
  });

  it("after kill -9 with readings to replay, a client that waits for /health then writes and reads succeeds", {
    timeout: 120_000,
  }, async () => {
    const dir = tempDir();
    const first = startDaemon({ PULSE_DATA_DIR: dir });
    try {
      const base = (await first.waitFor((l) => l.msg === "listening")).url as string;
      await first.waitFor((l) => l.msg === "ready");
      for (let b = 0; b < 12; b++) {
        const batch = Array.from({ length: 5000 }, (_, i) => rd(b * 5000 + i, 60 + (i % 50)));
        const res = await postJson(base, batch);
        assert.equal(res.status, 200);
        await res.body?.cancel();
      }
    } finally {
      first.kill("SIGKILL");
      await first.exited;
    }
    const second = startDaemon({ PULSE_DATA_DIR: dir });
    try {
      const base = (await second.waitFor((l) => l.msg === "listening")).url as string;
      for (;;) {
        const h = await fetch(`${base}/health`).catch(() => undefined);
        await h?.body?.cancel();
        if (h?.status === 200) break;
      }
      const post = await postJson(base, rd(70_000, 99));
      assert.equal(post.status, 200, await post.clone().text());
      await post.body?.cancel();
      const get = await fetch(`${base}${QUERY}`);
      assert.equal(get.status, 200, await get.clone().text());
      const body = (await get.json()) as { data: Array<{ timestamp: string; heart_rate: number }> };
      assert.ok(body.data.length > 1000, "the replayed readings are served");
      assert.equal(body.data.find((p) => p.timestamp === "2024-01-15T19:26:00Z")?.heart_rate, 99);
    } finally {
      second.kill("SIGTERM");
      await second.exited;
      second.kill("SIGKILL");
      removeDir(dir);
    }
  });
});
