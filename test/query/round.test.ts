/**
 * Exact rounding: the mean of the stored micro-bpm values as a rational, rounded to hundredths,
 * ties to even; the SQL form inside Polars agrees with the BigInt form; micro-bpm conversion is
 * the nearest multiple of 0.000001 to the float's exact value, ties to even.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import pl from "nodejs-polars";
import { fromHundredths, hundredthsSql, meanHundredths } from "../../src/query/round.ts";
import { toMicroBpm } from "../../src/reading.ts";
import { checked } from "../../src/storage/run-sql.ts";

// [values in bpm, expected answer]
const CASES: Array<[number[], number]> = [
  [[75], 75],
  [[70, 71, 71], 70.67],
  [[30, 30, 31], 30.33],
  [[125.8, 125.81], 125.8], // 125.805 exactly: a tie, to even
  [[125.81, 125.82], 125.82], // 125.815: to even
  [[83.03, 83.04], 83.04], // 83.035: to even (the binary mean 83.03499... would give 83.03)
  [[70.125], 70.12], // stored exactly; a tie at 2 decimals: to even
  [[70.375], 70.38],
  [[80.123], 80.12],
  [[219.999], 220],
  [[75.1, 75.2, 75.3], 75.2], // the float sum is 225.60000000000002
  [[60.000001, 60.000002], 60], // 60.0000015: far from a tie at 2 decimals
];

describe("meanHundredths", () => {
  for (const [values, want] of CASES) {
    it(`the mean of ${values.join(", ")} is ${want}`, () => {
      const sum = values.reduce((s, v) => s + BigInt(toMicroBpm(v)), 0n);
      assert.equal(fromHundredths(Number(meanHundredths(sum, BigInt(values.length)))), want);
    });
  }

  it("does not depend on the order of the values (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 30_000_000, max: 220_000_000 }), { minLength: 1, maxLength: 50 }),
        (xs) => {
          const sum = xs.reduce((s, v) => s + BigInt(v), 0n);
          const rev = xs.slice().reverse().reduce((s, v) => s + BigInt(v), 0n);
          assert.equal(meanHundredths(sum, BigInt(xs.length)), meanHundredths(rev, BigInt(xs.length)));
        },
      ),
    );
  });

  it("is computed the same inside Polars (hundredthsSql) on int64 sums", async () => {
    const samples = fc.sample(
      fc.tuple(fc.bigInt({ min: 1n, max: 10n ** 6n }), fc.integer({ min: 30_000_000, max: 220_000_000 })),
      300,
    );
    // sums near ties too: n * (mean exactly at x.xx5)
    const rows = samples.map(([n, v], i) => {
      const sum = i % 3 === 0 ? n * (BigInt(v) - (BigInt(v) % 10_000n) + 5_000n) : n * BigInt(v) + BigInt(i);
      return { sm: sum, n };
    });
    const df = pl.DataFrame({ sm: rows.map((r) => r.sm), n: rows.map((r) => r.n) }).withColumns(
      pl.col("sm").cast(pl.Int64),
      pl.col("n").cast(pl.Int64),
    );
    const out = await checked(pl.SQLContext({ t: df.lazy() }).execute(`SELECT ${hundredthsSql("sm", "n")} AS h FROM t`))
      .collect();
    const got = out.getColumn("h").toArray().map((x) => BigInt(x as number | bigint));
    assert.deepEqual(got, rows.map((r) => meanHundredths(r.sm, r.n)));
  });
});

describe("toMicroBpm", () => {
  it("keeps every value with at most 6 decimals exactly", () => {
    fc.assert(
      fc.property(fc.integer({ min: 30_000_000, max: 220_000_000 }), (micro) => {
        assert.equal(toMicroBpm(Number(`${Math.floor(micro / 1e6)}.${String(micro % 1e6).padStart(6, "0")}`)), micro);
      }),
    );
  });
  it("rounds an exact tie to even and everything else to the nearest", () => {
    assert.equal(toMicroBpm(30.0078125), 30_007_812); // 30,007,812.5 exactly
    assert.equal(toMicroBpm(30.0234375), 30_023_438); // 30,023,437.5 exactly
    assert.equal(toMicroBpm(75.0000004999), 75_000_000);
    assert.equal(toMicroBpm(75.0000005001), 75_000_001);
    assert.equal(toMicroBpm(220), 220_000_000);
  });
});
