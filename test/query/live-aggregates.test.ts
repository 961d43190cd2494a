/**
 * Live data: readings that arrive in order are answered from the memtable's per-minute aggregates
 * (and its rows for the partial minutes at the range's ends); the answer is byte-identical to the
 * same readings' answer once flushed and compacted, and a late correction switches back to rows.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Engine } from "../../src/engine.ts";
import type { Memtable } from "../../src/storage/memtable.ts";
import { Compactor } from "../../src/storage/compactor.ts";
import { DAY0, withEngine } from "../support/harness.ts";

const SPECS = [60_000, 300_000, 3_600_000, 86_400_000].flatMap((bucketMs) =>
  [[DAY0, DAY0 + 86_400_000], [DAY0 + 1_234, DAY0 + 50_000_321]].map(([start, end]) => ({
    userId: "u",
    start,
    end,
    bucketMs,
  }))
);

async function answers(engine: Engine): Promise<string[]> {
  const out: string[] = [];
  for (const spec of SPECS) out.push((await engine.queryJson(spec)).json);
  return out;
}

describe("Live aggregates", () => {
  it("answer in-order data exactly as its runs do, and give way to rows after a correction", async () => {
    await withEngine({ memtableRows: 1_000_000 }, async (engine) => {
      const readings = [];
      for (let s = 0; s < 86_400; s += 3) {
        const ts = DAY0 + s * 1000;
        readings.push({ userId: "u", deviceId: "device_b", ts, heartRate: 50 + (s % 1013) / 9 });
        if (s % 120 < 60) readings.push({ userId: "u", deviceId: "device_a", ts: ts + 1, heartRate: 61.005 });
      }
      for (let i = 0; i < readings.length; i += 5_000) await engine.write(readings.slice(i, i + 5_000));
      const active = (engine as unknown as { active: Memtable }).active;
      assert.equal(active.userSpan("u")!.mayRepeat, false, "in-order data keeps the aggregates");
      assert.ok(active.minuteFrame("u", DAY0, DAY0 + 86_400_000)!.height > 1000);
      const live = await answers(engine);
      // A correction of an early reading: the memtable now reads rows with de-duplication.
      await engine.write([{ userId: "u", deviceId: "device_a", ts: DAY0 + 3_001, heartRate: 200 }]);
      assert.equal(active.minuteFrame("u", DAY0, DAY0 + 86_400_000), undefined);
      const corrected = await answers(engine);
      assert.notDeepEqual(corrected, live);
      await engine.flush();
      await new Compactor(engine, { trigger: 2, settleMs: 0 }).runUntilIdle();
      assert.deepEqual(await answers(engine), corrected);
    });
  });
});
