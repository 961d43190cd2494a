import { afterEach, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32c } from "../../src/storage/crc32c.ts";
import type { Reading } from "../../src/reading.ts";
import {
  encodeRecord,
  nodeWalFs,
  segmentFileName,
  Wal,
  type WalFs,
  type WalLogger,
  type WalOptions,
} from "../../src/storage/wal/wal.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

const T0 = Date.UTC(2024, 0, 15, 10, 0, 0);
const LONG_ID = "x".repeat(127) + "Z"; // 128 chars, the longest allowed id

function reading(i: number, userId = "user_1", deviceId = "device_a"): Reading {
  return { userId, deviceId, ts: T0 + i * 1000, heartRate: 60 + (i % 100) + 0.25 };
}

function batchOf(n: number, from: number, userId?: string, deviceId?: string): Reading[] {
  return Array.from({ length: n }, (_, k) => reading(from + k, userId, deviceId));
}

/** A logger that remembers what it was told (and keeps test output quiet). */
function memLogger(): WalLogger & { lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> } {
  const lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
  const log = ((level, msg, fields) => void lines.push({ level, msg, fields })) as WalLogger & { lines: typeof lines };
  log.lines = lines;
  return log;
}

/** Every (seq, reading) a replay produced, flattened in log order. */
function flatten(batches: Array<{ firstSeq: number; readings: Reading[] }>): Array<[number, Reading]> {
  return batches.flatMap((b) => b.readings.map((r, i): [number, Reading] => [b.firstSeq + i, r]));
}

/** An fs that fails chosen calls with a chosen errno code until the fault is cleared. */
function faultyFs() {
  const faults = new Map<keyof WalFs, { code: string; once: boolean }>();
  const fail = (op: keyof WalFs) => {
    const f = faults.get(op);
    if (!f) return null;
    if (f.once) faults.delete(op);
    return Object.assign(new Error(`${f.code}: injected fault in ${op}`), { code: f.code });
  };
  const fs: WalFs = {
    ...nodeWalFs,
    write: async (fd, data, offset, length, position) => {
      const err = fail("write");
      if (!err) return nodeWalFs.write(fd, data, offset, length, position);
      // A realistic ENOSPC: part of the data reaches the file before the error.
      await nodeWalFs.write(fd, data, offset, Math.max(1, length >> 1), position);
      throw err;
    },
    fdatasync: (fd) => {
      const err = fail("fdatasync");
      if (err) return Promise.reject(err);
      return nodeWalFs.fdatasync(fd);
    },
    ftruncate: (fd, len) => {
      const err = fail("ftruncate");
      if (err) return Promise.reject(err);
      return nodeWalFs.ftruncate(fd, len);
    },
  };
  return {
    fs,
    inject: (op: keyof WalFs, code: string, once = false) => void faults.set(op, { code, once }),
    clear: () => faults.clear(),
  };
}

let dir: string;
let walDir: string;
const opts = (extra: Partial<WalOptions> = {}): WalOptions => ({ dir: walDir, logger: memLogger(), ...extra });
const segPath = (n: number, d = walDir) => join(d, segmentFileName(n));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pulsedb-wal-"));
  walDir = join(dir, "wal");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Write three records A, B, C into segment 1 and close. Returns where each record starts and the
 * file's bytes: `starts[i]..starts[i+1]` is record i.
 */
async function threeRecords(): Promise<{ bytes: Uint8Array; starts: number[]; batches: Reading[][] }> {
  const batches = [batchOf(2, 0), batchOf(1, 2, "a.b:c@d-e_1"), batchOf(1, 3, "user_2", "device_b")];
  const { wal } = await Wal.open(opts());
  const starts = [statSync(segPath(1)).size];
  let seq = 1;
  for (const b of batches) {
    await wal.append(seq, b);
    seq += b.length;
    starts.push(statSync(segPath(1)).size);
  }
  await wal.close();
  return { bytes: new Uint8Array(readFileSync(segPath(1))), starts, batches };
}

/** Lay a copy of segment 1's bytes into a fresh WAL directory and return that directory. */
function layout(name: string, seg1: Uint8Array): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, segmentFileName(1)), seg1);
  return d;
}

// ---------------------------------------------------------------------------------------------

