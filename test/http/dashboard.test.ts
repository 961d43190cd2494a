/**
 * The dashboard's routes: the page, its assets from memory with content types and cache headers,
 * the auth flag injected into the page, and the size budget (page + assets <= 150 KB).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { DASHBOARD_PATHS, dashboardRoutes } from "../../src/http/dashboard.ts";
import { testApp } from "../support/harness.ts";

const BUDGET_BYTES = 150 * 1024;

function assetUrls(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="(dashboard\/[^"]+)"/g)].map((m) => `/${m[1]}`);
}

describe("dashboard routes", () => {
  const app = new Hono().route("/", dashboardRoutes());

  it("serves the page at / with its assets versioned by content hash", async () => {
    const res = await app.request("/");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), "no-cache");
    assert.match(res.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    const html = await res.text();
    assert.match(html, /<meta name="pulsedb-auth" content="off">/);
    const urls = assetUrls(html);
    assert.equal(urls.length, 4);
    for (const url of urls) assert.match(url, /\?v=[\w-]{16}$/);
  });

  it("serves each asset with its content type, a long cache lifetime and an ETag (304 on a match)", async () => {
    const types: Record<string, RegExp> = { js: /^text\/javascript/, css: /^text\/css/ };
    for (const path of DASHBOARD_PATHS.filter((p) => p !== "/")) {
      const res = await app.request(path);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get("content-type") ?? "", types[path.split(".").pop()!], path);
      assert.equal(res.headers.get("cache-control"), "public, max-age=31536000, immutable");
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      const etag = res.headers.get("etag")!;
      assert.ok((await res.arrayBuffer()).byteLength > 0);
      const again = await app.request(path, { headers: { "if-none-match": etag } });
      assert.equal(again.status, 304);
    }
  });

  it("serves uPlot from node_modules", async () => {
    const res = await app.request("/dashboard/uPlot.iife.min.js");
    assert.match(await res.text(), /uPlot/);
  });

  it("keeps the page and its assets within 150 KB", async () => {
    const html = await (await app.request("/")).text();
    let total = new TextEncoder().encode(html).byteLength;
    for (const url of assetUrls(html)) total += (await (await app.request(url)).arrayBuffer()).byteLength;
    assert.ok(total <= BUDGET_BYTES, `page + assets are ${total} bytes; the budget is ${BUDGET_BYTES}`);
  });

  it("tells the page when access control is on", async () => {
    const on = new Hono().route("/", dashboardRoutes({ authEnabled: true }));
    assert.match(await (await on.request("/")).text(), /<meta name="pulsedb-auth" content="on">/);
  });

  it("is mounted by the pulsedb app, next to the API", async () => {
    const t = await testApp();
    try {
      const res = await t.app.request("/");
      assert.equal(res.status, 200);
      assert.match(await res.text(), /<title>/);
      assert.equal((await t.app.request("/dashboard/nope.js")).status, 404);
      assert.equal((await t.app.request("/health")).status, 200);
    } finally {
      await t.close();
    }
  });
});
