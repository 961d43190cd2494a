/**
 * Test harness: temp data directories, engines and apps that tests build and tear down themselves.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type Config, testConfig } from "../../src/ops/config.ts";
import type { Engine } from "../../src/engine.ts";
import { createApp } from "../../src/http/app.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { openPulseDb, type PulseDb } from "../../src/pulsedb.ts";
import type { Reading } from "../../src/reading.ts";

/** A fresh empty directory under the OS temp dir. */
export function tempDir(prefix = "pulsedb-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Removes a directory tree. */
export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Opens a database in `dir` with test defaults (no compaction unless asked, silent logs). */
export function openTestDb(dir: string, overrides: Partial<Config> = {}): Promise<PulseDb> {
  return openPulseDb(testConfig({ dataDir: dir, compaction: false, ...overrides }), silentLogger);
}

/** An engine plus an app over it, in a temp dir; `close()` stops both and removes the dir. */
export async function testApp(overrides: Partial<Config> = {}) {
  const dir = tempDir();
  const db = await openTestDb(dir, overrides);
  const app = createApp({ engine: db.engine, config: db.engine.config, log: silentLogger });
  return {
    dir,
    db,
    engine: db.engine,
    app,
    async close() {
      await db.engine.close();
      removeDir(dir);
    },
  };
}

/** 2024-01-15T00:00:00Z */
export const DAY0 = Date.UTC(2024, 0, 15);

/** A reading with defaults. */
export function reading(over: Partial<Reading> = {}): Reading {
  return { userId: "user_1", deviceId: "device_a", ts: DAY0 + 10 * 3_600_000, heartRate: 75, ...over };
}

/** Shorthand for a query over one engine. */
export function q(
  engine: Engine,
  over: { userId?: string; deviceId?: string; start?: number; end?: number; bucketMs?: number } = {},
) {
  return engine.query({ userId: "user_1", start: DAY0, end: DAY0 + 86_400_000, bucketMs: 60_000, ...over });
}

/** ISO text of a ms timestamp. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Runs `body` with an engine opened on a fresh temp directory, then closes the engine and removes
 * the directory whatever happens.
 */
export async function withEngine(
  overrides: Partial<Config>,
  body: (engine: Engine, dir: string) => Promise<void>,
): Promise<void> {
  const dir = tempDir();
  const { engine } = await openTestDb(dir, overrides);
  try {
    await body(engine, dir);
  } finally {
    await engine.close();
    removeDir(dir);
  }
}

/**
 * Polls `cond` until it holds (bounded: throws after `ms`): a wait for background work such as a
 * flush retry, never a sleep standing in for one.
 */
export async function waitFor(cond: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`condition not reached in ${ms} ms`);
    await new Promise((r) => setImmediate(r));
  }
}
