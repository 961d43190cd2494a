/**
 * `/openapi.json` covers what the app serves: every route registered on the Hono app (read from
 * `app.routes`, so a route added later is caught without touching this test) is documented with its
 * method, no documented operation is missing from the app, and the content types the app accepts and
 * answers with (found by sending it requests) are the ones the document declares.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as arrow from "apache-arrow";
import { ARROW_STREAM_TYPE } from "../../src/http/arrow-ingest.ts";
import { DASHBOARD_PATHS } from "../../src/http/dashboard.ts";
import type { Hono } from "hono";
import { createApp } from "../../src/http/app.ts";
import { AuditLog } from "../../src/http/audit.ts";
import { AccessControl } from "../../src/http/auth.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { TokenStore } from "../../src/storage/token-store.ts";
import { testApp } from "../support/harness.ts";

type T = Awaited<ReturnType<typeof testApp>>;
// deno-lint-ignore no-explicit-any -- walks a JSON document
type Json = any;

/**
 * Routes that serve the dashboard's static assets (scripts, styles, images) and are therefore not
 * part of the API. Only static assets belong here, as Hono paths (e.g. "/assets/*"); the dashboard
 * page itself is an API route and must be documented.
 */
const STATIC_ASSET_ROUTES: readonly string[] = DASHBOARD_PATHS.filter((p) => p.startsWith("/dashboard/"));

const HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

/** A Hono path (`/tokens/:id`) as an OpenAPI path (`/tokens/{id}`). */
function openApiPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}");
}

/** The media type without parameters, lower case: `text/plain; version=0.0.4` -> `text/plain`. */
function mediaType(contentType: string | null): string {
  return (contentType ?? "").split(";")[0].trim().toLowerCase();
}

/** The operations the app serves: `METHOD /openapi/path`, from `app.routes`. */
function servedOperations(apps: readonly Hono[]): string[] {
  const ops = new Set<string>();
  for (const r of apps.flatMap((a) => a.routes)) {
    if (STATIC_ASSET_ROUTES.includes(r.path)) continue;
    if (r.method === "ALL") continue; // middleware ("/*") and 405 fallbacks; checked below
    ops.add(`${r.method} ${openApiPath(r.path)}`);
  }
  return [...ops].sort();
}

/** The operations the document describes. */
function documentedOperations(doc: Json): string[] {
  const ops: string[] = [];
  for (const [p, item] of Object.entries<Json>(doc.paths)) {
    for (const m of HTTP_METHODS) if (item[m.toLowerCase()]) ops.push(`${m} ${p}`);
  }
  return ops.sort();
}

/** One Arrow IPC stream body holding one valid reading. */
function arrowBody(userId: string): Blob {
  const table = arrow.tableFromArrays({
    user_id: [userId],
    device_id: ["device_a"],
    timestamp: new Float64Array([Date.UTC(2024, 0, 15, 10)]),
    heart_rate: new Float64Array([72]),
  });
  return new Blob([arrow.tableToIPC(table, "stream") as Uint8Array<ArrayBuffer>]);
}

/** A request the app is sent, to see which content types it accepts and answers with. */
interface Probe {
  name: string;
  method: string;
  path: string;
  /** The document path of the operation (default: `path` without its query string). */
  docPath?: string;
  contentType?: string;
  body?: BodyInit;
  /** The status the app must answer (so that a probe cannot pass by hitting an error path). */
  status: number;
}

const PROBES: Probe[] = [
  {
    name: "a JSON reading",
    method: "POST",
    path: "/metrics/heart-rate",
    contentType: "application/json",
    body: JSON.stringify({
      user_id: "openapi_1",
      device_id: "device_a",
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 72,
    }),
    status: 200,
  },
  {
    name: "an Arrow stream of readings",
    method: "POST",
    path: "/metrics/heart-rate",
    contentType: ARROW_STREAM_TYPE,
    body: arrowBody("openapi_2"),
    status: 200,
  },
  {
    name: "malformed JSON",
    method: "POST",
    path: "/metrics/heart-rate",
    contentType: "application/json",
    body: "{",
    status: 400,
  },
  {
    name: "a query with an answer",
    method: "GET",
    path: "/metrics/heart-rate?user_id=openapi_1&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z",
    status: 200,
  },
  {
    name: "a query without an answer",
    method: "GET",
    path: "/metrics/heart-rate?user_id=openapi_none&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z",
    status: 404,
  },
  { name: "a query without parameters", method: "GET", path: "/metrics/heart-rate", status: 400 },
];

