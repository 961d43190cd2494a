/**
 * Result cache: bounded, exact invalidation, never stores an answer that a concurrent write outdated.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ResultCache } from "../../src/query/result-cache.ts";
import { DAY0, openTestDb, reading, removeDir, tempDir } from "../support/harness.ts";
import { render } from "../../src/http/app.ts";

const range = { user: "u1", start: 1000, end: 2000 };

describe("ResultCache", () => {
  it("drops an answer when a write for the same user lands inside its range", () => {
    const c = new ResultCache(10, 1 << 20);
    c.put("k", range, "body", c.version("u1"));
    c.invalidate("u1", 1500);
    assert.equal(c.get("k"), undefined);
  });

  it("keeps an answer when the write is for another user or outside the range", () => {
    const c = new ResultCache(10, 1 << 20);
    c.put("k", range, "body", c.version("u1"));
    c.invalidate("u2", 1500);
    c.invalidate("u1", 999);
    c.invalidate("u1", 2000); // end is exclusive
    assert.equal(c.get("k"), "body");
  });

  it("drops an answer whose range intersects a batch's span", () => {
    const c = new ResultCache(10, 1 << 20);
    c.put("k", range, "body", c.version("u1"));
    c.invalidate("u1", 0, 1000);
    assert.equal(c.get("k"), undefined);
  });

  it("refuses an answer computed while a write for the user arrived", () => {
    const c = new ResultCache(10, 1 << 20);
    const v = c.version("u1");
    c.invalidate("u1", 5000); // a write elsewhere in time, during the query
    c.put("k", range, "stale?", v);
    assert.equal(c.get("k"), undefined);
  });

  it("is bounded by entries and counts hits and misses", () => {
    const c = new ResultCache(3, 1 << 20);
    for (let i = 0; i < 10; i++) c.put(`k${i}`, range, "b", c.version("u1"));
    assert.equal(c.size, 3);
    c.get("k9");
    c.get("k0");
    assert.deepEqual([c.hits, c.misses], [1, 1]);
  });

  it("is bounded by bytes", () => {
    const c = new ResultCache(100, 10_000);
    for (let i = 0; i < 10; i++) c.put(`k${i}`, range, "x".repeat(2000), c.version("u1"));
    assert.ok(c.size <= 2, `held ${c.size}`);
  });

  it("with zero entries caches nothing", () => {
    const c = new ResultCache(0, 0);
    c.put("k", range, "b", 0);
    assert.equal(c.get("k"), undefined);
  });
});

describe("Engine.queryCached", () => {
  it("serves a hit until a write changes the answer, then the new answer", async () => {
    const dir = tempDir();
    const { engine } = await openTestDb(dir);
    try {
      const spec = { userId: "user_1", start: DAY0, end: DAY0 + 86_400_000, bucketMs: 86_400_000 };
      const ask = () => engine.queryCached(spec, (r) => render("user_1", r));
      await engine.write([reading({ heartRate: 60 })]);
      assert.equal((await ask()).cached, false);
      const hit = await ask();
      assert.equal(hit.cached, true);
      await engine.write([reading({ userId: "user_2", heartRate: 100 })]);
      assert.equal((await ask()).cached, true, "a write for another user keeps the entry");
      await engine.write([reading({ ts: DAY0 + 3_600_000, heartRate: 80 })]);
      const fresh = await ask();
      assert.equal(fresh.cached, false);
      assert.equal(JSON.parse(fresh.body!).data[0].heart_rate, 70);
    } finally {
      await engine.close();
      removeDir(dir);
    }
  });
});
