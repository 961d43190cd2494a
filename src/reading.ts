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

// Fixed-point heart rates: pulsedb stores every heart rate as an integer number of micro-bpm
// (millionths of a beat per minute), so that sums are exact integers and a mean never depends on
// the order in which values were added. The accepted number is read as a float64 (as every JSON
// parser and Arrow float column gives it), and its exact binary value is rounded to the nearest
// multiple of 0.000001, ties to even; any input with at most 6 decimals is kept as written
// (75.1 -> 75,100,000). 30..220 bpm is 30,000,000..220,000,000 micro-bpm: an int32, and the sum of
// any number of readings a query can meet fits an int64.

/** Micro-bpm per bpm. */
export const MICRO_PER_BPM = 1_000_000;

const F64 = new Float64Array(1);
const U64 = new BigUint64Array(F64.buffer);

/**
 * The micro-bpm integer of a heart rate: the exact binary value of `bpm` times 10^6, rounded to the
 * nearest integer, ties to even. Pre: `bpm` is finite and non-negative (validated 30..220).
 *
 * @example
 * ```ts
 * toMicroBpm(75.1);       // 75100000
 * toMicroBpm(72);         // 72000000
 * toMicroBpm(30.0078125); // 30007812 (exactly 30,007,812.5: a tie, to even)
 * ```
 */
export function toMicroBpm(bpm: number): number {
  const scaled = bpm * MICRO_PER_BPM;
  const near = Math.round(scaled);
  // The float product is within ~3e-8 of the exact one for bpm <= 220 (and 2^-30 relative in
  // general): unless it lies near a half, the nearest integer is certain.
  const frac = scaled - Math.floor(scaled);
  if (Math.abs(frac - 0.5) > 1e-6) return near;
  return exactMicro(bpm);
}

/** The exact rule, in BigInt arithmetic on the float's mantissa and exponent. */
function exactMicro(bpm: number): number {
  if (bpm === 0) return 0;
  F64[0] = bpm;
  const bits = U64[0];
  const exp = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & 0xfffffffffffffn;
  let e2: number; // bpm = mant * 2^e2
  if (exp === 0) e2 = -1074;
  else {
    mant |= 1n << 52n;
    e2 = exp - 1075;
  }
  const num = mant * BigInt(MICRO_PER_BPM);
  if (e2 >= 0) return Number(num << BigInt(e2));
  const den = 1n << BigInt(-e2);
  const q = num / den;
  const r2 = (num % den) * 2n;
  const up = r2 > den || (r2 === den && q % 2n === 1n);
  return Number(up ? q + 1n : q);
}
