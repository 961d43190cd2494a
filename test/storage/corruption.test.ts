/**
 * Corruption table (docs/corruption.md): damage one file of a crashed database, start again, and
 * check the defined outcome. Acknowledged data is never dropped silently: start-up either keeps
 * everything, or refuses with a message naming the file and the way out, and the way out works.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Config } from "../../src/ops/config.ts";
import { runScript } from "../support/child.ts";
import { DAY0, openTestDb, q, removeDir, tempDir } from "../support/harness.ts";

const DAY = 86_400_000;

/** Day 0 and day 1 are in runs; day 2 only in the WAL (the process was killed before a flush). */
function buildCrashedDb(dir: string): void {
  const script = `
    import { openPulseDb } from "./src/pulsedb.ts";
    import { testConfig } from "./src/ops/config.ts";
    import { silentLogger } from "./src/ops/logger.ts";
    const { engine } = await openPulseDb(testConfig({ dataDir: ${
    JSON.stringify(dir)
  }, compaction: false }), silentLogger);
    const day = (d, hr) => Array.from({ length: 60 }, (_, i) => ({ userId: "u1", deviceId: "device_a", ts: ${DAY0} + d * ${DAY} + i * 60000, heartRate: hr }));
    await engine.write(day(0, 60)); await engine.flush();
    await engine.write(day(1, 70)); await engine.flush();
    await engine.write(day(2, 80).slice(0, 30));
    await engine.write(day(2, 80).slice(30));
    process.kill(process.pid, "SIGKILL");
  `;
  const child = runScript(script);
  assert.equal(child.signal, "SIGKILL", child.stderr);
}

/** Per-day mean heart rate served for u1 (day index -> mean), or the error that refused it. */
async function served(dir: string, over: Partial<Config> = {}): Promise<Record<number, number> | Error> {
  let db;
  try {
    db = await openTestDb(dir, over);
  } catch (err) {
    return err as Error;
  }
  try {
    // A damaged checksum is found on first read (or by the background pass), not by the open.
    const points = await q(db.engine, { userId: "u1", start: DAY0, end: DAY0 + 3 * DAY, bucketMs: DAY });
    return Object.fromEntries(points.map((p) => [(Date.parse(p.timestamp) - DAY0) / DAY, p.heart_rate]));
  } catch (err) {
    return err as Error;
  } finally {
    await db.engine.close();
  }
}

const ALL = { 0: 60, 1: 70, 2: 80 };

const runFiles = (dir: string) =>
  fs.readdirSync(path.join(dir, "runs")).flatMap((d) =>
    fs.readdirSync(path.join(dir, "runs", d)).map((f) => path.join(dir, "runs", d, f))
  ).sort();
const walFiles = (dir: string) =>
  fs.readdirSync(path.join(dir, "wal")).filter((f) => f.endsWith(".log")).sort().map((f) => path.join(dir, "wal", f));
const walWithData = (dir: string) => walFiles(dir).filter((f) => fs.statSync(f).size > 8).at(-1)!;

function flip(file: string, at: (size: number) => number): void {
  const bytes = fs.readFileSync(file);
  bytes[at(bytes.length)] ^= 0x20;
  fs.writeFileSync(file, bytes);
}
function cut(file: string, keep: (size: number) => number): void {
  fs.truncateSync(file, keep(fs.statSync(file).size));
}
interface Case {
  name: string;
  damage: (dir: string) => void;
  /** What start-up does: serve these days, or refuse with a message matching `refuses`. */
  expect: Record<number, number> | { refuses: RegExp };
  /** The documented way out, and what it serves. */
  recover?: { with: Partial<Config>; serves: Record<number, number> };
}

