/**
 * The domain type every layer shares: one heart-rate reading, already validated.
 *
 * A reading's identity is `(userId, deviceId, ts)`. Two readings with the same identity are the
 * same reading; the one with the higher sequence number (the later accepted write) wins.
 *
 * @module
 */

/** One validated reading. `ts` is milliseconds since the Unix epoch, UTC, an integer. */
export interface Reading {
  userId: string;
  deviceId: string;
  ts: number;
  heartRate: number;
}

/** The smallest accepted heart rate, inclusive. */
export const MIN_HEART_RATE = 30;
/** The largest accepted heart rate, inclusive. */
export const MAX_HEART_RATE = 220;
/** The most readings one batch may hold. */
export const MAX_BATCH = 10_000;
/** The pattern every user_id and device_id must match: 1-128 of `A-Z a-z 0-9 _ . : @ -`. */
export const ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;
/** 1970-01-01T00:00:00.000Z */
export const MIN_TS = 0;
/** 9999-12-31T23:59:59.999Z */
export const MAX_TS = 253402300799999;
/** Milliseconds in a UTC day: runs, rollups and retention are partitioned by UTC day. */
export const DAY_MS = 86_400_000;
