/**
 * POST latency while the libuv thread pool is busy (issue 11, item 13). nodejs-polars runs each
 * `collect()` / `sinkParquet()` as a Node-API async task on libuv's pool, the pool that also carries
 * the WAL's write and fdatasync. This measures POST p50/p99 (one client, sequential, fsync always)
 * idle, and while 8 clients run long-range queries and a compaction runs, for each pool size given.
 *
 * `npx tsx bench/threadpool.ts [--days 60] [--rows 20000] [--posts 300] [--seconds 10] [--configs 4:1024,16:2]`
 * (each config is `UV_THREADPOOL_SIZE:PULSE_QUERY_CONCURRENCY`; 1024 means no query gate)
 * Compare ratios within one run: the machine is shared.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { testConfig } from "../src/ops/config.ts";
import { silentLogger } from "../src/ops/logger.ts";
import { Engine } from "../src/engine.ts";
import { flags, percentile, printTable, startServer } from "./support.ts";

const f = flags();
const DAYS = Number(f.get("days") ?? 60);
const ROWS = Number(f.get("rows") ?? 20_000);
const POSTS = Number(f.get("posts") ?? 300);
/** `pool:gate` pairs: UV_THREADPOOL_SIZE and PULSE_QUERY_CONCURRENCY (1024 = no gate). */
const CONFIGS = (f.get("configs") ?? "4:1024,16:1024,4:2,16:2").split(",").map((c) => c.split(":").map(Number));
/** A phase stops after POSTS posts or this many seconds, whichever comes first. */
const SECONDS = Number(f.get("seconds") ?? 10);
const QUERIES = 8;
const START = Date.UTC(2024, 0, 1);
const DAY = 86_400_000;

/** Two runs per day (so every day has a compaction to do), no WAL. */
async function build(dir: string): Promise<void> {
  const engine = await Engine.open(
    testConfig({ dataDir: dir, compaction: false, memtableRows: 50_000_000, memoryBudgetBytes: 8 * 1024 ** 3 }),
    silentLogger,
  );
  for (const half of [0, 1]) {
    let batch = [];
    for (let d = 0; d < DAYS; d++) {
      for (let i = half; i < ROWS; i += 2) {
        batch.push({
          userId: "u1",
          deviceId: i % 4 === 0 ? "device_b" : "device_a",
          ts: START + d * DAY + Math.floor((i * DAY) / ROWS),
          heartRate: 50 + (i % 100),
        });
        if (batch.length === 10_000) {
          await engine.write(batch);
          batch = [];
        }
      }
    }
    if (batch.length > 0) await engine.write(batch);
    await engine.flush();
  }
  await engine.close();
}

async function postLatencies(url: string): Promise<number[]> {
  const out: number[] = [];
  const deadline = performance.now() + SECONDS * 1000;
  for (let n = 0; n < POSTS && performance.now() < deadline; n++) {
    const body = JSON.stringify({
      user_id: "probe",
      device_id: "device_a",
      timestamp: new Date(START + n * 1000).toISOString(),
      heart_rate: 70,
    });
    const t = performance.now();
    const res = await fetch(`${url}/metrics/heart-rate`, {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`POST answered ${res.status}`);
    out.push(performance.now() - t);
  }
  return out;
}

async function phase(
  dataDir: string,
  pool: number,
  gate: number,
  loaded: boolean,
): Promise<{ p50: number; p99: number; q: number; n: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-pool-"));
  fs.cpSync(dataDir, dir, { recursive: true });
  const server = await startServer({
    PULSE_DATA_DIR: dir,
    UV_THREADPOOL_SIZE: String(pool),
    PULSE_QUERY_CONCURRENCY: String(gate),
    PULSE_COMPACTION: loaded ? "on" : "off",
    PULSE_COMPACTION_SETTLE_MS: "0", // every day has two runs: compaction starts at once
    PULSE_CACHE_ENTRIES: "0",
  });
  let stop = false;
  let queries = 0;
  const end = new Date(START + DAYS * DAY).toISOString();
  const loops = loaded
    ? Array.from({ length: QUERIES }, async (_, k) => {
      for (let n = 0; !stop; n++) {
        const start = new Date(START + ((n * QUERIES + k) % 60) * 60_000).toISOString();
        const res = await fetch(`${server.url}/metrics/heart-rate?user_id=u1&start=${start}&end=${end}&bucket=1h`);
        await res.arrayBuffer();
        queries++;
      }
    })
    : [];
  try {
    if (loaded) { while (queries < QUERIES) await new Promise((r) => setTimeout(r, 20)); // queries are running
     }
    const lat = await postLatencies(server.url);
    return { p50: percentile(lat, 50), p99: percentile(lat, 99), q: queries, n: lat.length };
  } finally {
    stop = true;
    await Promise.all(loops);
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const data = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-pool-data-"));
try {
  const t = performance.now();
  await build(data);
  console.log(`built ${DAYS} days x ${ROWS} rows (2 runs a day) in ${Math.round(performance.now() - t)} ms`);
  const rows: Array<Array<string | number>> = [];
  for (const [pool, gate] of CONFIGS) {
    const idle = await phase(data, pool, gate, false);
    const busy = await phase(data, pool, gate, true);
    rows.push([pool, gate, idle.p50, idle.p99, busy.p50, busy.p99, busy.p99 / idle.p99, busy.n, busy.q]);
  }
  printTable(
    [
      "UV_THREADPOOL_SIZE",
      "PULSE_QUERY_CONCURRENCY",
      "idle p50 ms",
      "idle p99 ms",
      "loaded p50 ms",
      "loaded p99 ms",
      "p99 ratio",
      "loaded POSTs",
      "queries done",
    ],
    rows,
  );
} finally {
  fs.rmSync(data, { recursive: true, force: true });
}
