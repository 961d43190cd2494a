/**
 * Memtable: stored Polars frames stay bounded however queries and writes interleave; the per-user
 * span and "may repeat" flag follow what was appended.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import pl from "nodejs-polars";
import { MAX_FRAMES, Memtable } from "../../src/storage/memtable.ts";
import { DAY0, waitFor } from "../support/harness.ts";

describe("Memtable frames", () => {
  it("do not grow with interleaved writes and queries, and hold every row once", async () => {
    const m = new Memtable(1);
    let seq = 1;
    for (let i = 0; i < 200; i++) {
      m.append([{ userId: "u", deviceId: "device_a", ts: DAY0 + i * 1000, heartRate: 70 + (i % 10) }], seq++);
      m.frames(); // a query: converts the tail for itself only
    }
    assert.equal(m.frameCount, 0, "queries store no frames");
    for (let i = 200; i < 400; i++) {
      m.append([{ userId: "u", deviceId: "device_a", ts: DAY0 + i * 1000, heartRate: 70 }], seq++);
      m.frameTail(); // the background conversion, here after every write (the worst case)
    }
    await waitFor(() => Promise.resolve(m.frameCount <= MAX_FRAMES));
    const all = pl.concat(m.frames());
    assert.equal(all.height, 400);
    assert.deepEqual(all.getColumn("seq").toArray(), Array.from({ length: 400 }, (_, i) => i + 1));
    assert.equal(all.getColumn("heart_rate").toArray()[3], 73_000_000, "heart rates are micro-bpm");
  });
});

describe("Memtable.userSpan", () => {
  it("tracks each user's span and flags out-of-order or repeated identities", () => {
    const m = new Memtable(1);
    m.append([
      { userId: "u", deviceId: "device_a", ts: DAY0 + 5_000, heartRate: 70 },
      { userId: "u", deviceId: "device_b", ts: DAY0 + 1_000, heartRate: 70 },
      { userId: "v", deviceId: "device_a", ts: DAY0, heartRate: 70 },
    ], 1);
    assert.deepEqual(m.userSpan("u"), { minTs: DAY0 + 1_000, maxTs: DAY0 + 5_000, mayRepeat: false });
    assert.equal(m.userSpan("nobody"), undefined);
    m.append([{ userId: "v", deviceId: "device_a", ts: DAY0, heartRate: 71 }], 4); // a correction
    assert.equal(m.userSpan("v")!.mayRepeat, true);
    assert.equal(m.userSpan("u")!.mayRepeat, false);
  });
});
