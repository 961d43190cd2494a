/**
 * Query benchmark: the cells of the range issue, one table with targets beside the figures.
 *
 * Builds one user's history through the engine (device_a and device_b at 1 Hz, `--days` days ending
 * 2024-02-01, compaction settled: one run and one rollup per day), then starts pulsedb as a separate
 * process and measures over HTTP, one request at a time, with the result cache missed (each query's
 * start moves back by one second):
 *
 *   - long ranges at coarse buckets (1 year at 1d, 90 days at 6h, 30 days at 1h, 7 days at 5m) and
 *     1 settled day at 1m; a range longer than the history is cut to the history and says so;
 *   - 1 day at 1m written over HTTP just before (batches of 10,000: memtable and fresh runs);
 *   - 1 day at 1m while another user's readings are written at `--load-rate` readings/s.
 *
 * The "added MB" column is the growth of the server's RSS over the cell (a proxy for the memory a
 * query adds).
 *
 *   npm run bench:query -- [--days 365] [--queries 50] [--load-rate 20000] [--runtime node|deno] [--rebuild]
 *
 * The history is kept in $TMPDIR/pulsedb-bench-query-<days>d-1u (built once, reused; --rebuild
 * builds it again). A year (63 M readings) takes long to build on a small machine.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { Compactor } from "../src/storage/compactor.ts";
import { testConfig } from "../src/ops/config.ts";
import { Engine } from "../src/engine.ts";
import { silentLogger } from "../src/ops/logger.ts";
import type { Reading } from "../src/reading.ts";
import { flags, percentile, printTable, type Runtime, startServer } from "./support.ts";

const DAY = 86_400_000;
const END = Date.UTC(2024, 1, 1); // the history ends here

const opts = flags();
const days = Number(opts.get("days") ?? 365);
const queries = Number(opts.get("queries") ?? 50);
const loadRate = Number(opts.get("load-rate") ?? 20_000);
const runtime = (opts.get("runtime") ?? "node") as Runtime;
const rebuild = opts.has("rebuild");

/** device_a and device_b at 1 Hz for one user, one day. */
function dayReadings(userId: string, dayStart: number, from = 0, to = 86_400): Reading[] {
  const out: Reading[] = [];
  for (let s = from; s < to; s++) {
    const ts = dayStart + s * 1000;
    const base = 60 + ((s >> 6) % 40);
    out.push({ userId, deviceId: "device_a", ts, heartRate: base + (s % 7) / 10 });
    out.push({ userId, deviceId: "device_b", ts, heartRate: base + 3 });
  }
  return out;
}

async function build(dir: string): Promise<void> {
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
  let rows = 0;
  for (let d = days; d >= 1; d--) {
    const all = dayReadings("user_0", END - d * DAY);
    for (let i = 0; i < all.length; i += 10_000) await engine.write(all.slice(i, i + 10_000));
    rows += all.length;
    await engine.flush();
    process.stdout.write(`\r  building ${days}d: day ${days - d + 1}/${days}, ${rows.toLocaleString()} readings`);
  }
  await new Compactor(engine, { trigger: 4, settleMs: 0 }).runUntilIdle();
  const runs = engine.stats().runs.length;
  await engine.close();
  fs.writeFileSync(path.join(dir, "BUILT"), new Date().toISOString());
  process.stdout.write(
    `\r  built ${days}d: ${rows.toLocaleString()} readings, ${runs} runs, ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s\n`,
  );
}

function rssMb(pid: number): number {
  try {
    return Number(execFileSync("ps", ["-o", "rss=", "-p", String(pid)]).toString().trim()) / 1024;
  } catch {
    return NaN;
  }
}

/** `n` cache-missing queries (start moved back a second each time) of `rangeDays` ending at `end`. */
async function measure(
  url: string,
  user: string,
  end: number,
  rangeMs: number,
  bucket: string,
  n: number,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n + 3; i++) {
    const start = end - rangeMs - (i + 1) * 1000;
    const q = `${url}/metrics/heart-rate?user_id=${user}&start=${new Date(start).toISOString()}&end=${
      new Date(start + rangeMs).toISOString()
    }&bucket=${bucket}`;
    const t0 = performance.now();
    const res = await fetch(q);
    const body = await res.text();
    const ms = performance.now() - t0;
    if (res.status !== 200) throw new Error(`query answered ${res.status}: ${body.slice(0, 300)}`);
    if (i >= 3) times.push(ms); // the first few warm up the process
  }
  return times;
}

