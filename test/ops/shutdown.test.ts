/**
 * SIGTERM under concurrent writes (issue 11, item 4): every request answered during shutdown is a
 * 200 (its reading is durable: served after a restart) or a 503 with Retry-After (nothing stored);
 * never a 500. Connections refused or closed before an answer carry no answer and are allowed.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createApp } from "../../src/http/app.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { removeDir, tempDir, testApp } from "../support/harness.ts";
import { type Daemon, postJson, startDaemon } from "../support/daemon.ts";

const CLIENTS = 32;

function rd(client: number, n: number): Record<string, unknown> {
  return {
    user_id: `shut_${client}`,
    device_id: "device_a",
    timestamp: new Date(Date.UTC(2024, 0, 15) + n * 1000).toISOString(),
    heart_rate: 60 + (n % 100),
  };
}

async function daemonBase(d: Daemon): Promise<string> {
  const base = (await d.waitFor((l) => l.msg === "listening")).url as string;
  await d.waitFor((l) => l.msg === "ready");
  return base;
}

describe("SIGTERM under concurrent writes", () => {
  it("answers every request 200 (durable) or 503 + Retry-After, never 500", { timeout: 180_000 }, async () => {
    const dir = tempDir();
    const d = startDaemon({ PULSE_DATA_DIR: dir, PULSE_LOG_LEVEL: "info" });
    const statuses = new Map<number, number>();
    const bad: string[] = [];
    const acked: Array<[number, number]> = [];
    let sent = 0;
    let signalled = false;
    try {
      const base = await daemonBase(d);
      let stop = false;
      const client = async (c: number) => {
        for (let n = 0; !stop; n++) {
          const batch = n % 2 === 0; // singles and batches
          const body = batch ? Array.from({ length: 50 }, (_, i) => rd(c, n * 100 + i)) : rd(c, n * 100);
          let res: Response;
          try {
            res = await postJson(base, body);
          } catch {
            if (signalled) return; // refused or cut after the signal: no answer
            throw new Error("request failed before SIGTERM");
          }
          const text = await res.text().catch(() => "");
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status === 200) acked.push([c, n]);
          else if (res.status !== 503 || res.headers.get("retry-after") === null) bad.push(`${res.status} ${text}`);
          if (++sent === 400) {
            signalled = true;
            d.kill("SIGTERM");
          }
        }
      };
      const clients = Array.from({ length: CLIENTS }, (_, c) => client(c));
      await d.exited;
      stop = true;
      await Promise.all(clients);
      assert.ok(signalled, "SIGTERM was sent while writes were in flight");
      assert.deepEqual(bad, [], `answers other than 200 / 503 + Retry-After: ${JSON.stringify([...statuses])}`);
      assert.ok(d.lines.some((l) => l.msg === "closed"), d.stderr());
      assert.ok(!d.lines.some((l) => l.msg === "unhandled error"), "no request failed inside the server");
    } finally {
      d.kill("SIGKILL");
      await d.exited;
    }
    // Every acknowledged reading is durable.
    const again = startDaemon({ PULSE_DATA_DIR: dir, PULSE_LOG_LEVEL: "info" });
    try {
      const base = await daemonBase(again);
      const byClient = new Map<number, number[]>();
      for (const [c, n] of acked) byClient.set(c, [...(byClient.get(c) ?? []), n]);
      for (const [c, ns] of byClient) {
        const res = await fetch(
          `${base}/metrics/heart-rate?user_id=shut_${c}&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z&bucket=1m`,
        );
        assert.equal(res.status, 200);
        const body = (await res.json()) as { data: Array<{ timestamp: string }> };
        const have = new Set(body.data.map((p) => p.timestamp));
        for (const n of ns) {
          const minute = Math.floor((n * 100 * 1000) / 60_000) * 60_000;
          const ts = new Date(Date.UTC(2024, 0, 15) + minute).toISOString().replace(".000Z", "Z");
          assert.ok(have.has(ts), `acknowledged reading ${c}/${n} (${ts}) is served after the restart`);
        }
      }
    } finally {
      again.kill("SIGTERM");
      await again.exited;
      again.kill("SIGKILL");
      removeDir(dir);
    }
  });
});

describe("a write that fails while the engine closes", () => {
  it("answers 503 + Retry-After (not stored, retry), not 500", async () => {
    const t = await testApp();
    try {
      const engine = t.engine;
      (engine as unknown as { closing: boolean }).closing = true;
      engine.write = () => Promise.reject(new Error("wal: append after close"));
      const app = createApp({ engine, config: engine.config, log: silentLogger });
      const res = await app.request("/metrics/heart-rate", {
        method: "POST",
        body: JSON.stringify(rd(0, 0)),
        headers: { "content-type": "application/json" },
      });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("retry-after"), "1");
      await res.body?.cancel();
      (engine as unknown as { closing: boolean }).closing = false;
    } finally {
      await t.close();
    }
  });
});
