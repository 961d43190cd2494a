/**
 * Rounding of answers to 2 decimals, defined exactly: the decimal nearest to the float64 mean
 * (its exact binary value, not its printed form), and on an exact tie the even one. This is what
 * Python's `round(x, 2)` does; `x.toFixed(2)` agrees except on exact ties (it rounds those up).
 *
 * @module
 */

/**
 * Rounds to 2 decimals: nearest to the exact binary value, ties to even.
 *
 * @example
 * ```ts
 * round2(70 + 2 / 3); // 70.67
 * round2(125.805);    // 125.81 (125.805 is stored as 125.80500000000000682...)
 * round2(83.035);     // 83.03  (stored as 83.03499999999999658...)
 * round2(70.125);     // 70.12  (an exact tie: to even)
 * ```
 */
export function round2(x: number): number {
  const eighths = x * 8;
  // An exact tie at 2 decimals is a multiple of 1/8 that is not a multiple of 1/4 (.125, .375, ...):
  // x * 100 is then exactly representable and ends in .5.
  if (Number.isInteger(eighths) && eighths % 2 !== 0) {
    const hundredths = x * 100;
    const low = Math.floor(hundredths);
    return (low % 2 === 0 ? low : low + 1) / 100;
  }
  return Number(x.toFixed(2));
}
