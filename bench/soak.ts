/**
 * Soak (issue 6): writes and queries for a set time against pulsedb in a child process; every
 * 10 s prints the server's RSS, its run count, the flush backlog, write throughput and query
 * latency. Both should stay flat.
 *
 *   npm run bench:soak -- [--minutes 5] [--writers 16] [--runtime node|deno]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { flags, percentile, printTable, type Runtime, startServer } from "./support.ts";

const opts = flags();
const minutes = Number(opts.get("minutes") ?? 5);
const writers = Number(opts.get("writers") ?? 16);
const runtime = (opts.get("runtime") ?? "node") as Runtime;
const DAY = 86_400_000;
const BASE = Date.UTC(2024, 0, 15);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-soak-"));
const server = await startServer({
  PULSE_DATA_DIR: dir,
  PULSE_MEMTABLE_ROWS: "100000",
  PULSE_FLUSH_INTERVAL_MS: "5000",
  PULSE_COMPACTION_SETTLE_MS: "10000",
}, runtime);

let stop = false;
let writes = 0;
let failures = 0;
let queryTimes: number[] = [];
let clock = 0; // simulated seconds: 10 users x 2 devices at 1 Hz, moving forward

async function writer(id: number): Promise<void> {
  while (!stop) {
    const batch = [];
    const n = id % 4 === 0 ? 500 : 1;
    for (let i = 0; i < n; i++) {
      const s = clock++;
      const ts = BASE + Math.floor(s / 20) * 1000;
      batch.push({
        user_id: `user_${s % 10}`,
        device_id: (s >> 1) % 2 ? "device_a" : "device_b",
        timestamp: new Date(ts).toISOString(),
        heart_rate: 60 + (s % 80),
      });
    }
    try {
      const res = await fetch(`${server.url}/metrics/heart-rate`, {
        method: "POST",
        body: JSON.stringify(n === 1 ? batch[0] : batch),
        headers: { "content-type": "application/json" },
      });
      await res.arrayBuffer();
      if (res.ok) writes += n;
      else failures++;
    } catch {
      failures++;
    }
  }
}

async function reader(): Promise<void> {
  while (!stop) {
    const latest = BASE + Math.floor(clock / 20) * 1000;
    const start = Math.max(BASE, latest - DAY + Math.floor(Math.random() * 1000));
    const t0 = performance.now();
    const res = await fetch(
      `${server.url}/metrics/heart-rate?user_id=user_${Math.floor(Math.random() * 10)}&start=${
        new Date(start).toISOString()
      }&end=${new Date(start + DAY).toISOString()}`,
    );
    await res.arrayBuffer();
    queryTimes.push(performance.now() - t0);
    if (res.status >= 500) failures++;
  }
}

function rssMb(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
  } catch {
    return NaN;
  }
}

async function scrape(): Promise<{ runs: number; backlog: number }> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  let runs = 0;
  for (const m of text.matchAll(/^pulsedb_runs\{[^}]*\} (\d+)/gm)) runs += Number(m[1]);
  const backlog = Number(/^pulsedb_memtables_waiting_flush (\d+)/m.exec(text)?.[1] ?? 0);
  return { runs, backlog };
}

console.log(
  `pulsedb soak: ${minutes} min, ${writers} writers (1 in 4 sends batches of 500), 2 readers, runtime ${runtime}`,
);
const tasks = [...Array.from({ length: writers }, (_, i) => writer(i)), reader(), reader()];
const rows: Array<Array<string | number>> = [];
const started = Date.now();
let lastWrites = 0;
while (Date.now() - started < minutes * 60_000) {
  await new Promise((r) => setTimeout(r, 10_000));
  const { runs, backlog } = await scrape();
  const row = [
    Math.round((Date.now() - started) / 1000),
    Math.round((writes - lastWrites) / 10),
    writes,
    percentile(queryTimes, 50),
    percentile(queryTimes, 99),
    Math.round(rssMb(server.child.pid!)),
    runs,
    backlog,
    failures,
  ];
  rows.push(row);
  console.log(
    `t=${row[0]}s writes/s=${row[1]} total=${row[2]} query p50=${(row[3] as number).toFixed(1)}ms p99=${
      (row[4] as number).toFixed(1)
    }ms rss=${row[5]}MB runs=${row[6]} backlog=${row[7]} failures=${row[8]}`,
  );
  lastWrites = writes;
  queryTimes = [];
}
stop = true;
await Promise.allSettled(tasks);
const exit = await server.stop();
fs.rmSync(dir, { recursive: true, force: true });
console.log();
printTable([
  "t (s)",
  "writes/s",
  "readings",
  "query p50 ms",
  "query p99 ms",
  "RSS MB",
  "runs",
  "flush backlog",
  "failures",
], rows);
const rss = rows.map((r) => r[5] as number);
const half = rss.slice(Math.floor(rss.length / 2));
console.log(
  `\nRSS: max ${Math.max(...rss)} MB, second half ${Math.min(...half)}-${Math.max(...half)} MB; runs at end ${
    rows.at(-1)?.[6]
  }; server exit code ${exit}`,
);
