/**
 * Does background work block the event loop? Times the gaps of a 1 ms timer while a memtable is
 * flushed and while runs are compacted, in-process (issue 4: "keep the event loop free").
 *
 *   npm run bench:loop -- [--rows 200000,1000000]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Compactor } from "../src/storage/compactor.ts";
import { testConfig } from "../src/ops/config.ts";
import { silentLogger } from "../src/ops/logger.ts";
import { openPulseDb } from "../src/pulsedb.ts";
import { flags, percentile, printTable } from "./support.ts";

const sizes = (flags().get("rows") ?? "200000,1000000").split(",").map(Number);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-bench-loop-"));
const { engine } = await openPulseDb(
  testConfig({
    dataDir: dir,
    compaction: false,
    memtableRows: 50_000_000,
    memoryBudgetBytes: 4 * 2 ** 30,
    fsync: "interval",
  }),
  silentLogger,
);
const BASE = Date.UTC(2024, 0, 15);

async function fill(n: number, offset: number): Promise<void> {
  const batch = [];
  for (let i = 0; i < n; i++) {
    batch.push({
      userId: `user_${i % 10}`,
      deviceId: i % 2 ? "device_a" : "device_b",
      ts: BASE + Math.floor((i + offset) / 20) * 1000,
      heartRate: 60 + (i % 80),
    });
    if (batch.length === 10_000) {
      await engine.write(batch);
      batch.length = 0;
    }
  }
  if (batch.length) await engine.write(batch);
}

/** Starts timing 1 ms timer gaps; the returned function stops and summarizes. */
function monitor(): () => { p50: number; p99: number; max: number } {
  const gaps: number[] = [];
  let last = performance.now();
  let stop = false;
  const tick = () => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
    if (!stop) setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  return () => {
    stop = true;
    return { p50: percentile(gaps, 50), p99: percentile(gaps, 99), max: Math.max(...gaps) };
  };
}

const rows: Array<Array<string | number>> = [];
for (const n of sizes) {
  await fill(n, n);
  await new Promise((r) => setTimeout(r, 50)); // let background frame conversion finish, as it would between writes
  const stop = monitor();
  const t0 = performance.now();
  await engine.flush();
  const g = stop();
  rows.push([
    `flush of a ${n.toLocaleString("en-US")}-row memtable`,
    Math.round(performance.now() - t0),
    g.p50,
    g.p99,
    g.max,
  ]);
}
for (let k = 0; k < 3; k++) {
  await fill(200_000, k * 7);
  await engine.flush();
}
const stop = monitor();
const t0 = performance.now();
await new Compactor(engine, { trigger: 2, settleMs: 0 }).runUntilIdle();
const g = stop();
rows.push(["compaction of the runs above", Math.round(performance.now() - t0), g.p50, g.p99, g.max]);
await engine.close();
fs.rmSync(dir, { recursive: true, force: true });
console.log(
  `event-loop gaps of a 1 ms timer (${
    typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? "deno" : "node"
  })`,
);
printTable(["work", "duration ms", "gap p50 ms", "gap p99 ms", "gap max ms"], rows);
