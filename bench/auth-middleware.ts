/**
 * Micro-benchmark: the cost of bearer-token checking per request, in-process (`app.request`, no
 * network), for a trivial route:
 *   (a) no authentication,
 *   (b) pulsedb's own middleware (src/http/auth.ts, audit lines to a discarding sink),
 *   (c) Hono's `bearerAuth` with a `verifyToken` doing the same hash lookup (no audit).
 *
 *   npx tsx bench/auth-middleware.ts [--requests 200000]
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { AccessControl } from "../src/http/auth.ts";
import { AuditLog } from "../src/http/audit.ts";
import { TokenStore } from "../src/storage/token-store.ts";
import { flags, printTable } from "./support.ts";

const n = Number(flags().get("requests") ?? 200_000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-bench-auth-"));
const store = TokenStore.load(dir);
for (let i = 0; i < 999; i++) await store.create({ name: `t${i}`, users: "*", scopes: ["read"], expiresAt: null });
const { token } = await store.create({ name: "bench", users: ["u1"], scopes: ["read", "write"], expiresAt: null });
const ADMIN = "a".repeat(40);

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
      verifyToken: (t) => store.lookup(createHash("sha256").update(t).digest("hex")) !== undefined,
    }),
  ),
);

async function measure(app: Hono): Promise<number> {
  const init = { headers: { authorization: `Bearer ${token}` } };
  const url = "http://x/metrics/heart-rate?user_id=u1";
  for (let i = 0; i < 5000; i++) await app.request(url, init); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const res = await app.request(url, init);
    if (res.status !== 200) throw new Error(`status ${res.status}`);
  }
  return ((performance.now() - t0) * 1000) / n;
}

// Interleaved rounds, best of each (the machine may be shared: the minimum is the least disturbed).
const variants = [["(a) no auth", bare], ["(b) pulsedb middleware", ours], ["(c) hono bearerAuth", hono]] as const;
const best = variants.map(() => Infinity);
for (let round = 0; round < 5; round++) {
  for (let v = 0; v < variants.length; v++) best[v] = Math.min(best[v], await measure(variants[v][1]));
}
const rows: Array<[string, number]> = variants.map(([name], v) => [name, best[v]]);
printTable(["variant", "µs / request (best of 5)"], rows);
console.log(
  `\nauth cost per request: ours ${(best[1] - best[0]).toFixed(2)} µs, bearerAuth ${(best[2] - best[0]).toFixed(2)} µs`,
);
fs.rmSync(dir, { recursive: true, force: true });
