/**
 * The result cache's per-user write versions are bounded, and evicting a user's version never lets
 * an answer computed before a write for that user be cached (issue 11, item 10).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ResultCache } from "../../src/query/result-cache.ts";

const range = { user: "u1", start: 1000, end: 2000 };

/** Writes for `n` other users, enough to evict every older version from a cache keeping `n`. */
function flood(c: ResultCache, n: number): void {
  for (let i = 0; i < n; i++) c.invalidate(`other_${i}`, 0);
}

describe("ResultCache versions", () => {
  it("keep at most maxVersions users, however many users write", () => {
    const c = new ResultCache(10, 1 << 20, 100);
    flood(c, 10_000);
    assert.ok(c.versionEntries <= 100, `${c.versionEntries} versions kept`);
  });

  it("refuse an answer whose user was written and then evicted while the query ran (user new to the cache)", () => {
    const c = new ResultCache(10, 1 << 20, 100);
    const v = c.version("u1"); // u1 has never been written: no version of its own
    c.invalidate("u1", 1500); // a write lands while the query runs
    flood(c, 1000); // ... and u1's version is evicted
    c.put("k", range, "stale", v);
    assert.equal(c.get("k"), undefined);
  });

  it("refuse an answer whose user was written and then evicted while the query ran (user known)", () => {
    const c = new ResultCache(10, 1 << 20, 100);
    c.invalidate("u1", 5000);
    const v = c.version("u1");
    c.invalidate("u1", 1500);
    flood(c, 1000);
    c.put("k", range, "stale", v);
    assert.equal(c.get("k"), undefined);
  });

  it("still cache an answer when nothing was written for its user, evicted or not", () => {
    const c = new ResultCache(10, 1 << 20, 100);
    c.invalidate("u1", 5000);
    flood(c, 1000);
    const v = c.version("u1");
    flood(c, 10); // evictions of other users' versions while it runs
    c.put("k", range, "fresh", v);
    // Raising the floor may refuse an answer (never wrong); with no eviction in between it is kept:
    const v2 = c.version("u1");
    c.put("k2", range, "fresh", v2);
    assert.equal(c.get("k2"), "fresh");
  });

  it("invalidate a cached answer after its user's version was evicted", () => {
    const c = new ResultCache(10, 1 << 20, 100);
    c.put("k", range, "body", c.version("u1"));
    assert.equal(c.get("k"), "body");
    flood(c, 1000);
    c.invalidate("u1", 1500);
    assert.equal(c.get("k"), undefined);
  });
});
