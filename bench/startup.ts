/**
 * Start-up time over one user's year: 365 day runs (small ones: the open checks sizes, not
 * contents, so their size does not matter), an empty WAL. Prints the median time of Engine.open
 * over a few opens and, for comparison, what checking every checksum (the old start-up, now the
 * background pass) costs.
 *
 * `npx tsx bench/startup.ts [--runs 365] [--rows-per-run 100] [--opens 5]`
 * `./node_modules/.bin/deno run -A bench/startup.ts`
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { testConfig } from "../src/ops/config.ts";
import { createLogger } from "../src/ops/logger.ts";
import { Engine } from "../src/engine.ts";
import { verifyRun } from "../src/storage/run.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "365" },
    "rows-per-run": { type: "string", default: "100" },
    opens: { type: "string", default: "5" },
  },
});
const RUNS = Number(values.runs);
const ROWS = Number(values["rows-per-run"]);
const OPENS = Number(values.opens);
const DAY = 86_400_000;
const START = Date.UTC(2024, 0, 1);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-startup-"));
try {
  const config = testConfig({ dataDir: dir, compaction: false, memtableRows: 10_000_000 });
  let engine = await Engine.open(config, createLogger("silent"));
  const t0 = performance.now();
  const readings = [];
  for (let d = 0; d < RUNS; d++) {
    for (let i = 0; i < ROWS; i++) {
      readings.push({ userId: "u1", deviceId: "device_a", ts: START + d * DAY + i * 60_000, heartRate: 60 + (i % 40) });
    }
  }
  for (let i = 0; i < readings.length; i += 10_000) await engine.write(readings.slice(i, i + 10_000));
  await engine.flush();
  await engine.close();
  console.log(`built ${engine.stats().runs.length} runs of ${ROWS} rows in ${Math.round(performance.now() - t0)} ms`);

  const opens: number[] = [];
  for (let k = 0; k < OPENS; k++) {
    const t = performance.now();
    engine = await Engine.open(config, createLogger("silent"));
    opens.push(performance.now() - t);
    await engine.close();
  }
  opens.sort((a, b) => a - b);
  const metas = engine.stats().runs;
  const c0 = performance.now();
  for (const m of metas) await verifyRun(dir, m);
  const crcMs = performance.now() - c0;
  console.log(
    JSON.stringify({
      runtime: typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? "deno" : "node",
      runs: metas.length,
      openMedianMs: Math.round(opens[Math.floor(opens.length / 2)]),
      openMs: opens.map(Math.round),
      checksumEveryRunMs: Math.round(crcMs),
      bytes: metas.reduce((s, m) => s + m.bytes, 0),
    }),
  );
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
