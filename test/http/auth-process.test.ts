/**
 * Access control in the real process (child processes on the runtime the tests run on): the
 * start-up rules, tokens that survive kill -9 (and revocations that do too), the audit file, and a
 * grep of every log line, the audit file, /metrics, /openapi.json and the data directory for the
 * secrets used.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, isLoopbackHost, loadConfig } from "../../src/ops/config.ts";
import { runArgs } from "../support/child.ts";
import { removeDir, tempDir } from "../support/harness.ts";

const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");
const ROUTE = "/metrics/heart-rate";
const RANGE = "start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z";
const ADMIN = "process-test-admin-token-0123456789abcdefXYZ";

/** Runs src/main.ts expecting it to exit at once (a start-up failure); bounded by a timeout. */
function startupFailure(env: Record<string, string>): { code: number | null; stderr: string } {
  const { cmd, args } = runArgs(path.join("src", "main.ts"));
  const r = spawnSync(cmd, args, {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, PORT: "0", PULSE_AUTH: "", PULSE_ADMIN_TOKEN: "", PULSE_ADMIN_TOKEN_FILE: "", ...env },
  });
  return { code: r.status, stderr: r.stderr };
}

interface Daemon {
  url: Promise<string>;
  output(): string;
  exited: Promise<void>;
  kill(signal: NodeJS.Signals): void;
}

function startDaemon(env: Record<string, string>): Daemon {
  const { cmd, args } = runArgs(path.join("src", "main.ts"));
  const proc = spawn(cmd, args, {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: "0",
      PULSE_LOG_LEVEL: "debug",
      PULSE_COMPACTION: "off",
      PULSE_ADMIN_TOKEN: "",
      PULSE_ADMIN_TOKEN_FILE: "",
      PULSE_AUDIT_LOG: "",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let resolveUrl!: (u: string) => void;
  let rejectUrl!: (e: Error) => void;
  const url = new Promise<string>((res, rej) => {
    resolveUrl = res;
    rejectUrl = rej;
  });
  const onData = (chunk: Buffer) => {
    out += chunk.toString("utf8");
    const m = /"msg":"ready"/.test(out) ? /"msg":"listening","url":"([^"]+)"/.exec(out) : null;
    if (m) resolveUrl(m[1]);
  };
  proc.stdout!.on("data", onData);
  proc.stderr!.on("data", onData);
  const exited = new Promise<void>((resolve) =>
    proc.once("exit", () => {
      rejectUrl(new Error(`pulsedb exited first:\n${out}`));
      resolve();
    })
  );
  return { url, output: () => out, exited, kill: (s) => proc.kill(s) };
}

async function call(
  base: string,
  pathAndQuery: string,
  token?: string,
  init: RequestInit = {},
): Promise<{ status: number; text: string }> {
  const headers = new Headers(init.headers);
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  const res = await fetch(base + pathAndQuery, { ...init, headers });
  return { status: res.status, text: await res.text() };
}

const READING = { user_id: "u1", device_id: "device_a", timestamp: "2024-01-15T10:00:00Z", heart_rate: 72 };

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

