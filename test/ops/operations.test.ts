/**
 * Operations (issue 7): /metrics, structured logs, /ready, /openapi.json, and the daemon's start-up
 * and shutdown sequence.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { testConfig } from "../../src/ops/config.ts";
import type { Engine } from "../../src/engine.ts";
import { createApp } from "../../src/http/app.ts";
import { createLogger, silentLogger } from "../../src/ops/logger.ts";
import { Metrics, REJECT_REASONS } from "../../src/ops/metrics.ts";
import { openPulseDb, type PulseDb } from "../../src/pulsedb.ts";
import { parseReadingsBody } from "../../src/http/validation.ts";
import { isDeno } from "../support/child.ts";
import { removeDir, tempDir, testApp } from "../support/harness.ts";
import { startDaemon } from "../support/daemon.ts";

const ROUTE = "/metrics/heart-rate";

// deno-lint-ignore no-explicit-any -- parsed JSON documents of any shape
type Json = Record<string, any>;

function rd(over: Json = {}): Json {
  return { user_id: "ops_user", device_id: "device_a", timestamp: "2024-01-15T10:00:00Z", heart_rate: 75, ...over };
}

function post(
  app: { request: (url: string, init?: RequestInit) => Response | Promise<Response> },
  body: unknown,
  raw = false,
): Promise<Response> {
  return Promise.resolve(
    app.request(ROUTE, {
      method: "POST",
      body: raw ? (body as string) : JSON.stringify(body),
      headers: { "content-type": "application/json" },
    }),
  );
}

/** The value of one sample in Prometheus text; `labels` is the exact label text inside `{}`. */
function sample(text: string, name: string, labels?: string): number | undefined {
  const prefix = labels === undefined ? `${name} ` : `${name}{${labels}} `;
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length));
}

async function expect503(res: Response): Promise<Json> {
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "1");
  assert.match(res.headers.get("content-type") ?? "", /^application\/problem\+json/);
  const p = (await res.json()) as Json;
  assert.equal(p.status, 503);
  assert.equal(typeof p.detail, "string");
  return p;
}

// ---------------------------------------------------------------------------------------------

