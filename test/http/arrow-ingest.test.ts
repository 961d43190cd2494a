/**
 * Arrow ingest: POST with Content-Type application/vnd.apache.arrow.stream, validated column-wise
 * with the JSON rules and the same all-or-nothing answer.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as arrow from "apache-arrow";
import { DAY0, testApp } from "../support/harness.ts";

type App = Awaited<ReturnType<typeof testApp>>;
const TYPE = "application/vnd.apache.arrow.stream";
const H10 = DAY0 + 10 * 3_600_000;

function dict(values: string[]): arrow.Vector {
  const distinct = [...new Set(values)];
  const codes = Int32Array.from(values, (v) => distinct.indexOf(v));
  return arrow.makeVector(arrow.makeData({
    type: new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32()),
    length: values.length,
    nullCount: 0,
    data: codes,
    dictionary: arrow.vectorFromArray(distinct, new arrow.Utf8()),
  }));
}

function ipc(columns: Record<string, arrow.Vector>): Uint8Array {
  return arrow.tableToIPC(new arrow.Table(columns), "stream");
}

describe("Arrow ingest", () => {
  let t: App;
  before(async () => {
    t = await testApp();
  });
  after(() => t.close());

  const post = (body: Uint8Array) =>
    t.app.request("/metrics/heart-rate", {
      method: "POST",
      body: new Blob([body as Uint8Array<ArrayBuffer>]),
      headers: { "content-type": TYPE },
    });
  const query = async (user: string, extra = "") => {
    const res = await t.app.request(
      `/metrics/heart-rate?user_id=${user}&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z${extra}`,
    );
    return res.status === 200 ? (await res.json()).data : res.status;
  };

  it("stores a stream with dictionary ids and float64 ms timestamps, answering its count", async () => {
    const res = await post(ipc({
      user_id: dict(["arrow_1", "arrow_1", "arrow_1"]),
      device_id: dict(["device_b", "device_a", "device_a"]),
      timestamp: arrow.makeVector(new Float64Array([H10, H10, H10 + 60_000])),
      heart_rate: arrow.makeVector(new Float64Array([80, 75, 70.5])),
    }));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: "accepted", count: 3 });
    assert.deepEqual(await query("arrow_1"), [
      { timestamp: "2024-01-15T10:00:00Z", heart_rate: 75, device_id: "device_a" },
      { timestamp: "2024-01-15T10:01:00Z", heart_rate: 70.5, device_id: "device_a" },
    ]);
  });

  it("takes plain utf8 ids, an Arrow timestamp column and integer heart rates", async () => {
    const res = await post(ipc({
      user_id: arrow.vectorFromArray(["arrow_2", "arrow_2"], new arrow.Utf8()),
      device_id: arrow.vectorFromArray(["device_a", "device_a"], new arrow.Utf8()),
      timestamp: arrow.vectorFromArray([new Date(H10), new Date(H10 + 1)], new arrow.TimestampMillisecond()),
      heart_rate: arrow.vectorFromArray([60, 61], new arrow.Int32()),
    }));
    assert.equal(res.status, 200);
    assert.deepEqual(await query("arrow_2"), [{
      timestamp: "2024-01-15T10:00:00Z",
      heart_rate: 60.5,
      device_id: "device_a",
    }]);
  });

  it("keeps the later row of one stream for the same identity", async () => {
    await post(ipc({
      user_id: dict(["arrow_3", "arrow_3"]),
      device_id: dict(["device_a", "device_a"]),
      timestamp: arrow.makeVector(new Float64Array([H10, H10])),
      heart_rate: arrow.makeVector(new Float64Array([50, 99])),
    }));
    assert.deepEqual((await query("arrow_3"))[0].heart_rate, 99);
  });

  it("rejects the whole stream for one bad cell, naming row and column of each, and stores nothing", async () => {
    const res = await post(ipc({
      user_id: dict(["arrow_4", "bad id", "arrow_4"]),
      device_id: dict(["device_a", "device_a", "device_a"]),
      timestamp: arrow.makeVector(new Float64Array([H10, H10 + 1000, -1])),
      heart_rate: arrow.makeVector(new Float64Array([75, 75, 220.01])),
    }));
    assert.equal(res.status, 400);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    const p = await res.json();
    assert.deepEqual(p.errors.map((e: { path: string }) => e.path), ["/1/user_id", "/2/timestamp", "/2/heart_rate"]);
    assert.equal(await query("arrow_4"), 404);
  });

  it("rejects a stream without a required column, or with a column of the wrong type", async () => {
    const missing = await post(
      ipc({ user_id: dict(["u"]), device_id: dict(["d"]), timestamp: arrow.makeVector(new Float64Array([H10])) }),
    );
    assert.equal(missing.status, 400);
    assert.deepEqual((await missing.json()).errors, [{ path: "/heart_rate", message: "column heart_rate is missing" }]);
    const wrong = await post(ipc({
      user_id: dict(["u"]),
      device_id: dict(["d"]),
      timestamp: arrow.vectorFromArray(["2024-01-15T10:00:00Z"], new arrow.Utf8()),
      heart_rate: arrow.makeVector(new Float64Array([70])),
    }));
    assert.equal(wrong.status, 400);
    assert.equal((await wrong.json()).errors[0].path, "/timestamp");
  });

  it("rejects bytes that are not an Arrow stream with 400 problem JSON", async () => {
    const res = await post(new TextEncoder().encode('{"user_id":"x"}'));
    assert.equal(res.status, 400);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
  });
});

describe("Arrow ingest of a batch too large for one WAL record", () => {
  it("answers 413 and stores nothing", async () => {
    const t = await testApp({ maxBodyBytes: 32 * 1024 * 1024 });
    try {
      const n = 250_000; // 250,000 readings with 128-character ids: over the 64 MiB WAL record limit
      const user = "u".repeat(127) + "1";
      const device = "d".repeat(128);
      const body = ipc({
        user_id: dict(Array.from({ length: n }, () => user)),
        device_id: dict(Array.from({ length: n }, () => device)),
        timestamp: arrow.makeVector(Float64Array.from({ length: n }, (_, i) => H10 + i)),
        heart_rate: arrow.makeVector(new Float64Array(n).fill(70)),
      });
      const res = await t.app.request("/metrics/heart-rate", {
        method: "POST",
        body: new Blob([body as Uint8Array<ArrayBuffer>]),
        headers: { "content-type": TYPE },
      });
      assert.equal(res.status, 413);
      assert.equal(res.headers.get("content-type"), "application/problem+json");
      const q = await t.app.request(
        `/metrics/heart-rate?user_id=${user}&start=2024-01-15T00:00:00Z&end=2024-01-16T00:00:00Z`,
      );
      assert.equal(q.status, 404);
    } finally {
      await t.close();
    }
  });
});
