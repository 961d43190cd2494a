/**
 * Start-up checks run files by size only; checksums are checked on first read or by a background
 * pass (issue 11, item 12). A damaged run is still never served: the query that needs it, every
 * write, and /ready are refused with the file named; compaction never merges it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { DamagedError } from "../../src/engine.ts";
import { createApp } from "../../src/http/app.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { Compactor } from "../../src/storage/compactor.ts";
import { DAY0, openTestDb, q, reading, removeDir, tempDir, waitFor } from "../support/harness.ts";

const DAY = 86_400_000;

/** A closed database with runs on days 0 and 1 (two on day 0), and one byte of the first run flipped. */
async function damagedDb(): Promise<{ dir: string; damaged: string }> {
  const dir = tempDir();
  const { engine } = await openTestDb(dir);
  await engine.write([reading({ ts: DAY0 + 1000, heartRate: 60 })]);
  await engine.flush();
  await engine.write([reading({ ts: DAY0 + 2000, heartRate: 62 }), reading({ ts: DAY0 + DAY + 1000, heartRate: 70 })]);
  await engine.close();
  const first = engine.stats().runs.sort((a, b) => a.id - b.id)[0].file;
  const full = path.join(dir, first);
  const bytes = fs.readFileSync(full);
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  fs.writeFileSync(full, bytes);
  return { dir, damaged: first };
}

describe("run checksums", () => {
  it("a damaged run: the open succeeds, the query that needs it answers 503 naming the file, others are served", async () => {
    const { dir, damaged } = await damagedDb();
    const { engine } = await openTestDb(dir);
    try {
      const app = createApp({ engine, config: engine.config, log: silentLogger });
      const day1 = await app.request(
        "/metrics/heart-rate?user_id=user_1&start=2024-01-16T00:00:00Z&end=2024-01-17T00:00:00Z",
      );
      assert.ok([200, 503].includes(day1.status)); // 503 once the background pass found the damage
      await day1.body?.cancel();
      const day0 = await app.request(
        "/metrics/heart-rate?user_id=user_1&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z",
      );
      assert.equal(day0.status, 503);
      assert.equal(day0.headers.get("retry-after"), "1");
      const p = (await day0.json()) as { detail: string };
      assert.ok(p.detail.includes(damaged), p.detail);
      assert.match(p.detail, /does not match its checksum.*PULSE_RECOVERY=rebuild-manifest/s);
      await assert.rejects(engine.write([reading({ heartRate: 99 })]), DamagedError);
      assert.equal((await app.request("/ready")).status, 503);
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });

  it("a damaged run is found by the background pass without any query", async () => {
    const { dir, damaged } = await damagedDb();
    const { engine } = await openTestDb(dir);
    try {
      await waitFor(() => Promise.resolve(engine.failure() !== undefined));
      assert.ok(engine.failure()!.message.includes(damaged));
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });

  it("compaction never merges a damaged run", async () => {
    const { dir } = await damagedDb();
    const { engine } = await openTestDb(dir);
    try {
      const before = engine.stats().runs.map((r) => r.file).sort();
      await assert.rejects(
        new Compactor(engine, { trigger: 2, settleMs: 1e9 }).runUntilIdle(),
        /compaction is failing/,
      );
      assert.deepEqual(engine.stats().runs.map((r) => r.file).sort(), before);
      await assert.rejects(q(engine), DamagedError);
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });

  it("runs that retention drops while the background pass has not checked them yet are not taken for damaged", async () => {
    const dir = tempDir();
    const today = Math.floor(Date.now() / DAY) * DAY;
    try {
      {
        const { engine } = await openTestDb(dir);
        // Recent days first (low run ids, checked first), expired days last.
        for (let d = 1; d <= 20; d++) await engine.write([reading({ ts: today - d * DAY + 3_600_000 })]);
        await engine.flush();
        for (let d = 100; d < 200; d++) await engine.write([reading({ ts: today - d * DAY + 3_600_000 })]);
        await engine.flush();
        await engine.close();
      }
      const { engine } = await openTestDb(dir, { retentionMs: 60 * DAY });
      const dropped = await engine.dropExpiredDays();
      assert.equal(dropped.length, 100);
      await (engine as unknown as { verifying: Promise<void> }).verifying; // the background pass is done
      assert.equal(engine.failure(), undefined);
      await engine.write([reading({ ts: today + 1000 })]);
      await engine.close();
    } finally {
      removeDir(dir);
    }
  });

  it("a rollup damaged on disk (same size) is dropped at its first check: answers stay those of the run's rows", async () => {
    const dir = tempDir();
    try {
      const rows = [];
      for (let i = 0; i < 2000; i++) rows.push(reading({ ts: DAY0 + i * 30_000, heartRate: 60 + (i % 50) }));
      let baseline: string;
      {
        const { engine } = await openTestDb(dir);
        await engine.write(rows);
        await engine.flush();
        baseline = JSON.stringify(await q(engine));
        await engine.close();
      }
      const probe = await openTestDb(dir);
      const run = probe.engine.stats().runs[0];
      await probe.engine.close();
      assert.ok(run.rollup, "the run has a rollup");
      const file = path.join(dir, run.rollup.file);
      const original = fs.readFileSync(file);
      // Flip bytes at several places (each reopen checks afresh): never a different answer, never a throw.
      for (const at of [0.2, 0.4, 0.6, 0.8]) {
        const bytes = Buffer.from(original);
        bytes[Math.floor(bytes.length * at)] ^= 0x10;
        fs.writeFileSync(file, bytes);
        const { engine } = await openTestDb(dir);
        try {
          assert.equal(JSON.stringify(await q(engine)), baseline, `byte at ${at}`);
          assert.equal(engine.failure(), undefined, "a damaged rollup is not a damaged run");
        } finally {
          await engine.close();
        }
      }
    } finally {
      removeDir(dir);
    }
  });
});
