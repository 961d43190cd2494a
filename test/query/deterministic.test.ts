/**
 * Deterministic, exact answers (property): random histories with duplicates, corrections and late
 * data, ingested several ways (single writes, batches, JSON over HTTP, Arrow over HTTP, and in a
 * shuffled arrival order that keeps each identity's writes in order, and in time order, which skips
 * de-duplication where the sources are provably disjoint), answer byte for byte the same
 * as a model that computes the exact mean in BigInt, in every storage state: memtable only, fresh
 * runs plus memtable, fresh runs, compacted runs, and after a restart.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as arrow from "apache-arrow";
import fc from "fast-check";
import { createApp } from "../../src/http/app.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { Compactor } from "../../src/storage/compactor.ts";
import type { Reading } from "../../src/reading.ts";
import { toMicroBpm } from "../../src/reading.ts";
import { fromHundredths, meanHundredths } from "../../src/query/round.ts";
import type { QuerySpec } from "../../src/query/query.ts";
import type { Engine } from "../../src/engine.ts";
import { DAY0, openTestDb, removeDir, tempDir } from "../support/harness.ts";

const DEVICES = ["device_a", "device_b", "zz"];
const RANK = new Map([["device_a", 0], ["device_b", 1]]);
const BUCKETS = [10_000, 60_000, 300_000, 3_600_000, 86_400_000];
const RANGES: Array<[number, number]> = [
  [DAY0 - 86_400_000, DAY0 + 2 * 86_400_000], // everything
  [DAY0 + 7_001, DAY0 + 86_400_000 + 3_599_999], // unaligned bounds, across midnight
];

/** The answer the contract asks for, computed from the history directly. */
function model(history: readonly Reading[], spec: QuerySpec): string {
  const last = new Map<string, Reading>();
  for (const r of history) last.set(`${r.userId}|${r.deviceId}|${r.ts}`, r);
  const groups = new Map<number, Map<string, { n: bigint; sum: bigint }>>();
  for (const r of last.values()) {
    if (r.userId !== spec.userId || r.ts < spec.start || r.ts >= spec.end) continue;
    if (spec.deviceId !== undefined && r.deviceId !== spec.deviceId) continue;
    const bucket = r.ts - (r.ts % spec.bucketMs);
    const devs = groups.get(bucket) ?? new Map();
    groups.set(bucket, devs);
    const g = devs.get(r.deviceId) ?? { n: 0n, sum: 0n };
    devs.set(r.deviceId, g);
    g.n += 1n;
    g.sum += BigInt(toMicroBpm(r.heartRate));
  }
  const rank = (d: string) => RANK.get(d) ?? RANK.size;
  const points = [...groups.keys()].sort((a, b) => a - b).map((bucket) => {
    const [device, g] = [...groups.get(bucket)!].sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : 1))[0];
    return {
      timestamp: new Date(bucket).toISOString().replace(".000Z", "Z"),
      heart_rate: fromHundredths(Number(meanHundredths(g.sum, g.n))),
      device_id: device,
    };
  });
  return JSON.stringify(points);
}

/** A heart rate with up to 7 decimals, sometimes on a tie of the 2-decimal rounding. */
const heartRate = fc.oneof(
  fc.integer({ min: 30_000, max: 220_000 }).map((m) => m / 1000),
  fc.integer({ min: 3_000, max: 21_999 }).map((m) => m / 100 + 0.005), // ties at the 3rd decimal, all <= 220
  fc.double({ min: 30, max: 220, noNaN: true }),
);

const writeArb = fc.record({
  userId: fc.constantFrom("u", "v"),
  deviceId: fc.constantFrom(...DEVICES),
  // Two days and a few minutes: seconds apart so that minutes and buckets fill and collide.
  ts: fc.oneof(
    fc.integer({ min: 0, max: 400 }).map((s) => DAY0 + s * 1000),
    fc.integer({ min: 0, max: 2 * 86_400 - 1 }).map((s) => DAY0 + s * 1000),
    fc.integer({ min: 86_000, max: 86_800 }).map((s) => DAY0 + s * 1000 + 17),
  ),
  heartRate,
});

const historyArb = fc.array(writeArb, { minLength: 1, maxLength: 120 }).chain((base) =>
  // corrections and duplicates: copies of earlier identities, with the same or a new value
  fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.option(heartRate, { nil: undefined })), { maxLength: 60 })
    .map((copies) => [...base, ...copies.map(([i, hr]) => ({ ...base[i], heartRate: hr ?? base[i].heartRate }))])
);

