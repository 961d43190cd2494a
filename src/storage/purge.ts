/**
 * The physical purge of erasures: makes every live file under the data directory free of the
 * readings that live tombstones delete, then retires those tombstones.
 *
 * Contract (per tombstone t, within PULSE_ERASURE_DEADLINE of its DELETE):
 *  1. WAL: every reading t can match has a lower sequence, so it was logged in t's segment or an
 *     earlier one. Once the manifest covers t's segment (`walSegment >= t.segment`), those readings
 *     are all in runs and the segments (with t's own record) have been deleted by the flush. If no
 *     flush got there by itself, the purge forces a WAL rotation and a flush (`flushThrough`).
 *  2. Runs: with no other run rewrite running (`exclusive`), every run that holds a matching row is
 *     rewritten through the shared run-writing path (compactor.ts `rewriteRuns`) without those rows;
 *     other users' rows are copied as they are. A run left empty is dropped. Each rewrite is
 *     published by the manifest swap (old file unlinked once no query reads it).
 *  3. The tombstone is retired by a manifest edit (no longer named, `flushedSeq` raised to its
 *     sequence) and one log line says what was erased, when it was requested and when it was done.
 * A crash anywhere leaves the tombstone in the manifest (or the WAL): the next start masks with it
 * again and the purge redoes what is left (rewriting a run without rows that are already gone finds
 * nothing to do). Quarantined files (corruption recovery) are never served and are not rewritten:
 * the log line lists them so an operator can remove them (docs/operating.md).
 *
 * When: a pass starts once the oldest pending erasure is `purgeDelayMs` old (default: a quarter of
 * the deadline, at most an hour), and then purges every tombstone pending at that moment together,
 * so a burst of DELETEs costs one rewrite of each affected run.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import pl from "nodejs-polars";
import type { Logger } from "../ops/logger.ts";
import { crashPoint } from "./crash-point.ts";
import { type CompactionHost, rewriteRuns } from "./compactor.ts";
import { checked } from "./run-sql.ts";
import type { RunMeta } from "./run.ts";
import { deletedRowSql, type Tombstone, type TombstoneSet } from "./tombstones.ts";

/** What the purge needs from the engine. */
export interface PurgeHost extends CompactionHost {
  readonly tombstones: TombstoneSet;
  readonly log: Logger;
  now(): number;
  /** The highest WAL segment the manifest covers (its segments and everything before are in runs). */
  coveredSegment(): number;
  /** Rotates the WAL if needed and flushes until the manifest covers `segment`. */
  flushThrough(segment: number): Promise<void>;
  /** Runs `fn` while no other run rewrite (compaction, retention) runs. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** Removes tombstones from the live set and from the manifest (durably). */
  retireTombstones(seqs: readonly number[]): Promise<void>;
}

/** What one purge pass did. */
export interface PurgeReport {
  tombstones: number;
  runsRewritten: number;
  runsDropped: number;
  rowsRemoved: number;
  bytesWritten: number;
}

/** The columns of run rows, for the deletion predicate. */
const RUN_COLUMNS = { user: "user_id", device: "device_id", ts: "CAST(timestamp AS BIGINT)", seq: "seq" };

/**
 * Could `run` hold a row `t` deletes? (From its metadata: time span, sequence range, devices.)
 *
 * @example
 * ```ts
 * declare const host: PurgeHost; // the engine
 * const tombstone = { seq: 43, requestedAt: Date.now(), userId: "u1", segment: 3 };
 * const candidates = host.liveRuns().filter((r) => mayHold(r, tombstone));
 * ```
 */
export function mayHold(run: RunMeta, t: Tombstone): boolean {
  if (run.rows === 0 || run.minSeq >= t.seq) return false;
  if (t.deviceId !== undefined && run.devices !== undefined && !run.devices.includes(t.deviceId)) return false;
  if (t.start === undefined) return true;
  return run.minTs < (t.end as number) && run.maxTs >= t.start;
}

/**
 * The purge scheduler and executor. `maybeRun()` is called periodically (and after DELETEs);
 * `run()` purges every pending tombstone now (tests, benchmarks, shutdown of a deadline).
 *
 * @example
 * ```ts
 * declare const host: PurgeHost; // the engine
 * const purger = new Purger(host, { deadlineMs: 86_400_000 });
 * await purger.maybeRun(); // no-op until the oldest erasure is old enough
 * await purger.run(); // purge everything pending now
 * ```
 */
