/**
 * The result cache: finished answers (JSON bodies) keyed by the query, bounded by entries and bytes.
 *
 * Contract: a cached answer is never stale.
 *  - `invalidate(user, ts)` runs synchronously in the write path, before the write is acknowledged,
 *    and drops every entry of that user whose range holds `ts` (entries of other users, or of ranges
 *    that do not hold `ts`, stay).
 *  - A query that was running while a write for its user arrived may have read a snapshot from before
 *    that write; `put` refuses its answer (the user's version moved between `version()` and `put`).
 *  - Versions are drawn from one counter that only grows, and only the `maxVersions` most recently
 *    written users keep their own; a user without one has the highest version ever evicted (the
 *    floor). A write to a user after `version()` gives it a version above everything before, and
 *    evicting it raises the floor at least that high, so `put` still sees a different version and
 *    refuses: bounded memory, never a stale answer (at worst an answer is not cached).
 *
 * @module
 */
import { LRUCache } from "lru-cache";

interface Entry {
  user: string;
  start: number;
  end: number;
  body: string;
}

/**
 * An LRU cache of query answers with exact, per-user invalidation.
 *
 * @example
 * ```ts
 * const cache = new ResultCache(1000, 64 << 20);
 * const v = cache.version("u1");
 * cache.put("u1|...", { user: "u1", start: 0, end: 60_000 }, '{"count":0}', v);
 * cache.invalidate("u1", 30_000); // drops it (30,000 is inside [0, 60,000))
 * ```
 */
export class ResultCache {
  hits = 0;
  misses = 0;
  private readonly lru: LRUCache<string, Entry> | undefined;
  private readonly byUser = new Map<string, Set<string>>();
  private readonly versions: LRUCache<string, number>;
  /** The clock versions are drawn from. */
  private clock = 0;
  /** The highest version evicted from `versions`: the version of every user without an entry. */
  private floor = 0;

  /** @param maxVersions users whose write version is kept (default: max(10,000, 4 x maxEntries)). */
  constructor(maxEntries: number, maxBytes: number, maxVersions: number = Math.max(10_000, 4 * maxEntries)) {
    this.versions = new LRUCache<string, number>({
      max: maxVersions,
      dispose: (version, _user, reason) => {
        if (reason === "evict" && version > this.floor) this.floor = version;
      },
    });
    if (maxEntries > 0 && maxBytes > 0) {
      this.lru = new LRUCache<string, Entry>({
        max: maxEntries,
        maxSize: maxBytes,
        sizeCalculation: (e) => e.body.length * 2 + 200,
        dispose: (e, key) => {
          const keys = this.byUser.get(e.user);
          keys?.delete(key);
          if (keys && keys.size === 0) this.byUser.delete(e.user);
        },
      });
    }
  }

  /** The cached body for `key`, counting a hit or a miss. */
  get(key: string): string | undefined {
    const e = this.lru?.get(key);
    if (e === undefined) this.misses++;
    else this.hits++;
    return e?.body;
  }

  /** The user's write version; take it before reading the snapshot a cached answer will come from. */
  version(user: string): number {
    return this.versions.peek(user) ?? this.floor;
  }

  /** Stores an answer unless a write for the user arrived since `version` was taken. */
  put(key: string, range: { user: string; start: number; end: number }, body: string, version: number): void {
    if (!this.lru || this.version(range.user) !== version) return;
    this.lru.set(key, { ...range, body });
    let keys = this.byUser.get(range.user);
    if (!keys) this.byUser.set(range.user, keys = new Set());
    keys.add(key);
  }

  /**
   * Writes of `user` with timestamps in [minTs, maxTs] are about to be acknowledged: drop every
   * answer whose range intersects that span (for one reading, minTs = maxTs = its timestamp).
   */
  invalidate(user: string, minTs: number, maxTs: number = minTs): void {
    this.versions.set(user, ++this.clock);
    const keys = this.byUser.get(user);
    if (!keys || !this.lru) return;
    for (const key of [...keys]) {
      const e = this.lru.peek(key);
      if (e === undefined) keys.delete(key);
      else if (e.start <= maxTs && minTs < e.end) this.lru.delete(key);
    }
  }

  /** Users whose own write version is currently kept (at most `maxVersions`). */
  get versionEntries(): number {
    return this.versions.size;
  }

  /** Entries currently held. */
  get size(): number {
    return this.lru?.size ?? 0;
  }
}
