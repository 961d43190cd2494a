/**
 * Rounding of answers to 2 decimals, defined exactly: the answer is the exact mean of the stored
 * values (an integer sum of micro-bpm over a count, a rational number), rounded to the nearest
 * 0.01, and on an exact tie to the even hundredth. No float is involved, so the rounding never
 * depends on how the sum was formed.
 *
 * The query computes the same rule inside Polars (`hundredthsSql`, integer division and remainder
 * on int64), so that a rounded mean is an integer number of hundredths before any float exists.
 *
 * @module
 */
import { MICRO_PER_BPM } from "../reading.ts";

/** Micro-bpm per hundredth of a bpm. */
const MICRO_PER_HUNDREDTH = MICRO_PER_BPM / 100;

/**
 * The mean of `count` values summing to `sumMicro` micro-bpm, in hundredths of a bpm, rounded half
 * to even on the exact rational. Pre: sumMicro >= 0, count > 0.
 *
 * @example
 * ```ts
 * meanHundredths(212_000_000n, 3n);   // 7067n (70.666...: 70.67)
 * meanHundredths(140_250_000n, 2n);   // 7012n (70.125 exactly: a tie, to even)
 * meanHundredths(251_610_000n, 2n);   // 12580n (125.805 exactly: a tie, to even: 125.8)
 * ```
 */
export function meanHundredths(sumMicro: bigint, count: bigint): bigint {
  const den = count * BigInt(MICRO_PER_HUNDREDTH);
  const q = sumMicro / den;
  const r2 = (sumMicro % den) * 2n;
  return r2 > den || (r2 === den && q % 2n === 1n) ? q + 1n : q;
}

/**
 * The same rule as Polars SQL over int64 columns `sum` and `n`: an int64 number of hundredths.
 *
 * @example
 * ```ts
 * const expr = hundredthsSql("sm", "n"); // use as `SELECT ${expr} AS hq FROM g`
 * ```
 */
export function hundredthsSql(sum: string, n: string): string {
  const den = `(${n} * ${MICRO_PER_HUNDREDTH})`;
  const q = `(${sum} // ${den})`;
  const r2 = `((${sum} % ${den}) * 2)`;
  return `(${q} + CASE WHEN ${r2} > ${den} OR (${r2} = ${den} AND ${q} % 2 = 1) THEN 1 ELSE 0 END)`;
}

/**
 * A number of hundredths as the answer's number (what `JSON.stringify` prints: 75, 75.5, 75.25).
 * `h / 100` is the float nearest the decimal, whose shortest form is the decimal itself.
 *
 * @example
 * ```ts
 * fromHundredths(7525); // 75.25
 * ```
 */
export function fromHundredths(h: number): number {
  return h / 100;
}