describe("readiness", () => {
  it("GET /ready answers 503 until the engine is open, then 200; /health is 200 throughout", async () => {
    const dir = tempDir();
    const config = testConfig({ dataDir: dir, compaction: false });
    const metrics = new Metrics();
    let engine: Engine | undefined;
    const app = createApp({ engine: () => engine, metrics, config, log: silentLogger });
    let db: PulseDb | undefined;
    try {
      assert.equal((await app.request("/health")).status, 200);
      await expect503(await app.request("/ready"));
      await expect503(await post(app, rd()));
      await expect503(
        await app.request(`${ROUTE}?user_id=ops_user&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z`),
      );
      await expect503(await app.request("/metrics"));

      db = await openPulseDb(config, silentLogger, metrics);
      engine = db.engine;
      const ready = await app.request("/ready");
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { status: "ready" });
      assert.equal((await app.request("/health")).status, 200);
      assert.equal((await post(app, rd())).status, 200);
      const text = await (await app.request("/metrics")).text();
      assert.equal(sample(text, "pulsedb_readings_accepted_total"), 1);
      assert.equal(
        sample(text, "pulsedb_readings_rejected_total", 'reason="unavailable"'),
        1,
        "the POST answered 503 while starting is counted",
      );
    } finally {
      await db?.engine.close();
      removeDir(dir);
    }
  });

  it("GET /ready answers 503 once shutdown begins while /health stays 200", async () => {
    const t = await testApp();
    try {
      let stopping = false;
      const app = createApp({ engine: t.engine, config: t.engine.config, log: silentLogger, ready: () => !stopping });
      assert.equal((await app.request("/ready")).status, 200);
      stopping = true;
      const p = await expect503(await app.request("/ready"));
      assert.match(p.detail, /shutting down/);
      assert.equal((await app.request("/health")).status, 200);
    } finally {
      await t.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("GET /metrics", () => {
  let t: Awaited<ReturnType<typeof testApp>>;
  let text = "";
  before(async () => {
    t = await testApp({ maxBodyBytes: 64 * 1024 });
    // Traffic: accepted, every countable rejection reason, a query missed then hit, a flush.
    assert.equal(
      (await post(t.app, [rd(), rd({ timestamp: "2024-01-15T10:01:00Z" }), rd({ device_id: "device_b" })])).status,
      200,
    );
    assert.equal((await post(t.app, [rd(), rd({ heart_rate: 10 })])).status, 400);
    assert.equal((await post(t.app, "{", true)).status, 400);
    assert.equal((await post(t.app, "x".repeat(70_000), true)).status, 413);
    assert.equal((await post(t.app, Array.from({ length: 10_001 }, () => 1))).status, 413);
    const qs = "user_id=ops_user&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z";
    assert.equal((await t.app.request(`${ROUTE}?${qs}`)).status, 200);
    assert.equal((await t.app.request(`${ROUTE}?${qs}`)).status, 200);
    await t.engine.flush();
    assert.equal((await t.app.request("/users/1")).status, 404);
    assert.equal((await t.app.request("/users/2")).status, 404);
    const res = await t.app.request("/metrics");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    text = await res.text();
  });
  after(async () => {
    await t.close();
  });

  it("exports every metric family the issue lists", () => {
    const families: Array<[string, string]> = [
      ["pulsedb_readings_accepted_total", "counter"],
      ["pulsedb_readings_rejected_total", "counter"],
      ["pulsedb_http_request_duration_seconds", "histogram"],
      ["pulsedb_wal_sync_duration_seconds", "histogram"],
      ["pulsedb_wal_sync_batch_records", "histogram"],
      ["pulsedb_wal_syncs_total", "counter"],
      ["pulsedb_wal_synced_records_total", "counter"],
      ["pulsedb_wal_pending_records", "gauge"],
      ["pulsedb_memtable_rows", "gauge"],
      ["pulsedb_memtable_bytes", "gauge"],
      ["pulsedb_memory_budget_bytes", "gauge"],
      ["pulsedb_memtables_waiting_flush", "gauge"],
      ["pulsedb_runs", "gauge"],
      ["pulsedb_run_bytes", "gauge"],
      ["pulsedb_flushes_total", "counter"],
      ["pulsedb_flush_duration_seconds", "histogram"],
      ["pulsedb_compactions_total", "counter"],
      ["pulsedb_compaction_duration_seconds", "histogram"],
      ["pulsedb_write_amplification", "gauge"],
      ["pulsedb_query_duration_seconds", "histogram"],
      ["pulsedb_cache_hits_total", "counter"],
      ["pulsedb_cache_misses_total", "counter"],
      ["pulsedb_backpressure_rejections_total", "counter"],
    ];
    for (const [name, type] of families) {
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, "m"), `${name} (${type}) exported`);
    }
    assert.doesNotMatch(text, /^process_|^nodejs_/m, "no default collectors");
  });

  it("counts accepted readings and rejected readings by reason", () => {
    assert.equal(sample(text, "pulsedb_readings_accepted_total"), 3);
    assert.equal(
      sample(text, "pulsedb_readings_rejected_total", 'reason="invalid"'),
      2,
      "the whole batch of 2 is refused",
    );
    assert.equal(sample(text, "pulsedb_readings_rejected_total", 'reason="malformed_json"'), 1);
    assert.equal(sample(text, "pulsedb_readings_rejected_total", 'reason="too_large"'), 1);
    assert.equal(sample(text, "pulsedb_readings_rejected_total", 'reason="batch_too_large"'), 10_001);
    for (const reason of REJECT_REASONS) {
      assert.notEqual(
        sample(text, "pulsedb_readings_rejected_total", `reason="${reason}"`),
        undefined,
        `${reason} exported from the start`,
      );
    }
  });

  it("labels request durations by route pattern and status, with unknown paths folded into one series", () => {
    assert.equal(
      sample(
        text,
        "pulsedb_http_request_duration_seconds_count",
        'method="POST",route="/metrics/heart-rate",status="200"',
      ),
      1,
    );
    assert.equal(
      sample(
        text,
        "pulsedb_http_request_duration_seconds_count",
        'method="POST",route="/metrics/heart-rate",status="400"',
      ),
      2,
    );
    assert.equal(
      sample(
        text,
        "pulsedb_http_request_duration_seconds_count",
        'method="POST",route="/metrics/heart-rate",status="413"',
      ),
      2,
    );
    assert.equal(
      sample(
        text,
        "pulsedb_http_request_duration_seconds_count",
        'method="GET",route="/metrics/heart-rate",status="200"',
      ),
      2,
    );
    assert.equal(
      sample(text, "pulsedb_http_request_duration_seconds_count", 'method="GET",route="unmatched",status="404"'),
      2,
    );
    assert.doesNotMatch(text, /route="\/users/, "raw paths never become labels");
    const inf = sample(
      text,
      "pulsedb_http_request_duration_seconds_bucket",
      'method="GET",route="/metrics/heart-rate",status="200",le="+Inf"',
    );
    assert.equal(inf, 2);
  });

  it("reports flushes, runs per level, bytes on disk, write amplification, cache and query latency", () => {
    assert.equal(sample(text, "pulsedb_flushes_total"), 1);
    assert.equal(sample(text, "pulsedb_flush_duration_seconds_count"), 1);
    assert.equal(sample(text, "pulsedb_runs", 'level="0"'), 1);
    assert.ok(sample(text, "pulsedb_run_bytes")! > 0);
    assert.equal(sample(text, "pulsedb_memtable_rows"), 0, "everything flushed");
    assert.equal(sample(text, "pulsedb_write_amplification"), 1, "flushed once, nothing compacted");
    assert.equal(sample(text, "pulsedb_cache_misses_total"), 1);
    assert.equal(sample(text, "pulsedb_cache_hits_total"), 1);
    assert.equal(sample(text, "pulsedb_query_duration_seconds_count"), 1);
    assert.equal(sample(text, "pulsedb_memory_budget_bytes"), t.engine.config.memoryBudgetBytes);
  });
});

describe("metrics internals", () => {
  it("counts back-pressure refusals as readings rejected for reason overloaded", async () => {
    const t = await testApp({ memoryBudgetBytes: 1 });
    try {
      await post(t.app, rd());
      const res = await post(t.app, [
        rd({ timestamp: "2024-01-15T11:00:00Z" }),
        rd({ timestamp: "2024-01-15T12:00:00Z" }),
      ]);
      assert.equal(res.status, 503);
      const text = await (await t.app.request("/metrics")).text();
      assert.ok(sample(text, "pulsedb_backpressure_rejections_total")! >= 1);
      assert.ok(sample(text, "pulsedb_readings_rejected_total", 'reason="overloaded"')! >= 2);
    } finally {
      await t.close();
    }
  });

  it("setWalStats turns WAL stats into monotonic counters and gauges; observeWalSync fills the histograms", async () => {
    const m = new Metrics();
    m.setWalStats({ syncs: 10, syncedRecords: 400, lastSyncMs: 2, pendingRecords: 7 });
    m.setWalStats({ syncs: 15, syncedRecords: 500, lastSyncMs: 1.5, pendingRecords: 0 });
    m.observeWalSync(0.8, 120);
    const text = await m.registry.metrics();
    assert.equal(sample(text, "pulsedb_wal_syncs_total"), 15);
    assert.equal(sample(text, "pulsedb_wal_synced_records_total"), 500);
    assert.equal(sample(text, "pulsedb_wal_last_sync_seconds"), 0.0015);
    assert.equal(sample(text, "pulsedb_wal_pending_records"), 0);
    assert.equal(sample(text, "pulsedb_wal_sync_duration_seconds_count"), 1);
    assert.equal(sample(text, "pulsedb_wal_sync_duration_seconds_bucket", 'le="0.001"'), 1);
    assert.equal(sample(text, "pulsedb_wal_sync_batch_records_sum"), 120);
  });

  it("the request-duration histogram renders cumulative buckets with +Inf equal to the count", async () => {
    const m = new Metrics();
    const r = m.httpDuration.route("/health");
    for (const s of [0.00005, 0.0003, 0.0003, 2]) r.observe("GET", 200, s);
    r.observe("BREW", 418, 0.001);
    const text = await m.registry.metrics();
    const l = (le: string) =>
      sample(
        text,
        "pulsedb_http_request_duration_seconds_bucket",
        `method="GET",route="/health",status="200",le="${le}"`,
      );
    assert.equal(l("0.0001"), 1);
    assert.equal(l("0.00025"), 1);
    assert.equal(l("0.0005"), 3);
    assert.equal(l("1"), 3);
    assert.equal(l("+Inf"), 4);
    assert.equal(
      sample(text, "pulsedb_http_request_duration_seconds_count", 'method="GET",route="/health",status="200"'),
      4,
    );
    assert.ok(
      Math.abs(
        sample(text, "pulsedb_http_request_duration_seconds_sum", 'method="GET",route="/health",status="200"')! -
          2.00065,
      ) < 1e-9,
    );
    assert.equal(
      sample(text, "pulsedb_http_request_duration_seconds_count", 'method="other",route="/health",status="418"'),
      1,
      "unknown methods fold into other",
    );
    m.registry.resetMetrics();
    assert.doesNotMatch(await m.registry.metrics(), /route="\/health"/);
  });
});

// ---------------------------------------------------------------------------------------------

describe("GET /openapi.json", () => {
  let t: Awaited<ReturnType<typeof testApp>>;
  let doc: Json;
  before(async () => {
    t = await testApp();
    const res = await t.app.request("/openapi.json");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    doc = (await res.json()) as Json;
  });
  after(async () => {
    await t.close();
  });

  /** Follows a local `$ref`. */
  function deref(node: Json): Json {
    if (typeof node.$ref !== "string") return node;
    assert.match(node.$ref, /^#\//);
    // deno-lint-ignore no-explicit-any -- walks a JSON document
    let cur: any = doc;
    for (const part of node.$ref.slice(2).split("/")) cur = cur?.[part];
    assert.ok(cur, `${node.$ref} resolves`);
    return cur;
  }

  it("is an OpenAPI 3.1 document with a path for every route", () => {
    assert.match(doc.openapi, /^3\.1\.\d+$/);
    assert.equal(typeof doc.info.title, "string");
    assert.equal(typeof doc.info.version, "string");
    assert.ok(doc.paths[ROUTE].post && doc.paths[ROUTE].get);
    for (const p of ["/health", "/ready", "/metrics", "/openapi.json"]) {
      assert.ok(doc.paths[p]?.get, `GET ${p} documented`);
    }
    // Every $ref anywhere in the document resolves.
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === "object") {
        if (typeof (node as Json).$ref === "string") deref(node as Json);
        Object.values(node).forEach(walk);
      }
    };
    walk(doc);
  });

  it("describes a reading as the validator does: 4 required fields, heart_rate 30..220, id pattern, date-time", () => {
    const reading = doc.components.schemas.Reading;
    assert.equal(reading.type, "object");
    assert.deepEqual([...reading.required].sort(), ["device_id", "heart_rate", "timestamp", "user_id"]);
    assert.equal(reading.properties.heart_rate.type, "number");
    assert.equal(reading.properties.heart_rate.minimum, 30);
    assert.equal(reading.properties.heart_rate.maximum, 220);
    assert.equal(reading.properties.timestamp.type, "string", "the input form, not the transformed epoch ms");
    assert.equal(reading.properties.timestamp.format, "date-time");
    assert.equal(reading.properties.user_id.pattern, "^[A-Za-z0-9_.:@-]{1,128}$");
    const batch = doc.components.schemas.ReadingBatch;
    assert.equal(batch.minItems, 1);
    assert.equal(batch.maxItems, 10_000);
  });

  it("documents POST with a single-or-array body, examples the validator accepts, and 200/400/413/503 answers", () => {
    const op = doc.paths[ROUTE].post;
    const body = op.requestBody.content["application/json"];
    const alternatives = deref(body.schema).anyOf.map((s: Json) => deref(s));
    assert.deepEqual(alternatives.map((s: Json) => s.type).sort(), ["array", "object"]);
    for (const [name, ex] of Object.entries(body.examples as Record<string, Json>)) {
      assert.ok(parseReadingsBody(ex.value).ok, `example ${name} is valid`);
    }
    for (const status of ["200", "400", "413", "503"]) assert.ok(op.responses[status], `POST documents ${status}`);
    for (const status of ["400", "413", "503"]) {
      const content = op.responses[status].content["application/problem+json"];
      assert.deepEqual(deref(content.schema).required, ["type", "title", "status", "detail"]);
      assert.ok(Object.keys(content.examples).length > 0, `${status} has examples`);
    }
    assert.ok(op.responses["503"].headers["Retry-After"]);
  });

  it("documents GET with its query parameters and the answer schema", () => {
    const op = doc.paths[ROUTE].get;
    const params = Object.fromEntries(op.parameters.map((p: Json) => [p.name, p]));
    assert.deepEqual(Object.keys(params).sort(), ["bucket", "device_id", "end", "start", "user_id"]);
    for (const p of op.parameters) assert.equal(p.in, "query");
    assert.equal(params.user_id.required, true);
    assert.equal(params.start.required, true);
    assert.equal(params.end.required, true);
    assert.equal(params.device_id.required, false);
    assert.equal(params.bucket.required, false);
    assert.deepEqual(params.bucket.schema.enum, ["10s", "30s", "1m", "5m", "15m", "30m", "1h", "6h", "1d"]);
    assert.equal(params.bucket.schema.default, "1m");
    const answer = deref(op.responses["200"].content["application/json"].schema);
    assert.deepEqual([...answer.required].sort(), ["count", "data", "user_id"]);
    assert.deepEqual([...deref(answer.properties.data.items).required].sort(), [
      "device_id",
      "heart_rate",
      "timestamp",
    ]);
    for (const status of ["400", "404", "503"]) assert.ok(op.responses[status], `GET documents ${status}`);
  });
});

// ---------------------------------------------------------------------------------------------

describe("structured logs", () => {
  it("emit one JSON object per line, dropping levels below the configured one", () => {
    const lines: string[] = [];
    const log = createLogger("warn", (l) => lines.push(l));
    log.debug("dropped");
    log.info("dropped too");
    log.warn("disk slow", { ms: 12.5, file: "a\nb" });
    log.error("flush failed", { err: Object.assign(new Error("boom", { cause: new Error("root") }), { code: "EIO" }) });
    assert.equal(lines.length, 2);
    for (const line of lines) assert.ok(!line.includes("\n"), "one line per event");
    const [warn, error] = lines.map((l) => JSON.parse(l) as Json);
    assert.equal(warn.level, "warn");
    assert.equal(warn.msg, "disk slow");
    assert.equal(warn.ms, 12.5);
    assert.equal(warn.file, "a\nb");
    assert.ok(!Number.isNaN(Date.parse(warn.time)));
    assert.equal(error.level, "error");
    assert.equal(error.err.message, "boom");
    assert.equal(error.err.code, "EIO");
    assert.equal(error.err.cause.message, "root");
    assert.equal(log.enabled("info"), false);
    assert.equal(log.enabled("error"), true);
    assert.equal(log.enabled("silent"), false);
  });

  it("never throws on odd fields and never lets a field replace time, level or msg", () => {
    const lines: string[] = [];
    const log = createLogger("debug", (l) => lines.push(l));
    const cyclic: Json = { a: 1 };
    cyclic.self = cyclic;
    log.info("odd", { big: 10n, cyclic, level: "fake", msg: "fake" });
    const o = JSON.parse(lines[0]) as Json;
    assert.equal(o.level, "info");
    assert.equal(o.msg, "odd");
    assert.equal(o.big, "10");
    assert.equal(o.cyclic.self, "[circular]");
  });

  it("log requests only at debug level", async () => {
    const t = await testApp();
    try {
      for (const level of ["info", "debug"] as const) {
        const lines: string[] = [];
        const app = createApp({
          engine: t.engine,
          config: t.engine.config,
          log: createLogger(level, (l) => lines.push(l)),
        });
        assert.equal((await app.request("/health")).status, 200);
        const requests = lines.map((l) => JSON.parse(l) as Json).filter((o) => o.msg === "request");
        if (level === "info") assert.equal(requests.length, 0);
        else {
          assert.equal(requests.length, 1);
          assert.equal(requests[0].path, "/health");
          assert.equal(requests[0].status, 200);
          assert.equal(typeof requests[0].ms, "number");
        }
      }
    } finally {
      await t.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("the daemon (src/main.ts)", () => {
  it("logs its configuration once, recovers, becomes ready, and on SIGTERM turns unready, flushes and exits 0", async () => {
    const dir = tempDir();
    const d = startDaemon({ PULSE_DATA_DIR: dir });
    try {
      const listening = await d.waitFor((l) => l.msg === "listening");
      const base = listening.url as string;
      await d.waitFor((l) => l.msg === "ready");
      assert.equal((await fetch(`${base}/ready`)).status, 200);
      assert.equal((await fetch(`${base}/health`)).status, 200);
      const res = await fetch(`${base}${ROUTE}`, {
        method: "POST",
        body: JSON.stringify(rd()),
        headers: { "content-type": "application/json" },
      });
      assert.equal(res.status, 200);
      await res.text();
      d.kill("SIGTERM");
      const { code, signal } = await d.exited;
      // Deno's child_process reports the signal it sent instead of the child's exit code; there the
      // "closed" line (checked below) proves the clean shutdown.
      if (!(isDeno() && signal === "SIGTERM")) assert.equal(code, 0, d.stderr());
      const msgs = d.lines.map((l) => l.msg);
      const starting = d.lines.filter((l) => l.msg === "starting");
      assert.equal(starting.length, 1, "configuration logged once");
      assert.equal(starting[0].config.dataDir, dir);
      assert.deepEqual(starting[0].config.devicePriority, { device_a: 1, device_b: 2 });
      for (const m of ["listening", "recovered", "ready", "shutting down", "flush", "closed"]) {
        assert.ok(msgs.includes(m), `logs ${m}`);
      }
      assert.ok(msgs.indexOf("listening") < msgs.indexOf("recovered"), "listens before the engine has opened");
      assert.ok(msgs.indexOf("shutting down") < msgs.indexOf("flush"), "flushes at shutdown");
      assert.ok(!msgs.includes("request"), "no request lines at info level");
      for (const l of d.lines) assert.ok(["info", "warn", "error"].includes(l.level) && typeof l.time === "string");
    } finally {
      d.kill("SIGKILL");
      await d.exited;
      removeDir(dir);
    }
  });

  it("exits non-zero with the reason on stderr when start-up fails (corrupt manifest)", async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "MANIFEST"), "this is not a manifest\n");
    const d = startDaemon({ PULSE_DATA_DIR: dir });
    try {
      const { code } = await d.exited;
      assert.notEqual(code, 0);
      assert.match(d.stderr(), /^pulsedb: start-up failed: .+/m);
      assert.ok(d.lines.some((l) => l.level === "error" && l.msg === "start-up failed"));
    } finally {
      removeDir(dir);
    }
  });
});
