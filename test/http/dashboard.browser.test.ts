/**
 * The dashboard in a real browser: playwright-core driving the system's Chromium (Debian's
 * `chromium` package; `.ci/run` installs it) against a real pulsedb server on 127.0.0.1 with a temp
 * data directory, seeded over HTTP.
 *
 * Skips (with the reason) when no `chromium` is on the PATH. Screenshots go to a temp directory
 * (or `PULSEDB_SCREENSHOTS`); with `PULSEDB_DOCS_SCREENSHOT=1` the seeded day is also written to
 * docs/dashboard.png.
 *
 * Access control is simulated: the 401 answer comes from `page.route`, not from the server.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import type { Browser, BrowserContext, BrowserContextOptions, Page, Request } from "playwright-core";
import { Hono } from "hono";
import { dashboardRoutes } from "../../src/http/dashboard.ts";
import { type RunningServer, serve } from "../../src/http/serve.ts";
import { tempDir, testApp } from "../support/harness.ts";

/** The uPlot instance the page exposes for tests (only the parts read here). */
interface PlotHandle {
  data: number[][];
  ctx: CanvasRenderingContext2D;
  over: HTMLElement;
  cursor: { idx: number };
  valToPos(value: number, scale: string, canvasPixels?: boolean): number;
}
const REPO_ROOT = path.resolve(import.meta.dirname, "../..");
const CHROMIUM = findChromium();
const ARGS = [
  "--no-sandbox",
  "--headless",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];
const API = "/metrics/heart-rate";
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The seeded day: 2024-01-15 in Berlin (UTC+1), where the browser lives in most tests. */
const TZ = "Europe/Berlin";
const DAY_START = Date.UTC(2024, 0, 14, 23);
const DAY_END = DAY_START + DAY;
/** device_a (a chest strap, priority 1) is worn 07:00-12:00 and 14:00-22:00; device_b (a watch) all day. */
const A_WORN: Array<[number, number]> = [[7, 12], [14, 22]];
const A_MINUTES = A_WORN.reduce((n, [from, to]) => n + (to - from) * 60, 0);
const COLOURS = { device_a: [0x00, 0x72, 0xb2], device_b: [0xd5, 0x5e, 0x00] };

function findChromium(): string | undefined {
  const found = spawnSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" });
  const bin = found.stdout?.trim();
  return found.status === 0 && bin ? bin : undefined;
}

