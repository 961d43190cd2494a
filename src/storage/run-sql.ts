/**
 * The SQL shared by everything that reads or writes run rows through Polars' SQLContext: the
 * de-duplicating run-rows statement (flush and compaction) and `checked`, which turns an error a
 * plan carries into a throw.
 *
 * @module
 */
import type pl from "nodejs-polars";

/**
 * The SQL that turns rows in run schema (`user_id, device_id, timestamp, heart_rate, seq`, from the
 * query `rows`) into the rows of a run: per identity the highest sequence only (copies of one write,
 * which share it, collapse to one), sorted by user, timestamp, device. Flush and compaction share it.
 *
 * @example
 * ```ts
 * const sql = runRowsSql("SELECT user_id, device_id, timestamp, heart_rate, seq FROM r0 UNION ALL SELECT ... FROM r1");
 * ```
 */
export function runRowsSql(rows: string): string {
  return `SELECT DISTINCT user_id, device_id, timestamp, heart_rate, seq FROM (` +
    `SELECT user_id, device_id, timestamp, heart_rate, seq, MAX(seq) OVER (PARTITION BY user_id, device_id, timestamp) AS mx FROM (${rows})) ` +
    `WHERE seq = mx ORDER BY user_id, timestamp, device_id`;
}

/**
 * Throws the error a Polars SQL plan carries (SQLContext returns errors instead of throwing).
 *
 * @example
 * ```ts
 * import pl from "nodejs-polars";
 *
 * const ctx = pl.SQLContext({ t: pl.DataFrame({ a: [1, 2] }).lazy() });
 * const lf = checked(ctx.execute("SELECT a FROM t")); // throws here if the SQL is wrong
 * ```
 */
export function checked(lf: pl.LazyDataFrame): pl.LazyDataFrame {
  const inner = (lf as unknown as { _ldf: unknown })._ldf;
  if (inner instanceof Error) throw inner;
  return lf;
}
