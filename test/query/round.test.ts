/**
 * round2: the decimal nearest to the exact binary value, ties to even (Python's round(x, 2)).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { round2 } from "../../src/query/round.ts";

// [input, expected]: expected values are Python's round(x, 2) for the same float64
const CASES: Array<[number, number]> = [
  [75, 75],
  [70 + 2 / 3, 70.67],
  [(30 + 30 + 31) / 3, 30.33],
  [125.805, 125.81], // stored as 125.80500000000000682
  [218.985, 218.99], // stored as 218.98500000000001364
  [54.405, 54.41], // stored as 54.40500000000000114
  [(54.3 + 54.51) / 2, 54.41],
  [83.035, 83.03], // stored as 83.03499999999999659
  [100.005, 100], // stored as 100.00499999999999545
  [70.125, 70.12], // exact tie: to even
  [70.375, 70.38], // exact tie: to even
  [30.625, 30.62],
  [219.875, 219.88],
  [80.123, 80.12],
  [219.999, 220],
  [30, 30],
];

describe("round2", () => {
  for (const [x, want] of CASES) {
    it(`round2 rounds ${x} to ${want}`, () => assert.equal(round2(x), want));
  }
});