/** A heart rate for a minute of the day: sleep, a day's ups and downs, a run at 18:00. */
function heartRate(minute: number, device: "device_a" | "device_b"): number {
  const h = minute / 60;
  let hr = h < 6.5
    ? 56 + 3 * Math.sin(minute / 37)
    : h < 22.5
    ? 72 + 6 * Math.sin(minute / 53) + 4 * Math.sin(minute / 11)
    : 62;
  if (h >= 7.5 && h < 8) hr += 18 * Math.sin(((h - 7.5) / 0.5) * Math.PI); // a walk to work
  if (h >= 18 && h < 18.75) hr = 95 + 55 * Math.sin(((h - 18) / 0.75) * Math.PI); // a run
  const noise = ((minute * 7919) % 97) / 97 - 0.5;
  return Math.round((hr + 3 * noise + (device === "device_b" ? 1.5 : 0)) * 10) / 10;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

function seedDay(user: string): object[] {
  const out: object[] = [];
  for (let m = 0; m < 24 * 60; m++) {
    const timestamp = new Date(DAY_START + m * MINUTE + 15_000).toISOString();
    out.push({ user_id: user, device_id: "device_b", timestamp, heart_rate: heartRate(m, "device_b") });
    if (A_WORN.some(([from, to]) => m >= from * 60 && m < to * 60)) {
      out.push({ user_id: user, device_id: "device_a", timestamp, heart_rate: heartRate(m, "device_a") });
    }
  }
  return out;
}

const skip = CHROMIUM === undefined ? "no chromium on the PATH (apt-get install -y chromium)" : false;

describe("dashboard in Chromium", { skip }, () => {
  let browser: Browser;
  let server: RunningServer;
  let t: Awaited<ReturnType<typeof testApp>>;
  let base = "";
  const shots = process.env.PULSEDB_SCREENSHOTS ?? tempDir("pulsedb-dashboard-shots-");
  const contexts: BrowserContext[] = [];

  async function post(body: unknown): Promise<void> {
    const res = await fetch(`${base}${API}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200, await res.text());
  }

  /**
   * A page in a fresh context; console errors and page errors are collected, except failed loads
   * with one of `allowedStatuses` (Chromium logs every 4xx fetch as a console error).
   */
  async function open(url: string, opts: BrowserContextOptions & { allowedStatuses?: number[] } = {}) {
    const { allowedStatuses = [], ...contextOpts } = opts;
    const context = await browser.newContext({
      viewport: { width: 1280, height: 760 },
      timezoneId: TZ,
      locale: "en-GB",
      ...contextOpts,
    });
    contexts.push(context);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
    page.on("console", (msg) => {
      if (msg.type() !== "error") return;
      const text = msg.text();
      if (allowedStatuses.some((s) => text.includes(`the server responded with a status of ${s}`))) return;
      errors.push(text);
    });
    if (url) await page.goto(`${base}${url}`);
    return { page, context, errors };
  }

  function params(req: Request): URLSearchParams {
    return new URL(req.url()).searchParams;
  }

  function isQuery(req: Request): boolean {
    return new URL(req.url()).pathname === API && req.method() === "GET";
  }

  async function points(page: Page, n: number): Promise<void> {
    await page.waitForFunction((n) => document.getElementById("chart")?.dataset.points === String(n), n, {
      timeout: 10_000,
    });
  }

  before(async () => {
    const { chromium } = await import("playwright-core");
    [browser, t] = await Promise.all([chromium.launch({ executablePath: CHROMIUM, args: ARGS }), testApp()]);
    server = await serve(t.app.fetch, { hostname: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${server.port}`;
    await post(seedDay("user_1"));
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await server?.close();
    await t?.close();
    console.log(`# dashboard screenshots: ${shots}`);
  });

  const dayUrl = `/?user=user_1&start=${new Date(DAY_START).toISOString()}&end=${new Date(DAY_END).toISOString()}`;

  it("charts a seeded day: every bucket a point, the other device's buckets in its colour and in the legend", async () => {
    const { page, errors } = await open(dayUrl);
    await points(page, 24 * 60);
    const chart = page.locator("#chart");
    assert.equal(await chart.getAttribute("data-bucket"), "1m");
    // Drawing time after the answer arrived: the best of up to three loads (a busy machine only adds time).
    const drawMs = async () => {
      await page.waitForFunction(() => document.getElementById("chart")?.dataset.drawMs !== undefined);
      return Number(await chart.getAttribute("data-draw-ms"));
    };
    const drawTimes = [await drawMs()];
    while (Math.min(...drawTimes) > 300 && drawTimes.length < 3) {
      await page.reload();
      await points(page, 24 * 60);
      drawTimes.push(await drawMs());
    }
    assert.ok(
      Math.min(...drawTimes) <= 300,
      `first chart drawn ${drawTimes.join(", ")} ms after its answer arrived; at most 300 ms`,
    );

    // The URL restored the view: a custom range, no preset, live mode off and unavailable.
    assert.equal(await page.locator("#user").inputValue(), "user_1");
    assert.equal(await page.locator('input[name="range"]:checked').count(), 0);
    assert.equal(await page.locator("#from").inputValue(), "2024-01-15T00:00");
    assert.equal(await page.locator("#to").inputValue(), "2024-01-16T00:00");
    assert.ok(await page.locator("#live").isDisabled());

    // Legend: both devices, with their bucket counts and colours.
    const legend = page.locator("#legend li");
    assert.deepEqual(await legend.evaluateAll((lis) => lis.map((li) => (li as HTMLElement).dataset.device)), [
      "device_a",
      "device_b",
    ]);
    assert.match(
      await page.locator('#legend li[data-device="device_b"]').innerText(),
      new RegExp(`${24 * 60 - A_MINUTES} buckets`),
    );
    assert.match(await page.locator('#legend li[data-device="device_a"]').innerText(), /780 buckets/);
    const swatch = await page.locator('#legend li[data-device="device_b"] .swatch').evaluate((e) =>
      getComputedStyle(e).backgroundColor
    );
    assert.equal(swatch, `rgb(${COLOURS.device_b.join(", ")})`);

    // The canvas: the 13:00 bucket (device_a is off) is drawn in device_b's colour, 10:00 in device_a's.
    for (const [hour, device] of [[13, "device_b"], [10, "device_a"]] as const) {
      const ms = DAY_START + hour * HOUR;
      const px = await page.evaluate((ms) => {
        const u = (globalThis as unknown as { pulsedbPlot: PlotHandle }).pulsedbPlot;
        const i = u.data[0].indexOf(ms / 1000);
        const x = Math.round(u.valToPos(u.data[0][i], "x", true));
        const y = Math.round(u.valToPos(u.data[1][i], "y", true));
        return Array.from(u.ctx.getImageData(x, y, 1, 1).data as Uint8ClampedArray).slice(0, 3);
      }, ms);
      const want = COLOURS[device];
      assert.ok(
        px.every((v, k) => Math.abs(v - want[k]) <= 40),
        `pixel at ${hour}:00 is ${px}, want ${device} ${want}`,
      );
    }

    // Hover readout: local time and UTC, value, device.
    const pos = await page.evaluate((ms) => {
      const u = (globalThis as unknown as { pulsedbPlot: PlotHandle }).pulsedbPlot;
      const i = u.data[0].indexOf(ms / 1000);
      const r = u.over.getBoundingClientRect();
      return { x: r.left + u.valToPos(u.data[0][i], "x"), y: r.top + u.valToPos(u.data[1][i], "y") };
    }, DAY_START + 13 * HOUR);
    await page.mouse.move(pos.x, pos.y);
    const readout = page.locator("#readout");
    await page.waitForFunction(() => document.querySelector("#readout .dev") !== null);
    const text = await readout.innerText();
    // Buckets are under a pixel apart here: read the one the cursor landed on (13:00, give or take).
    const minute = await page.evaluate((start) => {
      const u = (globalThis as unknown as { pulsedbPlot: PlotHandle }).pulsedbPlot;
      return Math.round((u.data[0][u.cursor.idx] * 1000 - start) / 60_000);
    }, DAY_START);
    assert.ok(Math.abs(minute - 13 * 60) <= 2, `hovered minute ${minute}`);
    const [hh, mm] = [Math.floor(minute / 60), pad(minute % 60)];
    assert.match(text, new RegExp(`15 Jan 2024, ${hh}:${mm}:00 \\(local\\)`));
    assert.match(text, new RegExp(`2024-01-15 ${hh - 1}:${mm}:00 UTC`));
    assert.match(text, new RegExp(`${heartRate(minute, "device_b")} bpm`));
    assert.match(text, /device_b/);

    // Keyboard: the chart takes focus; End reads the last bucket.
    await page.mouse.move(0, 0);
    await chart.focus();
    await page.keyboard.press("End");
    await page.waitForFunction(() => /23:59:00 \(local\)/.test(document.getElementById("readout")!.innerText));

    await chart.blur();
    await page.mouse.move(pos.x, pos.y);
    await page.screenshot({ path: path.join(shots, "day-desktop.png") });
    if (process.env.PULSEDB_DOCS_SCREENSHOT === "1") {
      await page.screenshot({ path: path.join(REPO_ROOT, "docs", "dashboard.png") });
    }
    assert.deepEqual(errors, []);
  });

  // The first test runs alone (it times the first chart); the others, independent pages, together.
  describe("and meanwhile", { concurrency: true }, () => {
    it("fits a phone-sized screen", async () => {
      const { page, errors } = await open(dayUrl, {
        viewport: { width: 390, height: 844 },
        deviceScaleFactor: 2,
        isMobile: true,
        hasTouch: true,
      });
      await points(page, 24 * 60);
      assert.ok(
        await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth),
        "no horizontal scrolling",
      );
      const box = (await page.locator("#chart").boundingBox())!;
      assert.ok(box.x >= 0 && box.x + box.width <= 390, `chart within the screen: ${JSON.stringify(box)}`);
      await page.screenshot({ path: path.join(shots, "day-phone.png"), fullPage: true });
      assert.deepEqual(errors, []);
    });

    it("asks for the right range and bucket for each preset, the URL follows, and a newer request aborts an older one", async () => {
      const now = Date.UTC(2024, 0, 15, 15, 30); // 10:30 in New York
      const { page, errors } = await open("", { timezoneId: "America/New_York" });
      await page.clock.setFixedTime(now);
      const asked: Request[] = [];
      page.on("request", (r) => isQuery(r) && asked.push(r));
      const next = () => page.waitForRequest(isQuery);

      let req = next();
      await page.goto(`${base}/?user=user_1&range=1h`);
      const expect = async (r: Promise<Request>, start: number, bucket: string) => {
        const p = params(await r);
        assert.equal(p.get("user_id"), "user_1");
        assert.equal(Date.parse(p.get("start")!), start, `start for ${bucket}`);
        assert.equal(Date.parse(p.get("end")!), now);
        assert.equal(p.get("bucket"), bucket);
      };
      await expect(req, now - HOUR, "10s");

      // Keyboard: the presets are a radio group; ArrowRight moves to "Today" (New York midnight).
      req = next();
      await page.locator("#r-1h").focus();
      await page.keyboard.press("ArrowRight");
      await expect(req, Date.UTC(2024, 0, 15, 5), "30s");
      assert.match(page.url(), /range=today/);

      for (
        const [label, days, bucket] of [["7 days", 7, "15m"], ["30 days", 30, "30m"], ["1 year", 365, "6h"]] as const
      ) {
        req = next();
        await page.getByText(label, { exact: true }).click();
        await expect(req, now - days * DAY, bucket);
      }
      assert.match(page.url(), /range=1y/);
      await page.waitForFunction(() => document.getElementById("chart")?.dataset.bucket === "6h");

      // The bucket override, then the URL restores the whole view.
      req = next();
      await page.locator("#bucket").selectOption("1d");
      await expect(req, now - 365 * DAY, "1d");
      req = next();
      await page.reload();
      await expect(req, now - 365 * DAY, "1d");
      assert.ok(await page.locator("#r-1y").isChecked());
      assert.equal(await page.locator("#bucket").inputValue(), "1d");
      await page.locator("#bucket").selectOption("auto");

      // Hold the 7-day answer; asking for 30 days meanwhile aborts it.
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      await page.route((u) => u.searchParams.get("bucket") === "15m", async (route) => {
        await held;
        await route.continue().catch(() => {});
      });
      const failed = page.waitForEvent("requestfailed", (r) => isQuery(r) && params(r).get("bucket") === "15m");
      req = next();
      await page.getByText("7 days", { exact: true }).click();
      await expect(req, now - 7 * DAY, "15m");
      req = next();
      await page.getByText("30 days", { exact: true }).click();
      await expect(req, now - 30 * DAY, "30m");
      assert.match((await failed).failure()?.errorText ?? "", /ABORTED/);
      release();
      await page.waitForFunction(() => document.getElementById("chart")?.dataset.bucket === "30m");
      assert.ok(asked.length >= 10);
      assert.deepEqual(errors, []);
    });

    it("live mode shows a reading posted after the page opened", async () => {
      const now = Date.now();
      await post({
        user_id: "user_live",
        device_id: "device_a",
        timestamp: new Date(now - 10 * MINUTE).toISOString(),
        heart_rate: 64,
      });
      const { page, errors } = await open("/?user=user_live&range=1h&live=1");
      await points(page, 1);
      assert.ok(await page.locator("#live").isChecked());
      await post({
        user_id: "user_live",
        device_id: "device_b",
        timestamp: new Date(Date.now() - 1000).toISOString(),
        heart_rate: 131,
      });
      await points(page, 2);
      assert.match(await page.locator("#summary").innerText(), /max 131 bpm/);
      assert.ok(await page.locator('#legend li[data-device="device_b"]').isVisible());
      await page.screenshot({ path: path.join(shots, "live.png") });
      assert.deepEqual(errors, []);
    });

    it("shows an empty state when there are no readings (404)", async () => {
      const { page, errors } = await open("/?user=nobody&range=7d", { allowedStatuses: [404, 400] });
      const status = page.locator("#status.empty");
      await status.waitFor();
      assert.match(await status.innerText(), /No readings/);
      assert.match(await status.innerText(), /nobody/);
      assert.ok(await page.locator("#chart").isHidden());
      await page.screenshot({ path: path.join(shots, "empty.png") });

      // Any other problem shows its detail and field errors: 10 s buckets over 30 days are too many.
      await page.getByText("30 days", { exact: true }).click();
      await page.locator("#bucket").selectOption("10s");
      const problem = page.locator("#status.error");
      await problem.waitFor();
      assert.match(await problem.innerText(), /Validation failed \(400\)/);
      assert.match(await problem.innerText(), /at most 100000 are allowed/);
      assert.deepEqual(errors, []);
    });

    it("asks for a token on 401 and sends it as a bearer token, kept in the tab's session only", async () => {
      // Simulated access control (the server in this test has none): no bearer token, a 401.
      const { page, errors } = await open("", { allowedStatuses: [401] });
      const detail = "A bearer token is required: send Authorization: Bearer <token>.";
      const seen: Array<string | undefined> = [];
      await page.route((u) => u.pathname === API, async (route) => {
        const auth = route.request().headers()["authorization"];
        seen.push(auth);
        if (auth === "Bearer s3cret") return route.continue();
        await route.fulfill({
          status: 401,
          headers: { "content-type": "application/problem+json", "www-authenticate": "Bearer" },
          body: JSON.stringify({ type: "about:blank", title: "Unauthorized", status: 401, detail }),
        });
      });
      await page.goto(`${base}${dayUrl}`);
      const status = page.locator("#status.error");
      await status.waitFor();
      assert.match(await status.innerText(), /access token is required/);
      assert.ok((await status.innerText()).includes(detail));
      assert.ok(await page.locator("#token").isVisible());
      assert.ok(await page.evaluate(() => document.activeElement?.id === "token"), "the token field has focus");
      await page.screenshot({ path: path.join(shots, "unauthorized.png") });

      await page.keyboard.type("s3cret");
      await page.keyboard.press("Enter");
      await points(page, 24 * 60);
      assert.deepEqual(seen, [undefined, "Bearer s3cret"]);
      assert.equal(await page.evaluate(() => sessionStorage.getItem("pulsedb.token")), "s3cret");
      assert.ok(
        !(await page.evaluate(() => JSON.stringify(localStorage))).includes("s3cret"),
        "the token is not in localStorage",
      );
      assert.equal(await page.evaluate(() => localStorage.getItem("pulsedb.user")), "user_1");
      assert.deepEqual(errors, []);
    });

    it("shows the token field from the start when access control is on", async () => {
      // The page from dashboardRoutes({ authEnabled: true }), the API from the test server.
      const app = new Hono().route("/", dashboardRoutes({ authEnabled: true }));
      app.all("*", (c) => t.app.fetch(c.req.raw));
      const authed = await serve(app.fetch, { hostname: "127.0.0.1", port: 0 });
      try {
        const { page, errors } = await open("");
        await page.goto(`http://127.0.0.1:${authed.port}${dayUrl}`);
        await points(page, 24 * 60);
        assert.ok(await page.locator("#token").isVisible());
        assert.equal(await page.locator("#token").getAttribute("type"), "password");
        assert.deepEqual(errors, []);
      } finally {
        await authed.close();
      }
    });
  });
});
