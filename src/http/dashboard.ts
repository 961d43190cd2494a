/**
 * The dashboard: `GET /` serves a page that charts a user's heart rate, with its script, style sheet
 * and uPlot (from npm) under `/dashboard/`. No build step: the files in `./dashboard/` are plain
 * browser HTML, JS and CSS, read once when the routes are created and served from memory.
 *
 * Assets are referenced from the page by relative URLs (so a reverse proxy may mount pulsedb under a
 * path) with a content hash (`?v=`), so they are cached for a year;
 * the page itself is revalidated on every load (`no-cache` with an ETag).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";

/** Where the page's own files live. */
const PAGE_DIR = new URL("./dashboard/", import.meta.url);
/** uPlot's distribution, resolved against the repository root (this file is `src/http/dashboard.ts`). */
const UPLOT_DIR = new URL("../../node_modules/uplot/dist/", import.meta.url);

const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";
const HTML = "text/html; charset=utf-8";

/** Each asset: its URL path and the file it is read from. */
const ASSETS: ReadonlyArray<{ path: string; file: URL; type: string }> = [
  { path: "/dashboard/dashboard.js", file: new URL("dashboard.js", PAGE_DIR), type: JS },
  { path: "/dashboard/dashboard.css", file: new URL("dashboard.css", PAGE_DIR), type: CSS },
  { path: "/dashboard/uPlot.iife.min.js", file: new URL("uPlot.iife.min.js", UPLOT_DIR), type: JS },
  { path: "/dashboard/uPlot.min.css", file: new URL("uPlot.min.css", UPLOT_DIR), type: CSS },
];

/** Every path the dashboard serves (for the request-duration route labels). */
export const DASHBOARD_PATHS: readonly string[] = ["/", ...ASSETS.map((a) => a.path)];

/**
 * The page's Content-Security-Policy: only its own scripts, styles and API. (uPlot sets element
 * styles from script, which a CSP does not restrict.)
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** A file served from memory. */
interface Served {
  body: Uint8Array;
  headers: Record<string, string>;
  etag: string;
}

export interface DashboardOptions {
  /** Access control is on: the page shows a token field from the start. Default false. */
  authEnabled?: boolean;
}

/**
 * The dashboard's routes as a sub-app, to mount at `/`.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * const app = new Hono();
 * app.route("/", dashboardRoutes({ authEnabled: false }));
 * const res = await app.request("/"); // text/html
 * ```
 */
export function dashboardRoutes(opts: DashboardOptions = {}): Hono {
  const authEnabled = opts.authEnabled ?? false;
  const app = new Hono();
  const versions = new Map<string, string>();
  for (const asset of ASSETS) {
    const served = load(asset.file, {
      "content-type": asset.type,
      "cache-control": "public, max-age=31536000, immutable",
    });
    versions.set(asset.path, served.etag.slice(1, -1));
    app.get(asset.path, (c) => respond(served, c.req.header("if-none-match")));
  }

  // The page: asset URLs carry their content hash, and the auth flag goes into a meta tag.
  let html = readText(new URL("index.html", PAGE_DIR));
  for (const [path, version] of versions) {
    html = html.replaceAll(`"${path.slice(1)}"`, `"${path.slice(1)}?v=${version}"`);
  }
  html = html.replace(
    '<meta name="pulsedb-auth" content="off">',
    `<meta name="pulsedb-auth" content="${authEnabled ? "on" : "off"}">`,
  );
  const page = served(new TextEncoder().encode(html), {
    "content-type": HTML,
    "cache-control": "no-cache",
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
  });
  app.get("/", (c) => respond(page, c.req.header("if-none-match")));
  return app;
}

function load(file: URL, headers: Record<string, string>): Served {
  let body: Uint8Array;
  try {
    body = readFileSync(fileURLToPath(file));
  } catch (err) {
    throw new Error(
      `dashboard: cannot read ${fileURLToPath(file)} (is node_modules installed?): ${(err as Error).message}`,
    );
  }
  return served(body, headers);
}

function readText(file: URL): string {
  return new TextDecoder().decode(load(file, {}).body);
}

function served(body: Uint8Array, headers: Record<string, string>): Served {
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 16)}"`;
  return { body, etag, headers: { ...headers, etag, "x-content-type-options": "nosniff" } };
}

function respond(file: Served, ifNoneMatch: string | undefined): Response {
  if (ifNoneMatch !== undefined && ifNoneMatch.split(",").some((t) => t.trim() === file.etag)) {
    return new Response(null, {
      status: 304,
      headers: { etag: file.etag, "cache-control": file.headers["cache-control"] },
    });
  }
  return new Response(file.body as Uint8Array<ArrayBuffer>, { status: 200, headers: file.headers });
}