const CASES: Case[] = [
  { name: "nothing damaged", damage: () => {}, expect: ALL },
  {
    name: "WAL: last record torn (cut in its middle)",
    damage: (d) => cut(walWithData(d), (n) => n - 5),
    // the torn record is the second write of day 2 (readings 30-59): day 2's mean is still 80
    expect: ALL,
  },
  {
    name: "WAL: a byte flipped in the last record (CRC mismatch at the tail)",
    damage: (d) => flip(walWithData(d), (n) => n - 3),
    expect: ALL,
  },
  {
    name: "WAL: a byte flipped in a record that acknowledged data follows",
    damage: (d) => flip(walWithData(d), () => 8 + 8 + 20),
    expect: { refuses: /wal-\d+\.log.*PULSE_WAL_SALVAGE=1/s },
    recover: { with: { walSalvage: true }, serves: { 0: 60, 1: 70 } },
  },
  {
    name: "WAL: the length of a middle record damaged",
    damage: (d) => flip(walWithData(d), () => 9),
    expect: { refuses: /wal-\d+\.log/ },
    recover: { with: { walSalvage: true }, serves: { 0: 60, 1: 70 } },
  },
  {
    name: "MANIFEST: a byte flipped in the body",
    damage: (d) => flip(path.join(d, "MANIFEST"), (n) => n - 10),
    expect: { refuses: /MANIFEST.*corrupt.*PULSE_RECOVERY=rebuild-manifest/s },
    recover: { with: { recovery: "rebuild-manifest" }, serves: ALL },
  },
  {
    name: "MANIFEST: truncated",
    damage: (d) => cut(path.join(d, "MANIFEST"), (n) => Math.floor(n / 2)),
    expect: { refuses: /MANIFEST.*corrupt/s },
    recover: { with: { recovery: "rebuild-manifest" }, serves: ALL },
  },
  {
    name: "MANIFEST: deleted while runs exist",
    damage: (d) => fs.rmSync(path.join(d, "MANIFEST")),
    expect: { refuses: /MANIFEST is missing but 2 run file\(s\) exist/ },
    recover: { with: { recovery: "rebuild-manifest" }, serves: ALL },
  },
  {
    name: "run: a byte flipped in the middle",
    damage: (d) => flip(runFiles(d)[0], (n) => Math.floor(n / 2)),
    expect: {
      refuses:
        /run file runs\/day=2024-01-15\/L0-\d+\.parquet does not match its checksum.*PULSE_RECOVERY=rebuild-manifest/s,
    },
    recover: { with: { recovery: "rebuild-manifest" }, serves: { 1: 70, 2: 80 } },
  },
  {
    name: "run: truncated",
    damage: (d) => cut(runFiles(d)[1], (n) => n - 100),
    expect: { refuses: /run file runs\/day=2024-01-16\/L0-\d+\.parquet is \d+ bytes, the manifest says/ },
    recover: { with: { recovery: "rebuild-manifest" }, serves: { 0: 60, 2: 80 } },
  },
  {
    name: "run: deleted",
    damage: (d) => fs.rmSync(runFiles(d)[0]),
    expect: { refuses: /run file runs\/day=2024-01-15\/L0-\d+\.parquet cannot be read \(ENOENT\)/ },
    recover: { with: { recovery: "rebuild-manifest" }, serves: { 1: 70, 2: 80 } },
  },
];

describe("Corruption", () => {
  let golden: string;
  before(() => {
    golden = tempDir("pulsedb-golden-");
    buildCrashedDb(golden);
  });
  after(() => removeDir(golden));

  for (const c of CASES) {
    it(`${c.name}: ${"refuses" in c.expect ? "start-up refuses, naming the file and the way out" : "start-up recovers every acknowledged reading"}`, async () => {
      const dir = tempDir();
      try {
        fs.cpSync(golden, dir, { recursive: true });
        fs.rmSync(path.join(dir, "LOCK"), { force: true });
        c.damage(dir);
        const outcome = await served(dir);
        if ("refuses" in c.expect) {
          assert.ok(outcome instanceof Error, `expected a refusal, served ${JSON.stringify(outcome)}`);
          assert.match(outcome.message, c.expect.refuses);
        } else {
          assert.deepEqual(outcome, c.expect);
        }
        if (c.recover) {
          assert.deepEqual(await served(dir, c.recover.with), c.recover.serves);
          // and after that, a plain start serves the same
          assert.deepEqual(await served(dir), c.recover.serves);
        }
      } finally {
        removeDir(dir);
      }
    });
  }
});

describe("Rebuilt manifest", () => {
  it("counts each reading once when runs and the WAL both hold it (crash before the WAL segment was deleted)", async () => {
    const dir = tempDir();
    try {
      const child = runScript(`
        import { openPulseDb } from "./src/pulsedb.ts";
        import { testConfig } from "./src/ops/config.ts";
        import { silentLogger } from "./src/ops/logger.ts";
        const { engine } = await openPulseDb(testConfig({ dataDir: ${
        JSON.stringify(dir)
      }, compaction: false, crashPoint: "flush-before-wal-delete:2" }), silentLogger);
        await engine.write([{ userId: "u1", deviceId: "device_a", ts: ${DAY0}, heartRate: 60 }]);
        await engine.flush();
        await engine.write([{ userId: "u1", deviceId: "device_a", ts: ${DAY0} + 1000, heartRate: 120 }]);
        await engine.flush();
      `);
      assert.equal(child.signal, "SIGKILL", child.stderr);
      assert.deepEqual(await served(dir, { recovery: "rebuild-manifest" }), { 0: 90 });
      assert.deepEqual(await served(dir), { 0: 90 });
      // and after compaction merges the copies
      const { engine } = await openTestDb(dir);
      const { Compactor } = await import("../../src/storage/compactor.ts");
      await engine.flush();
      await new Compactor(engine, { trigger: 2, settleMs: 0 }).runUntilIdle();
      assert.equal(engine.stats().runs.reduce((n, r) => n + r.rows, 0), 2, "one row per reading after compaction");
      await engine.close();
      assert.deepEqual(await served(dir), { 0: 90 });
    } finally {
      removeDir(dir);
    }
  });
});