describe("access control start-up rules", () => {
  it("loopback hosts default to off; any other host without PULSE_AUTH is refused (in-process)", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]", "::ffff:127.0.0.1"]) {
      assert.ok(isLoopbackHost(h), h);
      assert.equal(loadConfig({ HOST: h }).auth, "off", h);
    }
    for (const h of ["0.0.0.0", "::", "192.168.1.2", "128.0.0.1", "127.0.0.256", "localhost.example.com", "example"]) {
      assert.ok(!isLoopbackHost(h), h);
      assert.throws(
        () => loadConfig({ HOST: h }),
        (e: Error) => e instanceof ConfigError && /PULSE_AUTH=on/.test(e.message),
      );
    }
    assert.equal(loadConfig({ HOST: "0.0.0.0", PULSE_AUTH: "off" }).auth, "off");
    const on = loadConfig({ HOST: "0.0.0.0", PULSE_AUTH: "on", PULSE_ADMIN_TOKEN: ADMIN });
    assert.equal(on.auth, "on");
    assert.equal(on.adminToken?.reveal(), ADMIN);
    assert.ok(!JSON.stringify(on).includes(ADMIN), "the config prints without the admin token");
    assert.ok(!String(on.adminToken).includes(ADMIN));
  });

  it("a non-loopback HOST without PULSE_AUTH stops start-up with one line saying how to choose", () => {
    const r = startupFailure({ HOST: "0.0.0.0" });
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^pulsedb: .*PULSE_AUTH=on.*PULSE_AUTH=off/);
  });

  it("PULSE_AUTH=on without a usable admin token stops start-up naming the variable, never printing the value", () => {
    const short = "too-short-secret-value";
    for (
      const [env, name] of [
        [{ HOST: "127.0.0.1", PULSE_AUTH: "on" }, "PULSE_ADMIN_TOKEN"],
        [{ HOST: "127.0.0.1", PULSE_AUTH: "on", PULSE_ADMIN_TOKEN: short }, "PULSE_ADMIN_TOKEN"],
        [
          { HOST: "127.0.0.1", PULSE_AUTH: "on", PULSE_ADMIN_TOKEN_FILE: "/nonexistent/admin" },
          "PULSE_ADMIN_TOKEN_FILE",
        ],
      ] as const
    ) {
      const r = startupFailure(env);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.ok(r.stderr.includes(name), r.stderr);
      assert.ok(!r.stderr.includes(short), "the value is not printed");
    }
    const dir = tempDir();
    try {
      const file = path.join(dir, "admin");
      fs.writeFileSync(file, short + "\n");
      const r = startupFailure({ HOST: "127.0.0.1", PULSE_AUTH: "on", PULSE_ADMIN_TOKEN_FILE: file });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /PULSE_ADMIN_TOKEN_FILE: the admin token must be at least 32 characters/);
      assert.ok(!r.stderr.includes(short));
    } finally {
      removeDir(dir);
    }
  });
});

describe("access control: a damaged token file", () => {
  it("stops start-up with exit code 1, naming the file", () => {
    const dir = tempDir();
    try {
      fs.mkdirSync(path.join(dir, "auth"));
      fs.writeFileSync(path.join(dir, "auth", "tokens.json"), "{ half a file");
      const r = startupFailure({ HOST: "127.0.0.1", PULSE_AUTH: "on", PULSE_ADMIN_TOKEN: ADMIN, PULSE_DATA_DIR: dir });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^pulsedb: access control cannot start: the token file .*tokens\.json is damaged/m);
      assert.ok(!r.stderr.includes(ADMIN));
    } finally {
      removeDir(dir);
    }
  });
});

