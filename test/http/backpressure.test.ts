/**
 * Back-pressure: at the memtable memory budget, POST answers 503 with Retry-After and stores
 * nothing; acknowledged readings are unaffected; writes resume by themselves once flushing has
 * caught up.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DAY0, testApp, waitFor } from "../support/harness.ts";

describe("Back-pressure", () => {
  it("answers 503 with Retry-After at the memory budget, keeps what was acknowledged, and resumes by itself", async () => {
    // An empty memtable holds 32 KiB of columns; the budget lets it grow once, not twice.
    const t = await testApp({ memoryBudgetBytes: 48 * 1024, memtableRows: 1_000_000, cacheEntries: 0 });
    try {
      const post = (i: number) =>
        t.app.request("/metrics/heart-rate", {
          method: "POST",
          body: JSON.stringify({
            user_id: "bp",
            device_id: "device_a",
            timestamp: new Date(DAY0 + i * 1000).toISOString(),
            heart_rate: 60 + (i % 100),
          }),
          headers: { "content-type": "application/json" },
        });
      let acked = 0;
      let refused: Response | undefined;
      for (let i = 0; i < 5000 && !refused; i++) {
        const res = await post(i);
        if (res.status === 200) acked++;
        else refused = res;
      }
      assert.ok(refused, "the budget was never reached");
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("retry-after"), "1");
      assert.equal(refused.headers.get("content-type"), "application/problem+json");
      assert.ok(acked > 1024, `acknowledged ${acked} before the budget`);
      // Writes resume without any outside help: the refusal sealed the memtable and its flush frees
      // the budget. Bounded wait for that background flush.
      await waitFor(async () => (await post(acked)).status === 200);
      // Everything acknowledged is there, once: acked readings at 1 s apart, plus the resumed one.
      const res = await t.app.request(
        `/metrics/heart-rate?user_id=bp&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z&bucket=1d`,
      );
      const body = await res.json();
      const expectedMean = Array.from({ length: acked }, (_, i) => 60 + (i % 100)).reduce((s, v) => s + v, 0) / acked;
      // the resumed write re-used timestamp `acked` (a new identity), so the day holds acked + 1 readings
      const withResumed = (expectedMean * acked + (60 + (acked % 100))) / (acked + 1);
      assert.equal(body.data[0].heart_rate, Math.round(withResumed * 100) / 100);
      assert.ok((await t.engine.metrics.backpressure.get()).values[0].value >= 1, "the refusal is counted");
    } finally {
      await t.close();
    }
  });
});
