/**
 * Erasure benchmark (`npm run bench:erasure -- [--days N] [--users U] [--deletes K]`):
 *  1. builds U users (default 10) x 2 devices x one reading per second over N days (default 365;
 *     use `--days 2` or so on a small or shared machine: the full year is 630 M readings), one run
 *     per day as after settled compaction;
 *  2. DELETE latency: K (default 200) DELETEs through the HTTP app, one at a time and 16 at a time
 *     (fsync `always`, group-committed), p50 / p99;
 *  3. the purge of one user's whole history: time, runs rewritten, bytes written, and the write
 *     amplification (bytes the purge wrote / bytes of the deleted user's share of the data), then
 *     an independent scan proving the user's readings are gone.
 * Figures scale linearly with days (each day's run is rewritten once); the table extrapolates the
 * purge to 365 days when run with fewer.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { openPulseDb } from "../src/pulsedb.ts";
import { testConfig } from "../src/ops/config.ts";
import { silentLogger } from "../src/ops/logger.ts";
import { createApp } from "../src/http/app.ts";
import { scanForUser } from "../src/storage/erasure-scan.ts";
import type { Reading } from "../src/reading.ts";
import { flags, percentile, printTable } from "./support.ts";

const f = flags();
const DAYS = Number(f.get("days") ?? 365);
const USERS = Number(f.get("users") ?? 10);
const DELETES = Number(f.get("deletes") ?? 200);
const DAY_MS = 86_400_000;
const START = Date.UTC(2024, 0, 1);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-bench-erasure-"));

console.log(`erasure benchmark: ${USERS} users x 2 devices x 1 reading/s x ${DAYS} day(s) in ${dir}`);
const base = { dataDir: dir, compaction: false, logLevel: "silent" as const };

// 1. Data: one memtable (and so one run) per day.
let t0 = performance.now();
{
  const { engine } = await openPulseDb(
    testConfig({ ...base, fsync: "interval", memtableRows: 5_000_000, memoryBudgetBytes: 4 * 2 ** 30 }),
    silentLogger,
  );
  for (let d = 0; d < DAYS; d++) {
    const day = START + d * DAY_MS;
    let batch: Reading[] = [];
    for (let s = 0; s < 86_400; s++) {
      for (let u = 0; u < USERS; u++) {
        const hr = 60 + ((s * 7 + u * 13) % 90);
        batch.push({ userId: `user_${u}`, deviceId: "device_a", ts: day + s * 1000, heartRate: hr });
        batch.push({ userId: `user_${u}`, deviceId: "device_b", ts: day + s * 1000, heartRate: hr + 0.5 });
      }
      if (batch.length >= 10_000) {
        await engine.write(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await engine.write(batch);
    await engine.flush();
    process.stdout.write(`  day ${d + 1}/${DAYS}\r`);
  }
  await engine.close();
}
const buildS = (performance.now() - t0) / 1000;

const { engine } = await openPulseDb(testConfig({ ...base }), silentLogger);
const app = createApp({ engine, config: engine.config, log: silentLogger });
const runsBefore = engine.stats().runs;
const bytesBefore = runsBefore.reduce((n, r) => n + r.bytes, 0);
const rowsBefore = runsBefore.reduce((n, r) => n + r.rows, 0);
console.log(
  `\n  built ${rowsBefore.toLocaleString("en-US")} readings in ${runsBefore.length} runs, ${bytesBefore} bytes, ${
    buildS.toFixed(1)
  } s`,
);

// 2. DELETE latency (users that hold no data: the latency is that of the durable tombstone).
async function del(i: number): Promise<number> {
  const s = new Date(START + (i % 24) * 3_600_000).toISOString();
  const e = new Date(START + (i % 24 + 1) * 3_600_000).toISOString();
  const started = performance.now();
  const res = await app.request(`/metrics/heart-rate?user_id=ghost_${i}&start=${s}&end=${e}`, { method: "DELETE" });
  if (res.status !== 200) throw new Error(`DELETE answered ${res.status}`);
  return performance.now() - started;
}
for (let i = 0; i < 20; i++) await del(10_000 + i); // warm-up (JIT, first fsyncs), not counted
const serial: number[] = [];
for (let i = 0; i < DELETES; i++) serial.push(await del(i));
const concurrent: number[] = [];
for (let i = 0; i < DELETES; i += 16) {
  concurrent.push(
    ...await Promise.all(Array.from({ length: Math.min(16, DELETES - i) }, (_, k) => del(DELETES + i + k))),
  );
}
t0 = performance.now();
await engine.purger.run(); // retire the no-op erasures (none matches a reading; warm-up ones included)
const noopPurgeS = (performance.now() - t0) / 1000;

// 3. Purge one user's whole history.
const userRows = rowsBefore / USERS;
const res = await app.request(`/metrics/heart-rate?user_id=user_0`, { method: "DELETE" });
if (res.status !== 200) throw new Error(`DELETE answered ${res.status}`);
t0 = performance.now();
const report = await engine.purger.run();
const purgeS = (performance.now() - t0) / 1000;
const bytesAfter = engine.stats().runs.reduce((n, r) => n + r.bytes, 0);
t0 = performance.now();
const scan = await scanForUser(dir, { userId: "user_0" });
const scanS = (performance.now() - t0) / 1000;
await engine.close();
if (scan.hits.length > 0 || scan.tombstoneRecords.length > 0) {
  throw new Error("user_0 is not gone: " + JSON.stringify(scan));
}

const deletedShare = bytesBefore / USERS;
const amp = report.bytesWritten / deletedShare;
const p = (xs: number[], q: number) => percentile(xs, q);
console.log("");
printTable(["measure", "figure", "target"], [
  ["DELETE latency p50, one at a time (ms)", p(serial, 50), "< 5"],
  ["DELETE latency p99, one at a time (ms)", p(serial, 99), "< 20"],
  ["DELETE latency p50, 16 concurrent (ms)", p(concurrent, 50), "< 10"],
  ["DELETE latency p99, 16 concurrent (ms)", p(concurrent, 99), "< 50"],
  [`purge of ${2 * DELETES} no-op erasures (s)`, noopPurgeS, "-"],
  [`purge of one user's ${DAYS} day(s) (s)`, purgeS, "-"],
  ["purge of one user's year, extrapolated (s)", (purgeS * 365) / DAYS, "< 3,600 (deadline 86,400)"],
  ["readings removed", report.rowsRemoved, `${userRows.toLocaleString("en-US")}`],
  ["runs rewritten", report.runsRewritten, `${DAYS} (one per day)`],
  ["bytes written by the purge", report.bytesWritten, "-"],
  ["write amplification (bytes written / deleted user's share)", amp, `~${USERS - 1} (users - 1: one rewrite)`],
  ["run bytes before -> after", `${bytesBefore} -> ${bytesAfter}`, "-"],
  ["verify scan of the data dir (s)", scanS, "-"],
]);
console.log(`\n(${os.cpus().length} cores; figures from a shared, loaded machine: compare ratios, not absolutes.)`);
fs.rmSync(dir, { recursive: true, force: true });
