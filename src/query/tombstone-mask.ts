/**
 * Query-time masking of deletions: until a deletion is purged from disk, every query hides the
 * readings its tombstone matches. A raw row (memtable or run) is hidden iff some live tombstone
 * matches its user, device and timestamp and has a higher sequence than the row (the row was
 * accepted before the DELETE). Masking happens before de-duplication; since a tombstone that hides
 * a row also hides every older copy of the same identity, the answer is that of a history that
 * never held the deleted readings.
 *
 * Pre-aggregated data (rollups) cannot be masked row by row: a planner must send the days that
 * `tombstonesTouch` reports down the raw path.
 *
 * @module
 */
import { deletedRowSql, type Tombstone, touches } from "../storage/tombstones.ts";

/** The part of a query the mask depends on. */
export interface MaskScope {
  userId: string;
  deviceId?: string;
  start: number;
  end: number;
}

/**
 * The SQL predicate a query's raw rows must satisfy to be kept (`NOT (deleted)`), over the columns
 * `device_id`, `ts` (epoch ms) and `seq` of rows already restricted to the query's user; undefined
 * when no tombstone of `tombstones` can touch the query.
 *
 * @example
 * ```ts
 * keepRowSql([{ seq: 9, requestedAt: 0, userId: "u", segment: 1 }], { userId: "u", start: 0, end: 100 });
 * // "NOT ((seq < 9))"
 * ```
 */
export function keepRowSql(tombstones: readonly Tombstone[], scope: MaskScope): string | undefined {
  const relevant = tombstones.filter((t) => touches(t, scope.userId, scope.deviceId, scope.start, scope.end));
  const deleted = deletedRowSql(relevant, { device: "device_id", ts: "ts", seq: "seq" });
  return deleted === undefined ? undefined : `NOT ${deleted}`;
}

/**
 * Whether any tombstone in `tombstones` can match a reading of `userId` (and `deviceId`) in
 * `[start, end)`. A planner answering from rollups uses it to send those days down the raw path.
 *
 * @example
 * ```ts
 * const tombstones = [{ seq: 9, requestedAt: 0, userId: "u1", segment: 1 }];
 * const day = Date.UTC(2024, 0, 15);
 * tombstonesTouch(tombstones, "u1", undefined, day, day + 86_400_000); // true: read that day raw
 * ```
 */
export function tombstonesTouch(
  tombstones: readonly Tombstone[],
  userId: string,
  deviceId: string | undefined,
  start: number,
  end: number,
): boolean {
  return tombstones.some((t) => touches(t, userId, deviceId, start, end));
}
