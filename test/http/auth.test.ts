/**
 * Access control over HTTP (in-process, `app.request`): the scope x user matrix on every data route
 * and body type, 401 for missing / malformed / unknown / expired / revoked tokens, 403 that never
 * tells whether a user exists, the admin-only /tokens routes, audit lines, fuzzed Authorization
 * headers, and nothing of it when access control is off.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as arrow from "apache-arrow";
import fc from "fast-check";
import { createApp } from "../../src/http/app.ts";
import { AccessControl } from "../../src/http/auth.ts";
import { AuditLog } from "../../src/http/audit.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { testConfig } from "../../src/ops/config.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import { type Scope, SCOPES, TokenStore } from "../../src/storage/token-store.ts";
import { type PulseDb } from "../../src/pulsedb.ts";
import { DAY0, openTestDb, removeDir, tempDir, testApp } from "../support/harness.ts";

const ROUTE = "/metrics/heart-rate";
const ADMIN = "admin-token-for-tests-0123456789abcdef";
const ARROW = "application/vnd.apache.arrow.stream";
const RANGE = "start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z";
const RUNS = Number(process.env.FUZZ_RUNS ?? 500);

// deno-lint-ignore no-explicit-any -- parsed JSON bodies of any shape
type Json = Record<string, any>;

interface AuthApp {
  app: ReturnType<typeof createApp>;
  store: TokenStore;
  audit: Json[];
  clock: { now: number };
  flushAudit(): void;
  close(): Promise<void>;
}

async function authApp(): Promise<AuthApp> {
  const dir = tempDir();
  const db: PulseDb = await openTestDb(dir);
  const store = TokenStore.load(dir);
  const lines: Json[] = [];
  const auditLog = new AuditLog((text) => {
    for (const l of text.split("\n")) if (l !== "") lines.push(JSON.parse(l));
  });
  const clock = { now: Date.UTC(2026, 0, 1) };
  const access = new AccessControl({
    adminToken: ADMIN,
    store,
    audit: auditLog,
    maxBodyBytes: db.engine.config.maxBodyBytes,
    now: () => clock.now,
  });
  const app = createApp({ engine: db.engine, config: db.engine.config, log: silentLogger, access });
  return {
    app,
    store,
    audit: lines,
    clock,
    flushAudit: () => auditLog.flush(),
    async close() {
      await db.engine.close();
      removeDir(dir);
    },
  };
}

function bearer(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

function reading(user: string, minute: number, hr = 70): Json {
  return {
    user_id: user,
    device_id: "device_a",
    timestamp: new Date(DAY0 + 10 * 3_600_000 + minute * 60_000).toISOString(),
    heart_rate: hr,
  };
}

function arrowBody(users: string[], minute: number): Uint8Array<ArrayBuffer> {
  const n = users.length;
  const table = new arrow.Table({
    user_id: arrow.vectorFromArray(users, new arrow.Utf8()),
    device_id: arrow.vectorFromArray(users.map(() => "device_a"), new arrow.Utf8()),
    timestamp: arrow.makeVector(
      Float64Array.from({ length: n }, (_, i) => DAY0 + 10 * 3_600_000 + (minute + i) * 60_000),
    ),
    heart_rate: arrow.makeVector(Float64Array.from({ length: n }, () => 71)),
  });
  return arrow.tableToIPC(table, "stream") as Uint8Array<ArrayBuffer>;
}

async function createToken(
  t: AuthApp,
  body: Json,
): Promise<{ id: string; token: string }> {
  const res = await t.app.request("/tokens", {
    method: "POST",
    body: JSON.stringify(body),
    headers: { ...bearer(ADMIN), "content-type": "application/json" },
  });
  assert.equal(res.status, 201, await res.clone().text());
  return await res.json();
}

async function expectProblem(res: Response, status: number): Promise<Json> {
  assert.equal(res.status, status, await res.clone().text());
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  const p = await res.json();
  assert.equal(p.status, status);
  return p;
}

async function expect401(res: Response): Promise<Json> {
  const p = await expectProblem(res, 401);
  assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer\b/);
  return p;
}

// ---------------------------------------------------------------------------------------------

describe("access control: the scope x user matrix", () => {
  let t: AuthApp;
  before(async () => {
    t = await authApp();
  });
  after(() => t.close());

  type Req = {
    name: string;
    scope: Scope;
    /** The users the request touches. */
    users: string[];
    send(token: string, i: number): Response | Promise<Response>;
    /** The status when allowed. */
    ok: number[];
  };
  const requests: Req[] = [
    {
      name: "GET one user",
      scope: "read",
      users: ["u1"],
      send: (tok) => t.app.request(`${ROUTE}?user_id=u1&${RANGE}`, { headers: bearer(tok) }),
      ok: [200],
    },
    {
      name: "GET another user",
      scope: "read",
      users: ["u2"],
      send: (tok) => t.app.request(`${ROUTE}?user_id=u2&${RANGE}`, { headers: bearer(tok) }),
      ok: [200],
    },
    {
      name: "GET a user that does not exist",
      scope: "read",
      users: ["nobody"],
      send: (tok) => t.app.request(`${ROUTE}?user_id=nobody&${RANGE}`, { headers: bearer(tok) }),
      ok: [404],
    },
    {
      name: "GET with user_id repeated (one allowed, one not)",
      scope: "read",
      users: ["u1", "u2"],
      send: (tok) => t.app.request(`${ROUTE}?user_id=u1&user_id=u2&${RANGE}`, { headers: bearer(tok) }),
      ok: [200],
    },
    {
      name: "POST one reading",
      scope: "write",
      users: ["u1"],
      send: (tok, i) =>
        t.app.request(ROUTE, { method: "POST", headers: bearer(tok), body: JSON.stringify(reading("u1", i)) }),
      ok: [200],
    },
    {
      name: "POST one reading for another user",
      scope: "write",
      users: ["u2"],
      send: (tok, i) =>
        t.app.request(ROUTE, { method: "POST", headers: bearer(tok), body: JSON.stringify(reading("u2", i)) }),
      ok: [200],
    },
    {
      name: "POST a JSON batch of two users",
      scope: "write",
      users: ["u1", "u2"],
      send: (tok, i) =>
        t.app.request(ROUTE, {
          method: "POST",
          headers: bearer(tok),
          body: JSON.stringify([reading("u1", i), reading("u2", i)]),
        }),
      ok: [200],
    },
    {
      name: "POST an Arrow stream of one user",
      scope: "write",
      users: ["u1"],
      send: (tok, i) =>
        t.app.request(ROUTE, {
          method: "POST",
          headers: { ...bearer(tok), "content-type": ARROW },
          body: new Blob([arrowBody(["u1", "u1"], 500 + i * 2)]),
        }),
      ok: [200],
    },
    {
      name: "POST an Arrow stream of two users",
      scope: "write",
      users: ["u1", "u2"],
      send: (tok, i) =>
        t.app.request(ROUTE, {
          method: "POST",
          headers: { ...bearer(tok), "content-type": ARROW },
          body: new Blob([arrowBody(["u1", "u2"], 900 + i * 2)]),
        }),
      ok: [200],
    },
    {
      // The DELETE route is checked by method: its scope and user rules apply to whatever answers it.
      name: "DELETE one user",
      scope: "delete",
      users: ["u1"],
      send: (tok) =>
        t.app.request(`${ROUTE}?user_id=u1&start=2030-01-01T00:00:00Z&end=2030-01-02T00:00:00Z`, {
          method: "DELETE",
          headers: bearer(tok),
        }),
      ok: [200, 405],
    },
    {
      name: "DELETE another user",
      scope: "delete",
      users: ["u2"],
      send: (tok) =>
        t.app.request(`${ROUTE}?user_id=u2&start=2030-01-01T00:00:00Z&end=2030-01-02T00:00:00Z`, {
          method: "DELETE",
          headers: bearer(tok),
        }),
      ok: [200, 405],
    },
    {
      name: "GET /metrics",
      scope: "metrics",
      users: [],
      send: (tok) => t.app.request("/metrics", { headers: bearer(tok) }),
      ok: [200],
    },
  ];

  const scopeSets: Scope[][] = [[], ["read"], ["write"], ["delete"], ["metrics"], ["read", "write"], [...SCOPES]];
  const userSets: Array<"*" | string[]> = [["u1"], ["u1", "u3"], "*"];

  it("answers every request by the token's scopes and users, and the admin token may do everything", async () => {
    // Data for u1 and u2, written with the admin token.
    for (const u of ["u1", "u2"]) {
      const res = await t.app.request(ROUTE, {
        method: "POST",
        headers: bearer(ADMIN),
        body: JSON.stringify(reading(u, 0)),
      });
      assert.equal(res.status, 200);
    }
    let i = 1;
    for (const scopes of scopeSets) {
      for (const users of userSets) {
        // A token with no scope cannot be created; it stands for "valid token, no scope at all".
        const tok = scopes.length === 0
          ? (await createToken(t, { name: "metrics only", users, scopes: ["metrics"] })).token
          : (await createToken(t, { name: `${scopes.join("+")} ${users}`, users, scopes })).token;
        const effective = scopes.length === 0 ? ["metrics"] : scopes;
        for (const r of requests) {
          const scopeOk = effective.includes(r.scope);
          const userOk = users === "*" || r.users.every((u) => users.includes(u));
          const res = await r.send(tok, i++);
          const what = `${r.name} with scopes [${effective}] users ${JSON.stringify(users)}`;
          if (scopeOk && userOk) {
            assert.ok(r.ok.includes(res.status), `${what}: ${res.status} ${await res.clone().text()}`);
            await res.body?.cancel();
          } else {
            const p = await expectProblem(res, 403);
            assert.equal(p.title, "Forbidden", what);
          }
        }
      }
    }
    for (const r of requests) {
      const res = await r.send(ADMIN, i++);
      assert.ok(r.ok.includes(res.status), `admin: ${r.name}: ${res.status}`);
      await res.body?.cancel();
    }
  });

  it("a batch with one foreign reading stores nothing of it (JSON and Arrow)", async () => {
    const { token } = await createToken(t, { name: "device", users: ["u7"], scopes: ["write", "read"] });
    const json = await t.app.request(ROUTE, {
      method: "POST",
      headers: bearer(token),
      body: JSON.stringify([reading("u7", 5), reading("u8", 5)]),
    });
    await expectProblem(json, 403);
    const arrowRes = await t.app.request(ROUTE, {
      method: "POST",
      headers: { ...bearer(token), "content-type": ARROW },
      body: new Blob([arrowBody(["u7", "u8"], 20)]),
    });
    await expectProblem(arrowRes, 403);
    for (const u of ["u7", "u8"]) {
      const res = await t.app.request(`${ROUTE}?user_id=${u}&${RANGE}`, { headers: bearer(ADMIN) });
      assert.equal(res.status, 404, `nothing stored for ${u}`);
      await res.body?.cancel();
    }
  });

  it("a 403 reads the same whether the user exists or not", async () => {
    const { token } = await createToken(t, { name: "clinician", users: ["u1"], scopes: ["read"] });
    const existing = await expectProblem(
      await t.app.request(`${ROUTE}?user_id=u2&${RANGE}`, { headers: bearer(token) }),
      403,
    );
    const missing = await expectProblem(
      await t.app.request(`${ROUTE}?user_id=never_seen&${RANGE}`, { headers: bearer(token) }),
      403,
    );
    assert.deepEqual(existing, missing);
  });
});