/** A different arrival order that keeps the writes of each identity in their order (same outcome). */
function interleave(history: readonly Reading[], seed: number): Reading[] {
  let x = seed || 1;
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const keys = history.map(() => rnd());
  const byId = new Map<string, number[]>();
  history.forEach((r, i) => {
    const k = `${r.userId}|${r.deviceId}|${r.ts}`;
    byId.set(k, [...(byId.get(k) ?? []), i]);
  });
  for (const idx of byId.values()) {
    const sorted = idx.map((i) => keys[i]).sort((a, b) => a - b);
    idx.forEach((i, j) => (keys[i] = sorted[j]));
  }
  return history.map((r, i) => ({ r, k: keys[i] })).sort((a, b) => a.k - b.k).map((e) => e.r);
}

type Way = "singles" | "batches" | "json" | "arrow" | "shuffled" | "in time order";
const WAYS: Way[] = ["singles", "batches", "json", "arrow", "shuffled", "in time order"];

async function ingest(engine: Engine, way: Way, writes: readonly Reading[], seed: number): Promise<void> {
  if (writes.length === 0) return;
  const app = createApp({ engine, config: engine.config, log: silentLogger });
  const post = async (body: BodyInit, type: string) => {
    const res = await app.request("/metrics/heart-rate", { method: "POST", body, headers: { "content-type": type } });
    assert.equal(res.status, 200, await res.text());
  };
  if (way === "singles") { for (const r of writes) await engine.write([r]); }
  else if (way === "shuffled") { for (const r of interleave(writes, seed)) await engine.write([r]); }
  else if (way === "batches") {
    for (let i = 0; i < writes.length; i += 1 + (seed % 17)) await engine.write(writes.slice(i, i + 1 + (seed % 17)));
  } else if (way === "json") {
    const body = writes.map((r) => ({
      user_id: r.userId,
      device_id: r.deviceId,
      timestamp: new Date(r.ts).toISOString(),
      heart_rate: r.heartRate,
    }));
    await post(JSON.stringify(body), "application/json");
  } else {
    const table = new arrow.Table({
      user_id: arrow.vectorFromArray(writes.map((r) => r.userId), new arrow.Utf8()),
      device_id: arrow.vectorFromArray(writes.map((r) => r.deviceId), new arrow.Utf8()),
      timestamp: arrow.vectorFromArray(writes.map((r) => r.ts), new arrow.Float64()),
      heart_rate: arrow.vectorFromArray(writes.map((r) => r.heartRate), new arrow.Float64()),
    });
    const bytes = arrow.tableToIPC(table, "stream");
    await post(new Blob([bytes as Uint8Array<ArrayBuffer>]), "application/vnd.apache.arrow.stream");
  }
}

/** Every query of the grid, answered by the engine, checked against the model. */
async function checkAll(engine: Engine, history: readonly Reading[], label: string): Promise<void> {
  for (const [start, end] of RANGES) {
    for (const bucketMs of BUCKETS) {
      for (const deviceId of [undefined, "device_b"]) {
        const spec: QuerySpec = { userId: "u", start, end, bucketMs, ...(deviceId ? { deviceId } : {}) };
        const got = (await engine.queryJson(spec)).json;
        assert.equal(got, model(history, spec), `${label}: ${JSON.stringify(spec)}`);
      }
    }
  }
}

describe("Answers are exact and do not depend on how or where the readings are stored", () => {
  it("match the exact model byte for byte, for every ingest way and storage state (property)", async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, fc.nat({ max: 1000 }), async (history, seed) => {
        const cut = Math.floor(history.length / 2);
        for (const way of WAYS) {
          const dir = tempDir();
          let { engine } = await openTestDb(dir);
          try {
            await ingest(engine, way, history.slice(0, cut), seed);
            await checkAll(engine, history.slice(0, cut), `${way}, memtable`);
            await engine.flush();
            await ingest(engine, way, history.slice(cut), seed);
            await checkAll(engine, history, `${way}, runs + memtable`);
            await engine.flush();
            await checkAll(engine, history, `${way}, fresh runs`);
            await new Compactor(engine, { trigger: 2, settleMs: 0 }).runUntilIdle();
            await checkAll(engine, history, `${way}, compacted`);
            await engine.close();
            engine = (await openTestDb(dir)).engine;
            await checkAll(engine, history, `${way}, after restart`);
          } finally {
            await engine.close();
            removeDir(dir);
          }
        }
      }),
      { numRuns: Number(process.env.PULSE_PROPERTY_RUNS ?? 3), endOnFailure: true },
    );
  });
});
