/**
 * Tombstones (right to erasure) below HTTP: the WAL record (type 2), the live set and its SQL
 * predicate, read-your-deletes across restarts and kill -9, and the property that answers after
 * deletions are byte-identical to those of a history that never held the deleted readings, in
 * every storage state (memtable, runs, compacted runs, after restart, after the purge).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import { encodeRecord, encodeTombstoneRecord, parseSegment, WAL_MAGIC } from "../../src/storage/wal/record.ts";
import { deletedRowSql, matches, type Tombstone, TombstoneSet } from "../../src/storage/tombstones.ts";
import { keepRowSql, tombstonesTouch } from "../../src/query/tombstone-mask.ts";
import { DAY0, openTestDb, q, reading, removeDir, tempDir } from "../support/harness.ts";
import { runScript } from "../support/child.ts";
import type { Engine, Erasure } from "../../src/engine.ts";
import type { PulseDb } from "../../src/pulsedb.ts";
import type { Reading } from "../../src/reading.ts";

const H = 3_600_000;

function segmentOf(...records: Uint8Array[]): Uint8Array {
  const magic = new TextEncoder().encode(WAL_MAGIC);
  const out = new Uint8Array(magic.length + records.reduce((s, r) => s + r.length, 0));
  out.set(magic, 0);
  let p = magic.length;
  for (const r of records) {
    out.set(r, p);
    p += r.length;
  }
  return out;
}

describe("WAL tombstone record (type 2)", () => {
  const cases: Array<[string, Omit<Tombstone, "segment">]> = [
    ["all time", { seq: 7, requestedAt: 1_700_000_000_123, userId: "user_1" }],
    ["one device", { seq: 8, requestedAt: 1, userId: "u", deviceId: "device_b" }],
    ["a range", { seq: 9, requestedAt: 2, userId: "u", start: DAY0, end: DAY0 + H }],
    ["device and range", { seq: 2 ** 40, requestedAt: 3, userId: "a".repeat(128), deviceId: "d", start: 0, end: 1 }],
  ];
  for (const [name, t] of cases) {
    it(`round-trips ${name}, between reading records`, () => {
      const seg = segmentOf(
        encodeRecord(1, [reading()]),
        encodeTombstoneRecord(t),
        encodeRecord(t.seq + 1, [reading({ heartRate: 99 })]),
      );
      const parsed = parseSegment(seg);
      assert.equal(parsed.bad, undefined);
      assert.equal(parsed.records.length, 3);
      assert.deepEqual(parsed.records[1].tombstone, t);
      assert.equal(parsed.records[1].firstSeq, t.seq);
      assert.deepEqual(parsed.records[1].readings, []);
      assert.equal(parsed.records[2].readings[0].heartRate, 99);
    });
  }

  it("a torn tombstone record at the end is a torn tail; a flipped byte is a checksum error", () => {
    const rec = encodeTombstoneRecord({ seq: 5, requestedAt: 0, userId: "u" });
    const torn = parseSegment(segmentOf(encodeRecord(1, [reading()]), rec.subarray(0, rec.length - 3)));
    assert.equal(torn.records.length, 1);
    assert.equal(torn.bad?.tail, true);
    const flipped = rec.slice();
    flipped[20] ^= 1;
    const bad = parseSegment(segmentOf(flipped));
    assert.match(bad.bad?.reason ?? "", /checksum/);
  });

  it("is group-committed with reading appends: one fdatasync covers both, replay returns both in order", async () => {
    const dir = tempDir();
    try {
      const { Wal } = await import("../../src/storage/wal/wal.ts");
      const { wal } = await Wal.open({ dir });
      const before = wal.stats().syncs;
      const segment = wal.currentSegment();
      const [, seg] = await Promise.all([
        wal.append(1, [reading()]),
        wal.appendTombstone({ seq: 2, requestedAt: 5, userId: "user_1" }),
        wal.append(3, [reading({ heartRate: 80 })]),
      ]);
      assert.equal(seg, segment);
      assert.equal(wal.stats().syncs - before, 1);
      assert.throws(() => wal.appendTombstone({ seq: 3, requestedAt: 5, userId: "u" }), RangeError);
      await wal.close();
      const reopened = await Wal.open({ dir });
      assert.deepEqual(reopened.batches.map((b) => [b.firstSeq, b.tombstone?.userId ?? b.readings.length]), [
        [1, 1],
        [2, "user_1"],
        [3, 1],
      ]);
      assert.equal(reopened.maxSeq, 3);
      await reopened.wal.close();
    } finally {
      removeDir(dir);
    }
  });

  it("refuses to encode a range with one end only", () => {
    assert.throws(() => encodeTombstoneRecord({ seq: 1, requestedAt: 0, userId: "u", start: 0 }), RangeError);
  });
});

describe("TombstoneSet and its predicates", () => {
  const t = (over: Partial<Tombstone>): Tombstone => ({ seq: 10, requestedAt: 0, userId: "u", segment: 1, ...over });

  const matchCases: Array<[string, Tombstone, [string, string, number, number], boolean]> = [
    ["same user, older seq", t({}), ["u", "d", 5, 9], true],
    ["same seq is not older", t({}), ["u", "d", 5, 10], false],
    ["newer seq", t({}), ["u", "d", 5, 11], false],
    ["other user", t({}), ["v", "d", 5, 9], false],
    ["device matches", t({ deviceId: "d" }), ["u", "d", 5, 9], true],
    ["device differs", t({ deviceId: "e" }), ["u", "d", 5, 9], false],
    ["inside range", t({ start: 5, end: 6 }), ["u", "d", 5, 9], true],
    ["at range end (half-open)", t({ start: 4, end: 5 }), ["u", "d", 5, 9], false],
  ];
  for (const [name, tomb, [u, d, ts, seq], want] of matchCases) {
    it(`matches(): ${name} -> ${want}; the SQL predicate agrees`, async () => {
      assert.equal(matches(tomb, u, d, ts, seq), want);
      const pl = (await import("nodejs-polars")).default;
      const df = pl.DataFrame({ user_id: [u], device_id: [d], ts: [ts], seq: [seq] });
      const sql = `SELECT COUNT(*) AS n FROM t WHERE ${
        deletedRowSql([tomb], { user: "user_id", device: "device_id", ts: "ts", seq: "seq" })
      }`;
      const n = Number((await pl.SQLContext({ t: df.lazy() }).execute(sql).collect()).getColumn("n").get(0));
      assert.equal(n, want ? 1 : 0);
    });
  }

  it("add is idempotent by seq; forUser, touches, retire, oldest and maxSeq follow", () => {
    const set = new TombstoneSet();
    set.add(t({ seq: 3, requestedAt: 50, start: 0, end: 10 }));
    set.add(t({ seq: 3, requestedAt: 50, start: 0, end: 10 }));
    set.add(t({ seq: 5, requestedAt: 40, userId: "v", deviceId: "d" }));
    assert.equal(set.size, 2);
    assert.equal(set.forUser("u").length, 1);
    assert.equal(set.touches("u", undefined, 9, 20), true);
    assert.equal(set.touches("u", undefined, 10, 20), false);
    assert.equal(set.touches("v", "e", 0, 1), false);
    assert.equal(set.touches("v", undefined, 0, 1), true);
    assert.equal(tombstonesTouch(set.forUser("v"), "v", "d", 0, 1), true);
    assert.equal(set.oldestRequestedAt(), 40);
    assert.equal(set.maxSeq(), 5);
    set.retire([5]);
    assert.deepEqual(set.all().map((x) => x.seq), [3]);
    assert.equal(set.oldestRequestedAt(), 50);
  });

  it("keepRowSql leaves out tombstones that cannot touch the query, and refuses ids it cannot splice", () => {
    assert.equal(keepRowSql([t({ start: 0, end: 5 })], { userId: "u", start: 5, end: 9 }), undefined);
    assert.equal(keepRowSql([t({ deviceId: "x" })], { userId: "u", deviceId: "y", start: 0, end: 9 }), undefined);
    assert.equal(keepRowSql([t({})], { userId: "u", start: 0, end: 9 }), "NOT ((seq < 10))");
    assert.throws(() => deletedRowSql([t({ userId: "u'; DROP" })], { device: "d", ts: "t", seq: "s" }));
  });
});

describe("Read-your-deletes across restarts and crashes", () => {
  it("a deletion holds after a clean restart, after a flush and restart, and the set comes back", async () => {
    const dir = tempDir();
    try {
      let { engine } = await openTestDb(dir);
      await engine.write([reading({ heartRate: 70 }), reading({ deviceId: "device_b", heartRate: 90 })]);
      await engine.delete({ userId: "user_1", deviceId: "device_a" });
      await engine.write([reading({ ts: DAY0 + 11 * H, heartRate: 71 })]);
      const want = await q(engine);
      assert.deepEqual(want.map((p) => p.heart_rate), [90, 71]);
      await engine.close();
      ({ engine } = await openTestDb(dir));
      assert.deepEqual(await q(engine), want);
      assert.equal(engine.tombstones.size, 1);
      // The restart flushed the WAL away: the tombstone now lives in the manifest.
      assert.equal(fs.readdirSync(path.join(dir, "wal")).filter((f) => f.endsWith(".log")).length, 1);
      await engine.close();
      ({ engine } = await openTestDb(dir));
      assert.deepEqual(await q(engine), want);
      // New writes are numbered above the tombstone: not masked.
      await engine.write([reading({ ts: DAY0 + 12 * H, heartRate: 72 })]);
      assert.deepEqual((await q(engine)).map((p) => p.heart_rate), [90, 71, 72]);
      await engine.close();
    } finally {
      removeDir(dir);
    }
  });

  it("a deletion acknowledged just before kill -9 holds after recovery (from the WAL)", async () => {
    const dir = tempDir();
    try {
      const child = runScript(`
        import { openPulseDb } from "./src/pulsedb.ts";
        import { testConfig } from "./src/ops/config.ts";
        import { silentLogger } from "./src/ops/logger.ts";
        const { engine } = await openPulseDb(testConfig({ dataDir: ${
        JSON.stringify(dir)
      }, compaction: false }), silentLogger);
        await engine.write([{ userId: "user_1", deviceId: "device_a", ts: ${DAY0 + 10 * H}, heartRate: 64 }]);
        await engine.flush();
        await engine.write([{ userId: "user_1", deviceId: "device_a", ts: ${DAY0 + 11 * H}, heartRate: 65 }]);
        await engine.delete({ userId: "user_1" });
        await engine.write([{ userId: "user_1", deviceId: "device_a", ts: ${DAY0 + 12 * H}, heartRate: 66 }]);
        process.kill(process.pid, "SIGKILL");
      `);
      assert.equal(child.signal, "SIGKILL", child.stderr);
      let { engine } = await openTestDb(dir);
      assert.deepEqual((await q(engine)).map((p) => p.heart_rate), [66]);
      await engine.close();
      ({ engine } = await openTestDb(dir));
      assert.deepEqual((await q(engine)).map((p) => p.heart_rate), [66]);
      await engine.close();
    } finally {
      removeDir(dir);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Property: deleting = never having held the readings

type Op = { kind: "write"; readings: Reading[] } | { kind: "delete"; erasure: Erasure } | { kind: "flush" };
const STATES = ["memtable", "runs", "compacted", "restart", "purged"] as const;

const USERS = ["u1", "u2"];
const DEVICES = ["device_a", "device_b", "zz"];
const SPAN = 4 * 60_000; // readings fall in 4 minutes of one day, so buckets collide

const readingArb = fc.record({
  userId: fc.constantFrom(...USERS),
  deviceId: fc.constantFrom(...DEVICES),
  ts: fc.integer({ min: 0, max: SPAN - 1 }).map((x) => DAY0 + x - (x % 7_000)),
  heartRate: fc.integer({ min: 30, max: 220 }).map((x) => x + (x % 3) / 4),
});
const erasureArb: fc.Arbitrary<Erasure> = fc.record({
  userId: fc.constantFrom(...USERS),
  deviceId: fc.option(fc.constantFrom(...DEVICES), { nil: undefined }),
  range: fc.option(fc.tuple(fc.integer({ min: 0, max: SPAN }), fc.integer({ min: 1, max: SPAN })), { nil: undefined }),
}).map(({ userId, deviceId, range }) => {
  const e: Erasure = { userId };
  if (deviceId !== undefined) e.deviceId = deviceId;
  if (range !== undefined) {
    e.start = DAY0 + Math.min(range[0], range[1] - 1);
    e.end = DAY0 + Math.max(range[0] + 1, range[1]);
  }
  return e;
});
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.array(readingArb, { minLength: 1, maxLength: 12 }).map((r) => ({ kind: "write", readings: r }) as Op),
  },
  { weight: 2, arbitrary: erasureArb.map((erasure) => ({ kind: "delete", erasure }) as Op) },
  { weight: 1, arbitrary: fc.constant({ kind: "flush" } as Op) },
);

/** The readings of `ops` that no later deletion matches, in acceptance order. */
function survivors(ops: readonly Op[]): Reading[] {
  const out: Reading[] = [];
  ops.forEach((op, i) => {
    if (op.kind !== "write") return;
    for (const r of op.readings) {
      const erased = ops.slice(i + 1).some((o) =>
        o.kind === "delete" && o.erasure.userId === r.userId &&
        (o.erasure.deviceId === undefined || o.erasure.deviceId === r.deviceId) &&
        (o.erasure.start === undefined || (r.ts >= o.erasure.start && r.ts < o.erasure.end!))
      );
      if (!erased) out.push(r);
    }
  });
  return out;
}