describe("access control: 401", () => {
  let t: AuthApp;
  before(async () => {
    t = await authApp();
  });
  after(() => t.close());

  const get = (headers: Record<string, string>) => t.app.request(`${ROUTE}?user_id=u1&${RANGE}`, { headers });

  it("answers 401 with WWW-Authenticate: Bearer for a missing, malformed or unknown token, on every protected route", async () => {
    const { token } = await createToken(t, { name: "any", users: "*", scopes: [...SCOPES] });
    const bad: Array<Record<string, string>> = [
      {},
      { authorization: "" },
      { authorization: "Bearer" },
      { authorization: "Bearer " },
      { authorization: `Basic ${btoa("user:" + token)}` },
      { authorization: `Token ${token}` },
      { authorization: `Bearer ${token} extra` },
      { authorization: `Bearer ${token}x` },
      { authorization: `Bearer ${token.slice(0, -1)}` },
      { authorization: `Bearer ${ADMIN}x` },
      { authorization: "Bearer pdb_" + "0".repeat(64) },
    ];
    for (const headers of bad) {
      const p = await expect401(await get(headers));
      assert.equal(p.title, "Unauthorized");
      for (const v of Object.values(headers)) if (v.length > 10) assert.ok(!p.detail.includes(v));
    }
    await expect401(await t.app.request(ROUTE, { method: "POST", body: JSON.stringify(reading("u1", 1)) }));
    await expect401(await t.app.request(`${ROUTE}?user_id=u1`, { method: "DELETE" }));
    await expect401(await t.app.request(ROUTE, { method: "PUT" }));
    await expect401(await t.app.request("/metrics"));
    await expect401(await t.app.request("/tokens"));
    await expect401(await t.app.request("/tokens", { method: "POST", body: "{}" }));
    await expect401(await t.app.request("/tokens/abc", { method: "DELETE" }));
    // the scheme is case-insensitive
    assert.equal((await get({ authorization: `bearer ${token}` })).status, 404);
  });

  it("an expired token is refused from its expiry on (injected clock, no waiting)", async () => {
    const expires = new Date(t.clock.now + 60_000).toISOString();
    const made = await createToken(t, { name: "temp", users: ["u1"], scopes: ["read"], expires_at: expires });
    assert.equal((made as Json).expires_at, expires.replace(".000Z", "Z"));
    assert.equal((await get(bearer(made.token))).status, 404);
    t.clock.now += 59_999;
    assert.equal((await get(bearer(made.token))).status, 404);
    t.clock.now += 1;
    await expect401(await get(bearer(made.token)));
    // an expiry in the past cannot be given
    const res = await t.app.request("/tokens", {
      method: "POST",
      headers: bearer(ADMIN),
      body: JSON.stringify({ name: "x", users: "*", scopes: ["read"], expires_at: "2020-01-01T00:00:00Z" }),
    });
    const p = await expectProblem(res, 400);
    assert.equal(p.errors[0].path, "/expires_at");
  });

  it("a revoked token is refused on the next request", async () => {
    const { id, token } = await createToken(t, { name: "to revoke", users: "*", scopes: ["read"] });
    assert.equal((await get(bearer(token))).status, 404);
    const del = await t.app.request(`/tokens/${id}`, { method: "DELETE", headers: bearer(ADMIN) });
    assert.equal(del.status, 204);
    await expect401(await get(bearer(token)));
    await expectProblem(await t.app.request(`/tokens/${id}`, { method: "DELETE", headers: bearer(ADMIN) }), 404);
  });

  it("fuzzed Authorization headers never get a 500, and never pass", async () => {
    const { token } = await createToken(t, { name: "fuzz", users: "*", scopes: ["read"] });
    const headerValue = fc.oneof(
      fc.string({ unit: "binary-ascii", maxLength: 200 }),
      fc.string({ maxLength: 200 }).map((s) => "Bearer " + s),
      fc.string({ unit: "binary-ascii", maxLength: 80 }).map((s) => "Bearer " + token.slice(0, 20) + s),
      fc.tuple(fc.nat({ max: token.length - 1 }), fc.string({ minLength: 1, maxLength: 3 })).map(
        ([i, s]) => `Bearer ${token.slice(0, i)}${s}${token.slice(i + 1)}`,
      ),
      fc.constantFrom("Bearer", "Bearer  ", "bearer\t" + token, "Bearer\u00a0" + token, "\u0000", "B".repeat(8000)),
    );
    await fc.assert(
      fc.asyncProperty(headerValue, async (value) => {
        let headers: Headers;
        try {
          headers = new Headers({ authorization: value });
        } catch {
          return; // not a header value a client could send
        }
        const sent = headers.get("authorization") ?? "";
        const res = await t.app.request(`${ROUTE}?user_id=u1&${RANGE}`, { headers });
        assert.ok(res.status < 500, `${res.status} for ${JSON.stringify(value)}`);
        if (/^bearer +(\S+) *$/i.exec(sent)?.[1] === token) {
          assert.equal(res.status, 404);
          await res.body?.cancel();
        } else await expect401(res);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("access control: hostile queries and start-up", () => {
  it("fuzzed query strings with a token for one user never get a 500, and never read another user", async () => {
    const t = await authApp();
    try {
      const { token } = await createToken(t, { name: "one user", users: ["u1"], scopes: ["read", "delete"] });
      const part = fc.oneof(
        fc.constantFrom(
          "user_id=u1",
          "user_id=u2",
          "user_id=",
          "user_id",
          "user_id=%75%31",
          "user_id=%E0%A4%A",
          "%",
          "&&",
        ),
        fc.string({ unit: "binary-ascii", maxLength: 30 }).map((v) => "user_id=" + encodeURIComponent(v)),
        fc.string({ maxLength: 20 }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(part, { maxLength: 4 }), fc.constantFrom("GET", "DELETE"), async (parts, method) => {
          const qs = parts.join("&") + "&" + RANGE;
          let res: Response;
          try {
            res = await t.app.request(`${ROUTE}?${qs}`, { method, headers: bearer(token) });
          } catch {
            return; // not a URL a client could send
          }
          assert.ok(res.status < 500, `${res.status} for ${method} ?${qs}`);
          if (res.status === 200 && method === "GET") {
            const body = await res.json();
            assert.equal(body.user_id, "u1", `read ${body.user_id} with a token for u1 (?${qs})`);
          } else await res.body?.cancel();
        }),
        { numRuns: RUNS },
      );
    } finally {
      await t.close();
    }
  });

  it("/tokens answers 503 with Retry-After until the engine is open (never written by a process without the lock)", async () => {
    const dir = tempDir();
    try {
      const store = TokenStore.load(dir);
      const access = new AccessControl({
        adminToken: ADMIN,
        store,
        audit: new AuditLog(() => {}),
        maxBodyBytes: 1 << 20,
      });
      const config = testConfig({ dataDir: dir });
      const app = createApp({ engine: () => undefined, metrics: new Metrics(), config, log: silentLogger, access });
      const res = await app.request("/tokens", {
        method: "POST",
        headers: bearer(ADMIN),
        body: JSON.stringify({ name: "x", users: "*", scopes: ["read"] }),
      });
      await expectProblem(res, 503);
      assert.equal(res.headers.get("retry-after"), "1");
      assert.equal(store.size, 0);
      await expect401(await app.request("/tokens"));
    } finally {
      removeDir(dir);
    }
  });
});

describe("access control: /tokens, open routes and the audit log", () => {
  let t: AuthApp;
  before(async () => {
    t = await authApp();
  });
  after(() => t.close());

  it("/tokens is the admin token's: POST 201, GET lists without secrets, DELETE 204; other tokens 403", async () => {
    const made = await createToken(t, { name: "ward-3 monitor", users: ["user_123", "user_456"], scopes: ["write"] });
    assert.match(made.token, /^pdb_[0-9a-f]{64}$/);
    assert.deepEqual(Object.keys(made).sort(), ["expires_at", "id", "name", "scopes", "token", "users"]);
    const other = await createToken(t, { name: "all", users: "*", scopes: [...SCOPES] });
    for (
      const [method, path] of [["GET", "/tokens"], ["POST", "/tokens"], ["DELETE", `/tokens/${made.id}`]] as const
    ) {
      await expectProblem(
        await t.app.request(path, { method, headers: bearer(other.token), body: method === "POST" ? "{}" : undefined }),
        403,
      );
    }
    const list = await t.app.request("/tokens", { headers: bearer(ADMIN) });
    assert.equal(list.status, 200);
    const text = await list.text();
    assert.ok(!text.includes(made.token) && !text.includes(other.token), "no token string in the list");
    const { tokens } = JSON.parse(text);
    assert.deepEqual(tokens[0], {
      id: made.id,
      name: "ward-3 monitor",
      users: ["user_123", "user_456"],
      scopes: ["write"],
      expires_at: null,
    });
    assert.equal((await t.app.request(`/tokens/${made.id}`, { method: "DELETE", headers: bearer(ADMIN) })).status, 204);
  });

  it("an invalid token request is a 400 validation problem listing every bad field", async () => {
    const cases: Array<[unknown, string[]]> = [
      [{}, ["/name", "/users", "/scopes"]],
      [{ name: "", users: [], scopes: [] }, ["/name", "/users", "/scopes"]],
      [{ name: "x", users: ["bad id"], scopes: ["read", "admin"] }, ["/users/0", "/scopes/1"]],
      [{ name: "x", users: "everyone", scopes: ["read"] }, ["/users"]],
      [{ name: "x", users: "*", scopes: ["read"], expires_at: "2027-02-30T00:00:00Z" }, ["/expires_at"]],
      [{ name: "x", users: "*", scopes: ["read"], expiry: "2027-01-01T00:00:00Z" }, [""]],
      [[1, 2], [""]],
    ];
    for (const [body, paths] of cases) {
      const p = await expectProblem(
        await t.app.request("/tokens", { method: "POST", headers: bearer(ADMIN), body: JSON.stringify(body) }),
        400,
      );
      assert.equal(p.type, "https://pulsedb.dev/problems/validation");
      assert.deepEqual([...new Set(p.errors.map((e: Json) => e.path))].sort(), paths.sort(), JSON.stringify(body));
    }
    const p = await expectProblem(
      await t.app.request("/tokens", { method: "POST", headers: bearer(ADMIN), body: "{nope" }),
      400,
    );
    assert.equal(p.errors[0].message, "malformed JSON");
  });

  it("/health, /ready, /openapi.json and unknown paths never need a token", async () => {
    for (const path of ["/health", "/ready", "/openapi.json"]) {
      assert.equal((await t.app.request(path)).status, 200, path);
    }
    assert.equal((await t.app.request("/no-such-page")).status, 404);
  });

  it("/openapi.json declares the bearer scheme, the /tokens routes, and 401/403 on protected operations", async () => {
    const text = await (await t.app.request("/openapi.json")).text();
    assert.doesNotMatch(text, /pdb_[0-9a-f]{64}/, "no real-looking token in an example");
    assert.ok(!text.includes(ADMIN));
    const doc = JSON.parse(text);
    assert.deepEqual(doc.components.securitySchemes.bearerAuth.type, "http");
    assert.deepEqual(doc.components.securitySchemes.bearerAuth.scheme, "bearer");
    assert.ok(doc.paths["/tokens"].post && doc.paths["/tokens"].get && doc.paths["/tokens/{id}"].delete);
    assert.ok(doc.paths["/tokens"].post.responses["201"]);
    for (const [p, method] of [[ROUTE, "get"], [ROUTE, "post"], ["/metrics", "get"], ["/tokens", "post"]]) {
      const op = doc.paths[p][method];
      assert.deepEqual(op.security, [{ bearerAuth: [] }], `${method} ${p}`);
      assert.ok(op.responses["401"] && op.responses["403"], `${method} ${p}`);
    }
    for (const p of ["/health", "/ready", "/openapi.json"]) assert.deepEqual(doc.paths[p].get.security, []);
    assert.deepEqual(doc.components.schemas.NewToken.required.sort(), ["name", "scopes", "users"]);
  });

  it("writes one audit line per request to a protected route, with token id and name, never the token", async () => {
    const made = await createToken(t, { name: "auditor", users: ["u1"], scopes: ["read", "write"] });
    t.flushAudit();
    t.audit.length = 0;
    await t.app.request(`${ROUTE}?user_id=u1&${RANGE}`, { headers: bearer(made.token) });
    await t.app.request(ROUTE, { method: "POST", headers: bearer(made.token), body: JSON.stringify(reading("u1", 3)) });
    await t.app.request(ROUTE, {
      method: "POST",
      headers: bearer(made.token),
      body: JSON.stringify([reading("u1", 4), reading("u9", 4)]),
    });
    await t.app.request(`${ROUTE}?user_id=u1&${RANGE}`, { headers: bearer(made.token + "0") });
    await t.app.request(`/tokens/${made.id}`, { method: "DELETE", headers: bearer(ADMIN) });
    await t.app.request("/health", { headers: bearer(made.token) });
    t.flushAudit();
    const rows = t.audit.map((l) => [l.token_id, l.token_name, l.method, l.route, l.user_id, l.status]);
    assert.deepEqual(rows, [
      [made.id, "auditor", "GET", ROUTE, "u1", 404],
      [made.id, "auditor", "POST", ROUTE, "u1", 200],
      [made.id, "auditor", "POST", ROUTE, ["u1", "u9"], 403],
      [null, null, "GET", ROUTE, "u1", 401],
      ["admin", "admin", "DELETE", "/tokens/{id}", null, 204],
    ]);
    for (const l of t.audit) {
      assert.equal(l.msg, "audit");
      assert.equal(typeof l.time, "string");
      assert.equal(typeof l.duration_ms, "number");
    }
    assert.equal(t.audit[3].reason, "unknown");
    assert.equal(t.audit[4].target_id, made.id);
    const all = JSON.stringify(t.audit);
    assert.ok(!all.includes(made.token) && !all.includes(ADMIN), "no secret in an audit line");
  });
});

describe("access control off", () => {
  let t: Awaited<ReturnType<typeof testApp>>;
  before(async () => {
    t = await testApp();
  });
  after(() => t.close());

  it("serves every route without a token and has no /tokens", async () => {
    const res = await t.app.request(ROUTE, { method: "POST", body: JSON.stringify(reading("u1", 0)) });
    assert.equal(res.status, 200);
    assert.equal((await t.app.request(`${ROUTE}?user_id=u1&${RANGE}`)).status, 200);
    assert.equal((await t.app.request("/metrics")).status, 200);
    assert.equal((await t.app.request("/tokens", { headers: bearer(ADMIN) })).status, 404);
    // a stray Authorization header changes nothing
    assert.equal((await t.app.request(`${ROUTE}?user_id=u1&${RANGE}`, { headers: bearer("nonsense") })).status, 200);
  });
});