describe("access control in the daemon", () => {
  it("tokens and revocations survive kill -9; no secret in any log line, audit line, metric, document or data file", async () => {
    const dir = tempDir();
    const data = path.join(dir, "data");
    const adminFile = path.join(dir, "admin-token");
    fs.writeFileSync(adminFile, ADMIN + "\n"); // the trailing newline is not part of the token
    const auditFile = path.join(dir, "audit.log");
    const env = { PULSE_AUTH: "on", PULSE_ADMIN_TOKEN_FILE: adminFile, PULSE_DATA_DIR: data };
    const secrets: string[] = [ADMIN];
    const seen: string[] = [];
    let d = startDaemon(env);
    try {
      let base = await d.url;
      const make = async (body: object) => {
        const r = await call(base, "/tokens", ADMIN, { method: "POST", body: JSON.stringify(body) });
        assert.equal(r.status, 201, r.text);
        const made = JSON.parse(r.text) as { id: string; token: string };
        secrets.push(made.token);
        return made;
      };
      const device = await make({ name: "device", users: ["u1"], scopes: ["write", "read"] });
      const revoked = await make({ name: "old clinician", users: "*", scopes: ["read"] });
      assert.equal(
        (await call(base, ROUTE, device.token, { method: "POST", body: JSON.stringify(READING) })).status,
        200,
      );
      assert.equal((await call(base, `/tokens/${revoked.id}`, ADMIN, { method: "DELETE" })).status, 204);
      // Requests that carry the secrets in odd places: none may echo them.
      for (const t of [device.token, ADMIN]) {
        seen.push((await call(base, `${ROUTE}?user_id=u2&${RANGE}`, device.token)).text);
        seen.push(await fetch(base + ROUTE, { headers: { authorization: `Basic ${t}` } }).then((r) => r.text()));
        seen.push(await fetch(base + ROUTE, { headers: { authorization: `Bearer ${t} ${t}` } }).then((r) => r.text()));
        seen.push((await call(base, `/tokens/${t.slice(0, 16)}`, ADMIN, { method: "DELETE" })).text);
        seen.push((await call(base, ROUTE, t, { method: "POST", body: `{"user_id":"${t}"}` })).text);
      }
      seen.push((await call(base, "/metrics", ADMIN)).text);
      d.kill("SIGKILL");
      await d.exited;
      // Without PULSE_AUDIT_LOG the audit lines are in the normal log.
      assert.match(d.output(), new RegExp(`"msg":"audit","token_id":"${device.id}","token_name":"device"`));
      seen.push(d.output());

      d = startDaemon({ ...env, PULSE_AUDIT_LOG: auditFile });
      base = await d.url;
      const got = await call(base, `${ROUTE}?user_id=u1&${RANGE}`, device.token);
      assert.equal(got.status, 200, got.text);
      assert.equal(JSON.parse(got.text).count, 1);
      assert.equal((await call(base, `${ROUTE}?user_id=u1&${RANGE}`, revoked.token)).status, 401);
      // A token acknowledged just before a kill -9 is there after it.
      const late = await make({ name: "late", users: ["u1"], scopes: ["read"] });
      d.kill("SIGKILL");
      await d.exited;
      seen.push(d.output());

      d = startDaemon({ ...env, PULSE_AUDIT_LOG: auditFile });
      base = await d.url;
      assert.equal((await call(base, `${ROUTE}?user_id=u1&${RANGE}`, late.token)).status, 200);
      assert.equal((await call(base, `${ROUTE}?user_id=u1&${RANGE}`, revoked.token)).status, 401);
      const list = await call(base, "/tokens", ADMIN);
      assert.deepEqual(JSON.parse(list.text).tokens.map((t: { name: string }) => t.name).sort(), ["device", "late"]);
      seen.push(list.text);
      const metrics = await call(base, "/metrics", ADMIN);
      assert.equal(metrics.status, 200);
      seen.push(metrics.text);
      assert.equal((await call(base, "/metrics", late.token)).status, 403);
      seen.push((await call(base, "/openapi.json")).text);
      d.kill("SIGTERM");
      await d.exited;

      const audit = fs.readFileSync(auditFile, "utf8");
      const auditLines = audit.trim().split("\n").map((l) => JSON.parse(l));
      assert.ok(auditLines.some((l) => l.token_id === late.id && l.route === ROUTE && l.status === 200));
      assert.ok(auditLines.every((l) => l.msg === "audit"));
      seen.push(audit, d.output());
      for (const f of filesUnder(data)) seen.push(fs.readFileSync(f).toString("latin1"));
      const everything = seen.join("\n");
      for (const s of secrets) {
        const at = everything.indexOf(s);
        assert.ok(at < 0, `a secret leaked: ${JSON.stringify(everything.slice(Math.max(0, at - 100), at + 200))}`);
      }
    } finally {
      d.kill("SIGKILL");
      await d.exited;
      removeDir(dir);
    }
  });
});