describe("crc32c", () => {
  const vectors: Array<[string, Uint8Array, number]> = [
    ["empty", new Uint8Array(0), 0],
    ['"123456789"', new TextEncoder().encode("123456789"), 0xe3069283],
    ["32 zero bytes (RFC 3720)", new Uint8Array(32), 0x8a9136aa],
    ["32 0xFF bytes (RFC 3720)", new Uint8Array(32).fill(0xff), 0x62a8ab43],
    ["0..31 ascending (RFC 3720)", Uint8Array.from({ length: 32 }, (_, i) => i), 0x46dd794e],
    ["31..0 descending (RFC 3720)", Uint8Array.from({ length: 32 }, (_, i) => 31 - i), 0x113fdb5c],
  ];
  for (const [name, bytes, want] of vectors) {
    it(`crc32c matches the known vector for ${name}`, () => assert.equal(crc32c(bytes), want));
  }

  it("crc32c of a sub-range equals the CRC of that slice, for every alignment", () => {
    const bitwise = (b: Uint8Array) => {
      let c = 0xffffffff;
      for (const x of b) {
        c ^= x;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return ~c >>> 0;
    };
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff);
    for (let start = 0; start < 20; start++) {
      for (const end of [start, start + 1, start + 7, start + 8, start + 9, start + 63, 300]) {
        assert.equal(crc32c(data, start, end), bitwise(data.subarray(start, end)), `[${start}, ${end})`);
      }
    }
    assert.throws(() => crc32c(data, 5, 301), RangeError);
  });
});