async function answers(engine: Engine): Promise<string[]> {
  const out: string[] = [];
  for (const userId of USERS) {
    for (const deviceId of [undefined, ...DEVICES]) {
      for (const bucketMs of [10_000, 60_000]) {
        const r = await engine.queryJson({ userId, deviceId, start: DAY0, end: DAY0 + SPAN, bucketMs });
        out.push(`${userId}/${deviceId}/${bucketMs}: ${r.json}`);
      }
    }
  }
  return out;
}

describe("Deletion property", () => {
  it("answers after deletions are byte-identical to a history that never held the deleted readings", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 12 }),
        fc.constantFrom(...STATES),
        async (ops, state) => {
          const dir = tempDir();
          const refDir = tempDir();
          const compaction = {
            compaction: state === "compacted" || state === "purged",
            compactionTrigger: 2,
            compactionSettleMs: 0,
          };
          let db: PulseDb = await openTestDb(dir, compaction);
          const ref = await openTestDb(refDir);
          try {
            for (const op of ops) {
              if (op.kind === "write") await db.engine.write(op.readings);
              else if (op.kind === "delete") await db.engine.delete(op.erasure);
              else if (state !== "memtable") await db.engine.flush();
            }
            if (state !== "memtable") await db.engine.flush();
            if (state === "compacted") await db.compactor!.runUntilIdle();
            if (state === "purged") {
              // Purge while compaction runs, then after a restart: the files themselves no longer
              // hold the deleted readings, and no tombstone masks anything any more.
              await Promise.all([db.engine.purger.run(), db.compactor!.runUntilIdle()]);
              assert.equal(db.engine.tombstones.size, 0);
            }
            if (state === "restart" || state === "purged") {
              await db.engine.close();
              db = await openTestDb(dir);
            }
            const kept = survivors(ops);
            if (kept.length > 0) await ref.engine.write(kept);
            assert.deepEqual(await answers(db.engine), await answers(ref.engine));
          } finally {
            await db.engine.close();
            await ref.engine.close();
            removeDir(dir);
            removeDir(refDir);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
