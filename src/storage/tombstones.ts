/**
 * Tombstones: the live set of deletions (right to erasure) that are not yet purged from disk.
 *
 * A tombstone `(user, optional device, optional [start, end), seq)` deletes every reading of that
 * user (and device; and range) whose sequence is below `seq`: the readings accepted before the
 * DELETE. A reading accepted after it has a higher sequence and is never matched.
 *
 * Life of a tombstone: written to the WAL (record type 2) and fsync'd; added here (queries mask
 * with it from then on); carried in every manifest written while it is live (so it survives the
 * deletion of its WAL segment); retired by the purge once no run, memtable or WAL segment can hold
 * a reading it matches (see purge.ts). Contract of this module: pure bookkeeping and the SQL
 * predicate shared by query masking and purge rewriting; no I/O.
 *
 * @module
 */
import { ID_PATTERN } from "../reading.ts";
import type { WalTombstone } from "./wal/record.ts";

/** A live tombstone: its WAL fields plus the WAL segment its record was written to. */
export interface Tombstone extends WalTombstone {
  /** The WAL segment holding the tombstone's record (every reading it can match is in this one or earlier). */
  segment: number;
}

/**
 * Does tombstone `t` delete the reading `(userId, deviceId, ts)` stored with sequence `seq`?
 *
 * @example
 * ```ts
 * matches({ seq: 10, requestedAt: 0, userId: "u", segment: 1 }, "u", "device_a", 5, 9); // true
 * matches({ seq: 10, requestedAt: 0, userId: "u", segment: 1 }, "u", "device_a", 5, 11); // false: accepted after
 * ```
 */
export function matches(t: Tombstone, userId: string, deviceId: string, ts: number, seq: number): boolean {
  return t.userId === userId && seq < t.seq && (t.deviceId === undefined || t.deviceId === deviceId) &&
    (t.start === undefined || (ts >= t.start && ts < (t.end as number)));
}

/**
 * Whether `t` can match any reading of `userId` (and `deviceId`, when given) in `[start, end)`,
 * whatever its sequence.
 *
 * @example
 * ```ts
 * touches({ seq: 3, requestedAt: 0, userId: "u", segment: 1, start: 0, end: 10 }, "u", undefined, 5, 20); // true
 * ```
 */
export function touches(
  t: Tombstone,
  userId: string,
  deviceId: string | undefined,
  start: number,
  end: number,
): boolean {
  if (t.userId !== userId) return false;
  if (deviceId !== undefined && t.deviceId !== undefined && t.deviceId !== deviceId) return false;
  return t.start === undefined || (t.start < end && (t.end as number) > start);
}

/** Column expressions a deletion predicate is written over (SQL text; ts in epoch ms). */
export interface RowColumns {
  /** The user column, or undefined when the rows are already those of the tombstones' user. */
  user?: string;
  device: string;
  ts: string;
  seq: string;
}

/**
 * The SQL predicate that is true for a row some tombstone of `list` deletes, or undefined when
 * `list` is empty. Ids are spliced only after checking them against ID_PATTERN; numbers must be
 * safe integers (else it throws: a tombstone that cannot be expressed must not be ignored).
 *
 * @example
 * ```ts
 * deletedRowSql([{ seq: 7, requestedAt: 0, userId: "u", segment: 1 }], { user: "user_id", device: "device_id", ts: "ts", seq: "seq" });
 * // "((user_id = 'u' AND seq < 7))"
 * ```
 */
export function deletedRowSql(list: readonly Tombstone[], cols: RowColumns): string | undefined {
  if (list.length === 0) return undefined;
  const terms = list.map((t) => {
    if (!ID_PATTERN.test(t.userId) || (t.deviceId !== undefined && !ID_PATTERN.test(t.deviceId))) {
      throw new Error(`tombstone ${t.seq} has an invalid id`);
    }
    const nums = [t.seq, ...(t.start === undefined ? [] : [t.start, t.end as number])];
    if (!nums.every(Number.isSafeInteger)) throw new Error(`tombstone ${t.seq} has a non-integer bound`);
    const parts: string[] = [];
    if (cols.user !== undefined) parts.push(`${cols.user} = '${t.userId}'`);
    parts.push(`${cols.seq} < ${t.seq}`);
    if (t.deviceId !== undefined) parts.push(`${cols.device} = '${t.deviceId}'`);
    if (t.start !== undefined) parts.push(`${cols.ts} >= ${t.start} AND ${cols.ts} < ${t.end}`);
    return `(${parts.join(" AND ")})`;
  });
  return `(${terms.join(" OR ")})`;
}

/**
 * The live tombstones, by sequence.
 *
 * @example
 * ```ts
 * const set = new TombstoneSet();
 * set.add({ seq: 12, requestedAt: Date.now(), userId: "u1", segment: 3 });
 * set.forUser("u1").length; // 1
 * set.touches("u1", undefined, 0, Date.now()); // true
 * set.retire([12]);
 * ```
 */
export class TombstoneSet {
  private readonly bySeq = new Map<number, Tombstone>();
  private readonly byUser = new Map<string, Tombstone[]>();

  constructor(initial: readonly Tombstone[] = []) {
    for (const t of initial) this.add(t);
  }

  /** Adds a tombstone (again adding one of the same sequence does nothing). */
  add(t: Tombstone): void {
    if (this.bySeq.has(t.seq)) return;
    this.bySeq.set(t.seq, t);
    const list = this.byUser.get(t.userId);
    if (list) list.push(t);
    else this.byUser.set(t.userId, [t]);
  }

  /** Every live tombstone, by ascending sequence. */
  all(): Tombstone[] {
    return [...this.bySeq.values()].sort((a, b) => a.seq - b.seq);
  }

  /** The live tombstones of one user (a copy). */
  forUser(userId: string): Tombstone[] {
    return this.byUser.get(userId)?.slice() ?? [];
  }

  /**
   * Whether a live tombstone can match a reading of `userId` (and `deviceId`) in `[start, end)`.
   * For answers that cannot be masked row by row (pre-aggregated data): send such ranges down the
   * raw path.
   */
  touches(userId: string, deviceId: string | undefined, start: number, end: number): boolean {
    return (this.byUser.get(userId) ?? []).some((t) => touches(t, userId, deviceId, start, end));
  }

  /** Removes the tombstones with these sequences (their purge is complete). */
  retire(seqs: Iterable<number>): void {
    for (const seq of seqs) {
      const t = this.bySeq.get(seq);
      if (!t) continue;
      this.bySeq.delete(seq);
      const list = this.byUser.get(t.userId)!.filter((x) => x.seq !== seq);
      if (list.length === 0) this.byUser.delete(t.userId);
      else this.byUser.set(t.userId, list);
    }
  }

  /** How many tombstones are live (= erasures pending a purge). */
  get size(): number {
    return this.bySeq.size;
  }

  /** The `requestedAt` of the oldest live tombstone, or undefined when none is live. */
  oldestRequestedAt(): number | undefined {
    let oldest: number | undefined;
    for (const t of this.bySeq.values()) if (oldest === undefined || t.requestedAt < oldest) oldest = t.requestedAt;
    return oldest;
  }

  /** The highest live sequence, or 0 (start-up must number new writes above it). */
  maxSeq(): number {
    let max = 0;
    for (const seq of this.bySeq.keys()) if (seq > max) max = seq;
    return max;
  }
}