describe("Wal", () => {
  it("Wal replays every acknowledged record after restart", async () => {
    const batches: Array<[number, Reading[]]> = [
      [1, batchOf(3, 0)],
      [4, batchOf(1, 3, "a.b:c@d-e_1", "dev.ice:1@x-y_z")],
      [5, batchOf(2, 4, LONG_ID, LONG_ID.toLowerCase())],
      [100, [{ userId: "u", deviceId: "d", ts: 0, heartRate: 30 }, {
        userId: "u",
        deviceId: "d",
        ts: 253402300799999,
        heartRate: 220,
      }]],
      [102, batchOf(1000, 10, "bulk")],
    ];
    const first = await Wal.open(opts());
    assert.deepEqual(first.batches, []);
    assert.equal(first.maxSeq, 0);
    for (const [seq, rs] of batches) await first.wal.append(seq, rs);
    await first.wal.close();

    const again = await Wal.open(opts());
    assert.deepEqual(
      again.batches,
      batches.map(([firstSeq, readings]) => ({ segment: 1, firstSeq, readings })),
    );
    assert.equal(again.maxSeq, 1101);
    assert.deepEqual(again.truncated, []);
    assert.equal(again.wal.currentSegment(), 2);
    await again.wal.close();
  });

  it("Wal encodes a record with the documented byte layout", () => {
    const rec = encodeRecord(7, [{ userId: "u1", deviceId: "dev", ts: 1705312800000, heartRate: 72.5 }]);
    const dv = new DataView(rec.buffer);
    const payloadLen = 13 + 1 + 2 + 1 + 3 + 16;
    assert.equal(rec.length, 8 + payloadLen);
    assert.equal(dv.getUint32(0, true), payloadLen);
    assert.equal(dv.getUint32(4, true), crc32c(rec, 8));
    assert.equal(rec[8], 1);
    assert.equal(dv.getFloat64(9, true), 7);
    assert.equal(dv.getUint32(17, true), 1);
    assert.deepEqual([...rec.subarray(21, 24)], [2, 0x75, 0x31]);
    assert.deepEqual([...rec.subarray(24, 28)], [3, 0x64, 0x65, 0x76]);
    assert.equal(dv.getFloat64(28, true), 1705312800000);
    assert.equal(dv.getFloat64(36, true), 72.5);
    // The worked example in docs/format/wal.md, byte for byte.
    const hex = "24000000 e5c00468 01 000000000000 1c40 01000000 027531 03646576 0000d004c9d07842 0000000000205240";
    assert.equal(Buffer.from(rec).toString("hex"), hex.replaceAll(" ", ""));
  });

  it("Wal writes segment files named wal-NNNNNNNN.log that start with PDBWAL01", async () => {
    const { wal } = await Wal.open(opts());
    await wal.append(1, batchOf(1, 0));
    await wal.close();
    assert.deepEqual(readdirSync(walDir), ["wal-00000001.log"]);
    assert.equal(readFileSync(segPath(1)).subarray(0, 8).toString("latin1"), "PDBWAL01");
  });

  it("Wal shares one fdatasync among concurrent appends and keeps their order", async () => {
    const { wal } = await Wal.open(opts());
    const appends = 200;
    const done: Promise<void>[] = [];
    for (let i = 0; i < appends; i++) done.push(wal.append(i + 1, [reading(i, `user_${i % 7}`)]));
    assert.ok(wal.stats().pendingRecords > 0);
    await Promise.all(done);
    const stats = wal.stats();
    assert.ok(stats.syncs < appends, `syncs ${stats.syncs} should be < ${appends}`);
    assert.equal(stats.syncedRecords, appends);
    assert.equal(stats.pendingRecords, 0);
    await wal.close();

    const again = await Wal.open(opts());
    assert.deepEqual(
      flatten(again.batches),
      Array.from({ length: appends }, (_, i) => [i + 1, reading(i, `user_${i % 7}`)]),
    );
    await again.wal.close();
  });

  it("Wal starts the next group commit while the previous one is in flight", async () => {
    const { wal } = await Wal.open(opts());
    let seq = 1;
    const all: Promise<void>[] = [];
    // Five waves: each wave is issued when the previous wave's first append resolves.
    for (let wave = 0; wave < 5; wave++) {
      const first = wal.append(seq++, [reading(seq)]);
      all.push(first);
      for (let k = 0; k < 20; k++) all.push(wal.append(seq++, [reading(seq)]));
      await first;
    }
    await Promise.all(all);
    assert.ok(wal.stats().syncs <= 10, `syncs ${wal.stats().syncs}`);
    await wal.close();
    const again = await Wal.open(opts());
    assert.deepEqual(flatten(again.batches).map(([s]) => s), Array.from({ length: 105 }, (_, i) => i + 1));
    await again.wal.close();
  });

  it("Wal in interval mode acknowledges after write and syncs in the background", async () => {
    const { wal } = await Wal.open(opts({ syncMode: "interval", syncIntervalMs: 5 }));
    await Promise.all(Array.from({ length: 50 }, (_, i) => wal.append(i + 1, [reading(i)])));
    await wal.close();
    assert.ok(wal.stats().syncs >= 1);
    assert.equal(wal.stats().syncedRecords, 50);
    const again = await Wal.open(opts());
    assert.equal(flatten(again.batches).length, 50);
    await again.wal.close();
  });

  it("Wal preserves maxSeq across restart and refuses non-increasing sequence numbers", async () => {
    const first = await Wal.open(opts());
    await first.wal.append(10, batchOf(5, 0)); // 10..14
    assert.throws(() => first.wal.append(14, batchOf(1, 5)), RangeError);
    await first.wal.append(20, batchOf(1, 5));
    await first.wal.close();

    const again = await Wal.open(opts());
    assert.equal(again.maxSeq, 20);
    assert.throws(() => again.wal.append(20, batchOf(1, 6)), RangeError);
    await again.wal.append(21, batchOf(1, 6));
    await again.wal.close();
    const third = await Wal.open(opts());
    assert.equal(third.maxSeq, 21);
    await third.wal.close();
  });

  const badAppends: Array<[string, number, () => Reading[]]> = [
    ["an empty batch", 1, () => []],
    ["a non-integer sequence number", 1.5, () => batchOf(1, 0)],
    ["a sequence number at 2^53", 2 ** 53, () => batchOf(1, 0)],
    ["an id over 255 bytes", 1, () => [reading(0, "u".repeat(256))]],
    ["a payload over 64 MiB", 1, () => Array.from({ length: 250_000 }, () => reading(0, LONG_ID, LONG_ID))],
  ];
  for (const [name, seq, make] of badAppends) {
    it(`Wal rejects ${name} at append time and writes nothing`, async () => {
      const { wal } = await Wal.open(opts());
      assert.throws(() => wal.append(seq, make()), RangeError);
      await wal.append(1, batchOf(1, 0));
      await wal.close();
      const again = await Wal.open(opts());
      assert.equal(flatten(again.batches).length, 1);
      await again.wal.close();
    });
  }

  it("Wal cuts a torn last record at every byte offset and keeps all earlier records", async () => {
    const { bytes, starts, batches } = await threeRecords();
    const lastStart = starts[2];
    const lastEnd = starts[3];
    assert.equal(bytes.length, lastEnd);
    for (let len = lastStart; len < lastEnd; len++) {
      const d = layout(`torn-${len}`, bytes.subarray(0, len));
      const log = memLogger();
      const { wal, batches: got, truncated, maxSeq } = await Wal.open({ dir: d, logger: log });
      assert.deepEqual(got.map((b) => b.readings), batches.slice(0, 2), `cut at ${len}`);
      assert.equal(maxSeq, 3);
      assert.equal(statSync(segPath(1, d)).size, lastStart, `file cut back to the record boundary (len ${len})`);
      if (len === lastStart) {
        assert.deepEqual(truncated, []); // exactly at a boundary: nothing torn
      } else {
        assert.deepEqual(truncated.map((t) => [t.file, t.offset, t.droppedBytes]), [[
          segPath(1, d),
          lastStart,
          len - lastStart,
        ]]);
        assert.ok(log.lines.some((l) => l.level === "warn" && l.msg.includes("torn")));
      }
      await wal.append(10, batchOf(1, 99));
      await wal.close();
      const again = await Wal.open({ dir: d, logger: memLogger() });
      assert.deepEqual(flatten(again.batches).map(([s]) => s), [1, 2, 3, 10]);
      assert.deepEqual(again.truncated, []);
      await again.wal.close();
    }
  });

  it("Wal treats a flipped byte anywhere in the last record as a torn tail", async () => {
    const { bytes, starts, batches } = await threeRecords();
    for (let at = starts[2]; at < starts[3]; at++) {
      const copy = bytes.slice();
      copy[at] ^= 0x5a;
      const d = layout(`flip-last-${at}`, copy);
      const { wal, batches: got, truncated } = await Wal.open({ dir: d, logger: memLogger() });
      assert.deepEqual(got.map((b) => b.readings), batches.slice(0, 2), `flip at ${at}`);
      assert.equal(truncated.length, 1);
      assert.equal(truncated[0].offset, starts[2]);
      assert.equal(statSync(segPath(1, d)).size, starts[2]);
      await wal.close();
    }
  });

  it("Wal refuses to open when a middle record is corrupt, and salvage keeps the records before it", async () => {
    const { bytes, starts, batches } = await threeRecords();
    for (let at = starts[1]; at < starts[2]; at++) {
      const copy = bytes.slice();
      copy[at] ^= 0xff;
      const d = layout(`flip-mid-${at}`, copy);
      const file = segPath(1, d);
      await assert.rejects(Wal.open({ dir: d, logger: memLogger() }), (err: Error) => {
        assert.ok(err.message.includes(file), err.message);
        assert.ok(err.message.includes(`offset ${starts[1]}`), err.message);
        assert.ok(err.message.includes("PULSE_WAL_SALVAGE=1"), err.message);
        assert.ok(err.message.includes("acknowledged data follows"), err.message);
        return true;
      });
      assert.equal(statSync(file).size, bytes.length, "a refused open changes nothing");

      const log = memLogger();
      const { wal, batches: got, truncated } = await Wal.open({ dir: d, logger: log, salvage: true });
      assert.deepEqual(got.map((b) => b.readings), batches.slice(0, 1), `flip at ${at}`);
      assert.equal(truncated[0].offset, starts[1]);
      assert.equal(statSync(file).size, starts[1]);
      assert.ok(log.lines.some((l) => l.level === "warn" && l.msg.includes("SALVAGE")));
      await wal.close();
    }
  });

  it("Wal cuts a torn tail in an earlier segment when no later segment holds a record (crash right after a rotation)", async () => {
    const { bytes, starts, batches } = await threeRecords();
    const d = layout("rotated", bytes.subarray(0, starts[3] - 3)); // torn, followed by an empty new segment
    writeFileSync(segPath(2, d), "PDBWAL01");
    const { wal, batches: got, truncated } = await Wal.open({ dir: d, logger: memLogger() });
    assert.deepEqual(got.map((b) => b.readings), batches.slice(0, 2));
    assert.deepEqual(truncated.map((t) => t.offset), [starts[2]]);
    await wal.close();
  });

  it("Wal refuses a corrupt record in an earlier segment when a later segment holds records, unless salvaging", async () => {
    const { bytes, starts, batches } = await threeRecords();
    const d = layout("earlier", bytes.subarray(0, starts[3] - 3)); // torn, and acknowledged data follows
    writeFileSync(
      segPath(2, d),
      new Uint8Array([...new TextEncoder().encode("PDBWAL01"), ...encodeRecord(100, batchOf(1, 100))]),
    );
    await assert.rejects(
      Wal.open({ dir: d, logger: memLogger() }),
      (err: Error) => err.message.includes(segPath(1, d)),
    );
    const { wal, batches: got } = await Wal.open({ dir: d, logger: memLogger(), salvage: true });
    assert.deepEqual(got.map((b) => b.readings), [...batches.slice(0, 2), batchOf(1, 100)]);
    assert.equal(wal.currentSegment(), 3);
    await wal.close();
  });

  it("Wal treats a zero-filled tail as torn and cuts it", async () => {
    const { bytes, batches } = await threeRecords();
    for (const zeros of [1, 7, 8, 21, 4096]) {
      const d = layout(`zeros-${zeros}`, new Uint8Array([...bytes, ...new Uint8Array(zeros)]));
      const { wal, batches: got, truncated } = await Wal.open({ dir: d, logger: memLogger() });
      assert.deepEqual(got.map((b) => b.readings), batches);
      assert.deepEqual(truncated.map((t) => [t.offset, t.droppedBytes]), [[bytes.length, zeros]]);
      assert.equal(statSync(segPath(1, d)).size, bytes.length);
      await wal.close();
    }
  });

  const headerCases: Array<[string, Uint8Array]> = [
    ["empty", new Uint8Array(0)],
    ["a short header", new TextEncoder().encode("PDBW")],
    ["only zeros", new Uint8Array(4096)],
  ];
  for (const [name, content] of headerCases) {
    it(`Wal removes a last segment that is ${name} (crash during creation)`, async () => {
      const { wal: w0 } = await Wal.open(opts());
      await w0.append(1, batchOf(1, 0));
      await w0.close();
      writeFileSync(segPath(2), content);
      const { wal, batches, truncated } = await Wal.open(opts());
      assert.equal(flatten(batches).length, 1);
      assert.equal(truncated.length, 1);
      assert.equal(truncated[0].file, segPath(2));
      assert.equal(wal.currentSegment(), 3);
      assert.deepEqual(readdirSync(walDir).sort(), [segmentFileName(1), segmentFileName(3)]);
      await wal.close();
    });
  }

  it("Wal refuses an earlier segment without a valid header", async () => {
    mkdirSync(walDir);
    writeFileSync(segPath(1), "PDB");
    writeFileSync(segPath(2), "PDBWAL01");
    await assert.rejects(Wal.open(opts()), (err: Error) => err.message.includes(segPath(1)));
  });

  it("Wal removes leftover temporary segment files", async () => {
    mkdirSync(walDir);
    writeFileSync(segPath(4) + ".tmp", "PDBW");
    const { wal } = await Wal.open(opts());
    assert.equal(wal.currentSegment(), 1);
    assert.deepEqual(readdirSync(walDir), [segmentFileName(1)]);
    await wal.close();
  });

  it("Wal rotate sends queued records to the old segment and later ones to the new", async () => {
    const { wal } = await Wal.open(opts());
    const a = wal.append(1, batchOf(1, 0)); // not awaited: still queued when rotate() runs
    assert.equal(wal.rotate(), 1);
    assert.equal(wal.currentSegment(), 2);
    const b = wal.append(2, batchOf(1, 1));
    await Promise.all([a, b]);
    await wal.close();
    const again = await Wal.open(opts());
    assert.deepEqual(again.batches.map((x) => [x.segment, x.firstSeq]), [[1, 1], [2, 2]]);
    await again.wal.close();
  });

  it("Wal deleteSegmentsThrough removes old segments and replay skips them", async () => {
    const { wal } = await Wal.open(opts());
    await wal.append(1, batchOf(1, 0));
    assert.equal(wal.rotate(), 1);
    const pending = wal.append(2, batchOf(1, 1));
    assert.equal(wal.rotate(), 2);
    await wal.append(3, batchOf(1, 2));
    await wal.deleteSegmentsThrough(2);
    await pending;
    assert.deepEqual(readdirSync(walDir).sort(), [segmentFileName(3)]);
    await wal.deleteSegmentsThrough(99); // never the current segment
    assert.deepEqual(readdirSync(walDir).sort(), [segmentFileName(3)]);
    await wal.append(4, batchOf(1, 3));
    await wal.close();

    const again = await Wal.open(opts());
    assert.deepEqual(again.batches.map((x) => [x.segment, x.firstSeq]), [[3, 3], [3, 4]]);
    assert.equal(again.maxSeq, 4);
    assert.equal(again.wal.currentSegment(), 4);
    await again.wal.close();
  });

  // `segment`: where later appends go. The failed segment is cut back in place when possible;
  // when the cut cannot be made durable, appends move to a fresh segment and the cut is retried.
  const faults: Array<
    { name: string; op: keyof WalFs; code: string; once?: boolean; alsoTruncate?: string; segment: number }
  > = [
    { name: "ENOSPC on write (after a partial write)", op: "write", code: "ENOSPC", segment: 1 },
    { name: "a one-off EIO on fdatasync", op: "fdatasync", code: "EIO", once: true, segment: 1 },
    { name: "EIO on fdatasync", op: "fdatasync", code: "EIO", segment: 2 },
    { name: "ENOSPC on write while ftruncate fails too", op: "write", code: "ENOSPC", alsoTruncate: "EIO", segment: 2 },
  ];
  for (const f of faults) {
    it(`Wal rejects appends hit by ${f.name} and recovers once the fault clears`, async () => {
      const ffs = faultyFs();
      const { wal } = await Wal.open(opts({ fs: ffs.fs }));
      await wal.append(1, batchOf(2, 0));
      ffs.inject(f.op, f.code, f.once);
      if (f.alsoTruncate) ffs.inject("ftruncate", f.alsoTruncate);
      // Two appends in the same cycle: both fail with the injected code.
      const results = await Promise.allSettled([wal.append(3, batchOf(1, 2)), wal.append(4, batchOf(1, 3))]);
      for (const r of results) {
        assert.equal(r.status, "rejected");
        assert.equal((r as PromiseRejectedResult).reason.code, f.code);
      }
      assert.equal(wal.currentSegment(), f.segment);
      ffs.clear();
      await wal.append(5, batchOf(1, 4));
      await wal.append(6, batchOf(1, 5));
      await wal.close();

      const again = await Wal.open(opts());
      assert.deepEqual(again.truncated, []);
      assert.deepEqual(flatten(again.batches), [[1, reading(0)], [2, reading(1)], [5, reading(4)], [6, reading(5)]]);
      assert.deepEqual(again.batches.map((b) => b.segment), [1, f.segment, f.segment]);
      await again.wal.close();
    });
  }

  it("Wal retries creating a segment whose creation failed", async () => {
    const ffs = faultyFs();
    const { wal } = await Wal.open(opts({ fs: ffs.fs }));
    ffs.inject("fdatasync", "EIO"); // the new segment's header sync fails
    wal.rotate();
    await assert.rejects(wal.append(1, batchOf(1, 0)), { code: "EIO" });
    ffs.clear();
    await wal.append(2, batchOf(1, 1));
    await wal.close();
    const again = await Wal.open(opts());
    assert.deepEqual(again.batches.map((x) => [x.segment, x.firstSeq]), [[2, 2]]);
    assert.deepEqual(readdirSync(walDir).filter((n) => n.endsWith(".tmp")), []);
    await again.wal.close();
  });

  it("Wal close is idempotent and forbids later appends", async () => {
    const { wal } = await Wal.open(opts());
    const p = wal.append(1, batchOf(1, 0));
    await Promise.all([wal.close(), wal.close()]);
    await p;
    assert.throws(() => wal.append(2, batchOf(1, 1)), /after close/);
  });
});

describe("crc32cUpdate", () => {
  it("crc32cUpdate over chunks equals crc32c of the whole", async () => {
    const { crc32c, crc32cUpdate } = await import("../../src/storage/crc32c.ts");
    const bytes = new Uint8Array(1000).map((_, i) => (i * 31) & 0xff);
    for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
      assert.equal(crc32cUpdate(crc32cUpdate(0, bytes.subarray(0, cut)), bytes.subarray(cut)), crc32c(bytes));
    }
  });
});