describe("/openapi.json covers every route and content type the app serves", () => {
  let t: T;
  let doc: Json;
  /** The same engine with access control on: it also serves /tokens. */
  let apps: Hono[];
  before(async () => {
    t = await testApp();
    const access = new AccessControl({
      adminToken: "a".repeat(32),
      store: TokenStore.load(t.dir),
      audit: new AuditLog(() => {}),
      maxBodyBytes: t.engine.config.maxBodyBytes,
    });
    apps = [t.app, createApp({ engine: t.engine, config: t.engine.config, log: silentLogger, access })];
    doc = await (await t.app.request("/openapi.json")).json();
  });
  after(async () => {
    await t.close();
  });

  it("documents every route registered on the app, with its method", () => {
    const documented = new Set(documentedOperations(doc));
    const missing = servedOperations(apps).filter((op) => !documented.has(op));
    assert.deepEqual(missing, [], `served but not in /openapi.json: ${missing.join(", ")}`);
  });

  it("documents no operation the app does not serve", () => {
    const served = new Set(servedOperations(apps));
    const ghosts = documentedOperations(doc).filter((op) => !served.has(op));
    assert.deepEqual(ghosts, [], `in /openapi.json but not served: ${ghosts.join(", ")}`);
  });

  it("registers catch-all (ALL) handlers only as middleware or as the 405 of a documented path", () => {
    const stray = t.app.routes
      .filter((r) => r.method === "ALL" && r.path !== "/*" && !STATIC_ASSET_ROUTES.includes(r.path))
      .filter((r) => doc.paths[openApiPath(r.path)] === undefined)
      .map((r) => r.path);
    assert.deepEqual(stray, []);
  });

  it("excludes only routes the app serves (the static-asset list does not rot)", () => {
    const paths = new Set(t.app.routes.map((r) => r.path));
    assert.deepEqual(STATIC_ASSET_ROUTES.filter((p) => !paths.has(p)), []);
  });

  /** Asserts that the document declares `res`'s status and media type for `method path`. */
  function assertAnswerDocumented(method: string, docPath: string, res: Response): void {
    const op = doc.paths[docPath]?.[method.toLowerCase()];
    assert.ok(op, `${method} ${docPath} is documented`);
    const answer = op.responses[String(res.status)] ?? op.responses.default;
    assert.ok(answer, `${method} ${docPath}: status ${res.status} is documented`);
    const declared = Object.keys(answer.content ?? {}).map(mediaType);
    const got = mediaType(res.headers.get("content-type"));
    if (got === "") return; // no body
    assert.ok(
      declared.includes(got),
      `${method} ${docPath} ${res.status} answers ${got}; documented: ${declared.join(", ") || "none"}`,
    );
  }

  for (const p of PROBES) {
    it(`${p.method} ${p.path.split("?")[0]}, ${p.name}: request and answer content types are documented`, async () => {
      const res = await t.app.request(p.path, {
        method: p.method,
        body: p.body,
        headers: p.contentType ? { "content-type": p.contentType } : {},
      });
      assert.equal(res.status, p.status, await res.clone().text());
      const docPath = p.docPath ?? p.path.split("?")[0];
      if (p.contentType !== undefined) {
        const declared = Object.keys(doc.paths[docPath]?.[p.method.toLowerCase()]?.requestBody?.content ?? {});
        assert.ok(
          declared.map(mediaType).includes(mediaType(p.contentType)),
          `${p.method} ${docPath} accepts ${p.contentType}; documented request types: ${declared.join(", ") || "none"}`,
        );
      }
      assertAnswerDocumented(p.method, docPath, res);
      await res.body?.cancel();
    });
  }

  it("answers every parameterless GET route with a documented status and content type", async () => {
    const gets = t.app.routes.filter((r) =>
      r.method === "GET" && !r.path.includes(":") && !r.path.includes("*") && !STATIC_ASSET_ROUTES.includes(r.path)
    );
    assert.ok(gets.length >= 4, "the app's GET routes are found");
    for (const r of gets) {
      const res = await t.app.request(r.path);
      assertAnswerDocumented("GET", r.path, res);
      await res.body?.cancel();
    }
  });
});
