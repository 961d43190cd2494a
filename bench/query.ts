/**
 * Query benchmark (issue 3): does a 1-day query cost the same with 1, 7 or 30 days of history?
 *
 * Builds histories through the engine (device_a and device_b at 1 Hz, for 1 and 10 users), lets
 * compaction settle, then starts pulsedb as a separate process and measures over HTTP, one request
 * at a time, the latency of 1-day queries with the cache missed (start moved by one second each
 * time) and hit (the same query again).
 *
 *   npm run bench:query -- [--days 1,7,30] [--users 1,10] [--queries 200] [--runtime node|deno] [--rebuild]
 *
 * Histories are kept in $TMPDIR/pulsedb-bench-query-<days>d-<users>u (built once, reused).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Compactor } from "../src/storage/compactor.ts";
import { testConfig } from "../src/ops/config.ts";
import { Engine } from "../src/engine.ts";
import { silentLogger } from "../src/ops/logger.ts";
import type { Reading } from "../src/reading.ts";
import { flags, percentile, printTable, type Runtime, startServer } from "./support.ts";

const DAY = 86_400_000;
const END = Date.UTC(2024, 1, 1); // histories end here

const opts = flags();
const daysList = (opts.get("days") ?? "1,7,30").split(",").map(Number);
const usersList = (opts.get("users") ?? "1,10").split(",").map(Number);
const queries = Number(opts.get("queries") ?? 200);
const runtime = (opts.get("runtime") ?? "node") as Runtime;
const rebuild = opts.has("rebuild");

async function build(dir: string, days: number, users: number): Promise<void> {
  if (!rebuild && fs.existsSync(path.join(dir, "BUILT"))) return;
  fs.rmSync(dir, { recursive: true, force: true });
  const started = performance.now();
  const engine = await Engine.open(
    testConfig({
      dataDir: dir,
      fsync: "interval",
      memtableRows: 4_000_000,
      memoryBudgetBytes: 2 * 2 ** 30,
      compaction: false,
    }),
    silentLogger,
  );
  const batch: Reading[] = [];
  let rows = 0;
  for (let d = days; d >= 1; d--) {
    const dayStart = END - d * DAY;
    for (let u = 0; u < users; u++) {
      for (let s = 0; s < 86_400; s++) {
        const ts = dayStart + s * 1000;
        const base = 60 + ((s >> 6) % 40) + u;
        batch.push({ userId: `user_${u}`, deviceId: "device_a", ts, heartRate: base + (s % 7) / 10 });
        batch.push({ userId: `user_${u}`, deviceId: "device_b", ts, heartRate: base + 3 });
        if (batch.length >= 10_000) {
          await engine.write(batch);
          rows += batch.length;
          batch.length = 0;
        }
      }
    }
    if (batch.length) {
      await engine.write(batch);
      rows += batch.length;
      batch.length = 0;
    }
    await engine.flush();
    process.stdout.write(
      `\r  building ${days}d x ${users}u: day ${days - d + 1}/${days}, ${rows.toLocaleString()} readings`,
    );
  }
  const compactor = new Compactor(engine, { trigger: 4, settleMs: 0 });
  await compactor.runUntilIdle();
  const runs = engine.stats().runs.length;
  await engine.close();
  fs.writeFileSync(path.join(dir, "BUILT"), new Date().toISOString());
  process.stdout.write(
    `\r  built ${days}d x ${users}u: ${rows.toLocaleString()} readings, ${runs} runs, ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s\n`,
  );
}

async function measure(url: string, n: number, vary: boolean): Promise<number[]> {
  const times: number[] = [];
  const lastDay = END - DAY;
  for (let i = 0; i < n + 5; i++) {
    const start = lastDay - (vary ? (i + 1) * 1000 : 0);
    const q = `${url}/metrics/heart-rate?user_id=user_0&start=${new Date(start).toISOString()}&end=${
      new Date(start + DAY).toISOString()
    }`;
    const t0 = performance.now();
    const res = await fetch(q);
    const body = await res.text();
    const ms = performance.now() - t0;
    if (res.status !== 200) throw new Error(`query answered ${res.status}: ${body.slice(0, 300)}`);
    if (i >= 5) times.push(ms); // the first few warm up the process
  }
  return times;
}

console.log(`pulsedb query benchmark: runtime ${runtime}, ${queries} queries per cell, 1-day range, 1-minute buckets`);
const rows: Array<Array<string | number>> = [];
const p50ByHistory = new Map<string, number>();
for (const users of usersList) {
  for (const days of daysList) {
    const dir = path.join(os.tmpdir(), `pulsedb-bench-query-${days}d-${users}u`);
    await build(dir, days, users);
    const runFiles = fs.readdirSync(path.join(dir, "runs")).reduce(
      (n, d) => n + fs.readdirSync(path.join(dir, "runs", d)).length,
      0,
    );
    const server = await startServer({ PULSE_DATA_DIR: dir, PULSE_COMPACTION: "off" }, runtime);
    try {
      const miss = await measure(server.url, queries, true);
      const hit = await measure(server.url, queries, false);
      p50ByHistory.set(`${days}|${users}`, percentile(miss, 50));
      rows.push([
        `${days} d`,
        users,
        (days * users * 172_800).toLocaleString("en-US"),
        runFiles,
        percentile(miss, 50),
        percentile(miss, 99),
        percentile(hit, 50),
        percentile(hit, 99),
      ]);
    } finally {
      await server.stop();
    }
  }
}
console.log();
printTable(
  ["history", "users", "readings", "run files", "miss p50 ms", "miss p99 ms", "hit p50 ms", "hit p99 ms"],
  rows,
);
console.log();
for (const users of usersList) {
  const one = p50ByHistory.get(`1|${users}`);
  const month = p50ByHistory.get(`30|${users}`);
  if (one && month) {
    console.log(`${users} user(s): p50 with 30 days of history / with 1 day = ${(month / one).toFixed(2)}`);
  }
}
