import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { AccessControl } from "./src/http/auth.ts";
import { AuditLog } from "./src/http/audit.ts";
import { TokenStore } from "./src/storage/token-store.ts";
import { createApp } from "./src/http/app.ts";
import { testConfig } from "./src/ops/config.ts";
import { silentLogger } from "./src/ops/logger.ts";
import { openPulseDb } from "./src/pulsedb.ts";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "prof-"));
const store = TokenStore.load(dir);
const { token } = await store.create({ name: "bench", users: "*", scopes: ["read", "write"], expiresAt: null });
const access = new AccessControl({ adminToken: "a".repeat(40), store, audit: new AuditLog(() => {}), maxBodyBytes: 1 << 20 });
const { engine } = await openPulseDb(testConfig({ dataDir: path.join(dir, "db"), fsync: "interval", compaction: false, memtableRows: 50_000_000, flushIntervalMs: 86_400_000, memoryBudgetBytes: 4096 * 1024 * 1024, cacheEntries: 0 }), silentLogger);
const on = process.argv[2] === "on";
const app = createApp({ engine, config: engine.config, log: silentLogger, access: on ? access : undefined });
const t0 = process.cpuUsage();
for (let k = 0; k < 30000; k++) {
  const res = await app.request("http://x/metrics/heart-rate", { method: "POST", headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ user_id: `user_${k % 10}`, device_id: "device_a", timestamp: new Date(Date.UTC(2024, 0, 15) + k * 1000).toISOString(), heart_rate: 60 + (k % 80) }) });
  if (res.status !== 200) throw new Error(String(res.status));
}
const u = process.cpuUsage(t0);
console.log(on ? "on" : "off", ((u.user + u.system) / 30000).toFixed(1), "µs cpu");
await engine.close();
fs.rmSync(dir, { recursive: true });