export class Purger {
  /** Bytes written by purge rewrites since start (write amplification). */
  bytesWritten = 0;
  private readonly delayMs: number;

  constructor(private readonly host: PurgeHost, opts: { deadlineMs: number; delayMs?: number }) {
    this.delayMs = opts.delayMs ?? Math.min(opts.deadlineMs / 4, 3_600_000);
  }

  /** Purges when the oldest pending erasure is at least `delayMs` old; else does nothing. */
  async maybeRun(): Promise<PurgeReport | undefined> {
    const oldest = this.host.tombstones.oldestRequestedAt();
    if (oldest === undefined || this.host.now() - oldest < this.delayMs) return undefined;
    return await this.run();
  }

  /** Purges every tombstone live at the call: WAL first, then runs, then retires them. */
  async run(): Promise<PurgeReport> {
    const host = this.host;
    const pending = host.tombstones.all();
    const report: PurgeReport = { tombstones: 0, runsRewritten: 0, runsDropped: 0, rowsRemoved: 0, bytesWritten: 0 };
    if (pending.length === 0) return report;
    const started = host.now();
    // 1. Every reading the tombstones can match is in runs; their WAL segments are gone.
    await host.flushThrough(Math.max(...pending.map((t) => t.segment)));
    // 2. Rewrite the runs holding matches.
    await host.exclusive(async () => {
      for (const run of host.liveRuns()) {
        const relevant = pending.filter((t) => mayHold(run, t));
        if (relevant.length === 0) continue;
        // A damaged run is never rewritten (that would give it a fresh checksum): refused like compaction.
        await host.verifyRuns?.([run]);
        // The IN conjunct lets Parquet statistics prune row groups (runs are sorted by user).
        const users = [...new Set(relevant.map((t) => `'${t.userId}'`))].join(", ");
        const runDrop = `(user_id IN (${users}) AND ${deletedRowSql(relevant, RUN_COLUMNS)})`;
        const matched = await countRows(path.join(host.config.dataDir, run.file), runDrop);
        if (matched === 0) continue;
        if (matched >= run.rows) {
          await host.replaceRuns([run], []);
          report.runsDropped++;
        } else {
          const out = await rewriteRuns(host, run.day, [run], run.level, runDrop);
          await host.replaceRuns([run], [out]);
          report.runsRewritten++;
          report.bytesWritten += out.bytes;
        }
        report.rowsRemoved += matched;
        crashPoint("purge-after-manifest");
      }
    });
    this.bytesWritten += report.bytesWritten;
    host.bytesCompacted += report.bytesWritten;
    crashPoint("purge-before-retire");
    // 3. Retire, and say so.
    await host.retireTombstones(pending.map((t) => t.seq));
    report.tombstones = pending.length;
    const quarantined = await quarantinedFiles(host.config.dataDir);
    const doneAt = new Date(host.now()).toISOString();
    for (const t of pending) {
      host.log.info("erasure purged", {
        userId: t.userId,
        deviceId: t.deviceId ?? "*",
        start: t.start === undefined ? "*" : new Date(t.start).toISOString(),
        end: t.end === undefined ? "*" : new Date(t.end).toISOString(),
        requestedAt: new Date(t.requestedAt).toISOString(),
        doneAt,
        ...(quarantined.length > 0 ? { quarantinedNotPurged: quarantined } : {}),
      });
    }
    host.log.info("purge", { ...report, ms: host.now() - started });
    return report;
  }
}

/** Rows of a run file the predicate is true for (row groups pruned on their statistics). */
async function countRows(file: string, predicate: string): Promise<number> {
  const lf = pl.SQLContext({ r: pl.scanParquet(file) }).execute(`SELECT COUNT(*) AS n FROM r WHERE ${predicate}`);
  const df = await checked(lf).collect();
  return Number(df.getColumn("n").get(0));
}

/** Files under `<dataDir>/quarantine/` (runs set aside by corruption recovery), relative paths. */
async function quarantinedFiles(dataDir: string): Promise<string[]> {
  try {
    return (await fs.promises.readdir(path.join(dataDir, "quarantine"))).map((f) => `quarantine/${f}`);
  } catch {
    return [];
  }
}
