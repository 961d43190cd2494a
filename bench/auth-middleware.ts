/**
 * Micro-benchmark: the CPU cost of bearer-token checking per request, in-process (`app.request`, no
 * network), for a trivial route:
 *   (a) no authentication,
 *   (b) pulsedb's own middleware (src/http/auth.ts, audit lines to a discarding sink),
 *   (c) Hono's `bearerAuth` with a `verifyToken` doing the same hash lookup (no audit);
 * then the whole pulsedb app (engine included, `PULSE_FSYNC=interval` so the CPU is what is
 * measured), single-reading POSTs, access control off and on, alternated, median of the paired rounds.
 *
 *   npx tsx bench/auth-middleware.ts [--requests 40000]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { AccessControl } from "../src/http/auth.ts";
import { AuditLog } from "../src/http/audit.ts";
import { hashToken, TokenStore } from "../src/storage/token-store.ts";
import { createApp } from "../src/http/app.ts";
import { testConfig } from "../src/ops/config.ts";
import { silentLogger } from "../src/ops/logger.ts";
import { openPulseDb } from "../src/pulsedb.ts";
import { flags, printTable } from "./support.ts";

const n = Number(flags().get("requests") ?? 40_000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-bench-auth-"));
const store = TokenStore.load(dir);
for (let i = 0; i < 999; i++) await store.create({ name: `t${i}`, users: "*", scopes: ["read"], expiresAt: null });
const { token } = await store.create({ name: "bench", users: ["u1"], scopes: ["read", "write"], expiresAt: null });
const ADMIN = "a".repeat(40);

/**
 * CPU time (user + system) of this process in µs: on a machine shared with other work, CPU time is
 * far steadier than wall time (time spent descheduled is not counted).
 */
function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function route(app: Hono): Hono {
  app.get("/metrics/heart-rate", (c) => c.text("ok"));
  return app;
}

const bare = route(new Hono());
const access = new AccessControl({ adminToken: ADMIN, store, audit: new AuditLog(() => {}), maxBodyBytes: 1 << 20 });
const ours = route(new Hono().use("*", access.middleware));
const hono = route(
  new Hono().use(
    "/metrics/*",
    bearerAuth({
      verifyToken: (t) => store.lookup(hashToken(t)) !== undefined,
    }),
  ),
);

function median(xs: number[]): number {
  return xs.slice().sort((a, b) => a - b)[xs.length >> 1];
}

async function measure(app: Hono, count: number): Promise<number> {
  const init = { headers: { authorization: `Bearer ${token}` } };
  const url = "http://x/metrics/heart-rate?user_id=u1";
  for (let i = 0; i < 200; i++) await app.request(url, init); // warm-up
  const t0 = cpuMicros();
  for (let i = 0; i < count; i++) {
    const res = await app.request(url, init);
    if (res.status !== 200) throw new Error(`status ${res.status}`);
  }
  return (cpuMicros() - t0) / count;
}

// Many short interleaved rounds, median of each (the machine may be shared: the median of many
// short rounds is steadier than one long run).
const ROUNDS = 20;
const variants = [["(a) no auth", bare], ["(b) pulsedb middleware", ours], ["(c) hono bearerAuth", hono]] as const;
const samples: number[][] = variants.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  for (let v = 0; v < variants.length; v++) {
    const i = (v + round) % variants.length; // rotate the order
    samples[i].push(await measure(variants[i][1], n / ROUNDS));
  }
}
const med = samples.map(median);
printTable(
  ["variant", `CPU µs / request (median of ${ROUNDS})`],
  variants.map(([name], v) => [name, med[v]]),
);
console.log(
  `\nauth cost per request: ours ${(med[1] - med[0]).toFixed(2)} µs, bearerAuth ${(med[2] - med[0]).toFixed(2)} µs`,
);

// The whole app: POST one reading, access control off vs on (audit lines to a discarding sink).
const dbDir = path.join(dir, "db");
const { engine } = await openPulseDb(
  testConfig({
    dataDir: dbDir,
    fsync: "interval",
    compaction: false,
    memtableRows: 50_000_000,
    flushIntervalMs: 86_400_000,
    memoryBudgetBytes: 4096 * 1024 * 1024,
    cacheEntries: 0,
  }),
  silentLogger,
);
const writer = await store.create({
  name: "device",
  users: Array.from({ length: 10 }, (_, i) => `user_${i}`),
  scopes: ["write"],
  expiresAt: null,
});
const appOff = createApp({ engine, config: engine.config, log: silentLogger });
const appOn = createApp({ engine, config: engine.config, log: silentLogger, access });
let k = 0;
async function post(app: Hono, m: number, auth: boolean): Promise<number> {
  const t0 = cpuMicros();
  for (let i = 0; i < m; i++, k++) {
    const res = await app.request("http://x/metrics/heart-rate", {
      method: "POST",
      headers: auth ? { authorization: `Bearer ${writer.token}` } : {},
      body: JSON.stringify({
        user_id: `user_${k % 10}`,
        device_id: "device_a",
        timestamp: new Date(Date.UTC(2024, 0, 15) + k * 1000).toISOString(),
        heart_rate: 60 + (k % 80),
      }),
    });
    if (res.status !== 200) throw new Error(`status ${res.status}`);
  }
  return (cpuMicros() - t0) / m;
}
await post(appOff, 5000, false);
await post(appOn, 5000, true);
const offs: number[] = [];
const ons: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  if (round % 2 === 0) {
    offs.push(await post(appOff, n / ROUNDS, false));
    ons.push(await post(appOn, n / ROUNDS, true));
  } else {
    ons.push(await post(appOn, n / ROUNDS, true));
    offs.push(await post(appOff, n / ROUNDS, false));
  }
}
const ratios = offs.map((off, i) => off / ons[i]);
console.log(
  `\nwhole app, POST one reading (in process, fsync interval), median of ${ROUNDS} rounds: off ${
    median(offs).toFixed(1)
  } µs, on ${median(ons).toFixed(1)} µs CPU per request; throughput on/off, median of the paired rounds = ${
    median(ratios).toFixed(3)
  }`,
);
await engine.close();
fs.rmSync(dir, { recursive: true, force: true });