async function postDay(url: string, user: string, dayStart: number): Promise<void> {
  const all = dayReadings(user, dayStart);
  for (let i = 0; i < all.length; i += 10_000) {
    const body = JSON.stringify(
      all.slice(i, i + 10_000).map((r) => ({
        user_id: r.userId,
        device_id: r.deviceId,
        timestamp: new Date(r.ts).toISOString(),
        heart_rate: r.heartRate,
      })),
    );
    const res = await fetch(`${url}/metrics/heart-rate`, {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
    });
    if (res.status !== 200) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
  }
}

/** Writes another user's readings at `rate` readings/s until `stop()`; returns the readings written. */
function loadWriter(url: string, rate: number): { stop(): Promise<number> } {
  let running = true;
  let written = 0;
  const batch = 500;
  const done = (async () => {
    const t0 = performance.now();
    let s = 0;
    while (running) {
      const body = JSON.stringify(Array.from({ length: batch }, (_, i) => ({
        user_id: "load_user",
        device_id: i % 2 ? "device_a" : "device_b",
        timestamp: new Date(END + 10 * DAY + (s + (i >> 1)) * 1000).toISOString(),
        heart_rate: 70 + (i % 30),
      })));
      s += batch / 2;
      const res = await fetch(`${url}/metrics/heart-rate`, {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
      });
      await res.text();
      written += batch;
      const ahead = (written / rate) * 1000 - (performance.now() - t0);
      if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return written;
    },
  };
}

const dir = path.join(os.tmpdir(), `pulsedb-bench-query-${days}d-1u`);
await build(dir);
const runFiles = fs.readdirSync(path.join(dir, "runs")).reduce(
  (n, d) => n + fs.readdirSync(path.join(dir, "runs", d)).length,
  0,
);
console.log(
  `pulsedb query benchmark: runtime ${runtime}, ${queries} cache-missing queries per cell, history ${days} days ` +
    `(${(days * 172_800).toLocaleString("en-US")} readings, ${runFiles} run files)`,
);
const work = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-bench-query-run-"));
fs.cpSync(dir, work, { recursive: true });
fs.rmSync(path.join(work, "LOCK"), { force: true });
const server = await startServer({ PULSE_DATA_DIR: work, PULSE_COMPACTION: "on" }, runtime);
const table: Array<Array<string | number>> = [];
try {
  const cells: Array<[string, number, string, number]> = [
    ["1 year at 1d", 365, "1d", 50],
    ["90 days at 6h", 90, "6h", 50],
    ["30 days at 1h", 30, "1h", 25],
    ["7 days at 5m", 7, "5m", 25],
    ["1 day at 1m, settled", 1, "1m", 15],
  ];
  for (const [name, wantDays, bucket, target] of cells) {
    const span = Math.min(wantDays, days);
    const before = rssMb(server.child.pid!);
    const t = await measure(server.url, "user_0", END, span * DAY - 60_000, bucket, queries);
    const label = span < wantDays ? `${name} (history: ${span} d)` : name;
    table.push([label, target, percentile(t, 50), percentile(t, 99), Math.max(0, rssMb(server.child.pid!) - before)]);
  }
  // Written over HTTP just before: the day sits in the memtable and fresh runs.
  const liveDay = END + DAY;
  let before = rssMb(server.child.pid!);
  await postDay(server.url, "live_user", liveDay);
  let t = await measure(server.url, "live_user", liveDay + DAY, DAY - 60_000, "1m", queries);
  table.push([
    "1 day at 1m, written over HTTP just before",
    15,
    percentile(t, 50),
    percentile(t, 99),
    Math.max(0, rssMb(server.child.pid!) - before),
  ]);
  // Under a steady write load of another user.
  before = rssMb(server.child.pid!);
  const load = loadWriter(server.url, loadRate);
  const loadStart = performance.now();
  t = await measure(server.url, "live_user", liveDay + DAY, DAY - 60_000, "1m", queries);
  const written = await load.stop();
  const achieved = Math.round(written / ((performance.now() - loadStart) / 1000));
  table.push([
    `1 day at 1m, under ${achieved.toLocaleString("en-US")} readings/s of writes`,
    30,
    percentile(t, 50),
    percentile(t, 99),
    Math.max(0, rssMb(server.child.pid!) - before),
  ]);
} finally {
  await server.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
console.log();
printTable(["query (cache missed)", "target p50 ms", "p50 ms", "p99 ms", "added MB"], table);
