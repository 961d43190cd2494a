/**
 * How the engine's write errors reach HTTP: a batch too large for one WAL record is the client's
 * (413); an internal invariant violation in the WAL is ours (500), never a 413 (issue 11, item 8).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { TooLargeError } from "../src/engine.ts";
import { createApp } from "../src/http/app.ts";
import { silentLogger } from "../src/ops/logger.ts";
import { reading, withEngine } from "./support/harness.ts";

const LONG_ID = "x".repeat(127) + "Z";

describe("engine write errors", () => {
  it("a batch over the WAL's record limit is a TooLargeError and stores nothing", async () => {
    await withEngine({ memoryBudgetBytes: 1 << 30 }, async (engine) => {
      const huge = Array.from({ length: 250_000 }, (_, i) => reading({ userId: LONG_ID, deviceId: LONG_ID, ts: i }));
      await assert.rejects(engine.write(huge), TooLargeError);
      assert.equal(engine.stats().memtableRows, 0);
    });
  });

  it("a non-increasing sequence number (a bug) is not a TooLargeError, and HTTP answers 500, not 413", async () => {
    await withEngine({}, async (engine) => {
      await engine.write([reading()]);
      // Break the invariant the WAL checks: hand out a sequence number already used.
      (engine as unknown as { nextSeq: number }).nextSeq = 1;
      const err = await engine.write([reading({ heartRate: 80 })]).then(() => undefined, (e) => e);
      assert.ok(err instanceof Error, "the write fails");
      assert.ok(!(err instanceof TooLargeError), `not a client error: ${err}`);
      (engine as unknown as { nextSeq: number }).nextSeq = 1;
      const app = createApp({ engine, config: engine.config, log: silentLogger });
      const res = await app.request("/metrics/heart-rate", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          user_id: "user_1",
          device_id: "device_a",
          timestamp: "2024-01-15T10:00:00Z",
          heart_rate: 70,
        }),
      });
      assert.equal(res.status, 500);
      await res.body?.cancel();
    });
  });
});

describe("query gate", () => {
  it("computes at most PULSE_QUERY_CONCURRENCY queries at once; the others wait their turn", async () => {
    await withEngine({ queryConcurrency: 2 }, async (engine) => {
      let active = 0;
      let most = 0;
      const gates: Array<() => void> = [];
      (engine as unknown as { queryNow: () => Promise<unknown> }).queryNow = async () => {
        active++;
        most = Math.max(most, active);
        await new Promise<void>((resolve) => gates.push(resolve));
        active--;
        return { count: 0, json: "[]" };
      };
      const spec = { userId: "u", start: 0, end: 1, bucketMs: 60_000 };
      const all = Promise.all(Array.from({ length: 6 }, () => engine.queryJson(spec)));
      let released = 0;
      while (released < 6) {
        await new Promise((r) => setImmediate(r));
        const g = gates.shift();
        if (g) {
          assert.ok(active <= 2);
          g();
          released++;
        }
      }
      await all;
      assert.equal(most, 2);
    });
  });
});
