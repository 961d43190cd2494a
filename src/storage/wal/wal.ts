/**
 * The write-ahead log writer: every accepted batch of readings is appended here, and made durable,
 * before the ingest answer is sent. On start-up the log is replayed (with the repair rules of
 * replay.ts) to rebuild what was not yet flushed. The byte format lives in record.ts and
 * docs/format/wal.md; the file calls in wal-fs.ts.
 *
 * Durability: group commit. `append` encodes synchronously and queues; one flush cycle at a time
 * takes everything queued, writes it with one write per segment, fdatasyncs each touched file once
 * and then settles all of those appends. New segment files are created under a temporary name,
 * synced, renamed into place, and the directory is fsync'd, so a segment either exists with a whole
 * header or not at all.
 *
 * Only `node:fs`, `node:path` and web-standard APIs are used, so this runs on Node.js and Deno.
 *
 * @module
 */

import { dirname, join } from "node:path";
import type { Reading } from "../../reading.ts";
import {
  encodeRecord,
  encodeTombstoneRecord,
  hasMagic,
  HEADER_BYTES,
  MAGIC,
  parseSegment,
  parseSegmentName,
  segmentFileName,
  TEMP_RE,
  type WalTombstone,
} from "./record.ts";
import { replaySegment, type SegmentCut } from "./replay.ts";
import { errCode, nodeWalFs, syncDir, type WalFs, type WalLogger, writeFully } from "./wal-fs.ts";

export {
  encodeRecord,
  MAX_PAYLOAD_BYTES,
  RecordTooLargeError,
  segmentFileName,
  WAL_MAGIC,
  type WalTombstone,
} from "./record.ts";
export { nodeWalFs, type WalFs, type WalLogger } from "./wal-fs.ts";

const WRITE_CHUNK = 16 * 1024 * 1024; // concatenate at most this much into one write call

// ---------------------------------------------------------------------------------------------
// Public types

/**
 * The log has stopped taking appends because a background fdatasync ("interval" mode) failed. On
 * Linux a failed fdatasync may drop the dirty pages it could not write, and a retry can then
 * "succeed" without them: acknowledged records may be gone from the file, so the log cannot go on
 * (PostgreSQL's fail-stop rule). Recovery is a restart, which replays what the file really holds.
 * `code` is the errno code of the failed sync.
 */
export class WalFailStopError extends Error {
  readonly code: string | undefined;
  constructor(override readonly cause: unknown) {
    super(
      `wal: a background fdatasync failed (${errCode(cause) ?? String(cause)}); the log takes no more appends ` +
        `until pulsedb is restarted`,
    );
    this.name = "WalFailStopError";
    this.code = errCode(cause);
  }
}

/** "always": an append resolves after the fdatasync covering it; "interval": after write(2). */
export type SyncMode = "always" | "interval";

export interface WalOptions {
  /** The directory holding the segment files (normally `<dataDir>/wal`); created if missing. */
  dir: string;
  /** Default "always". */
  syncMode?: SyncMode;
  /** How often "interval" mode fdatasyncs, in ms. Default 100. */
  syncIntervalMs?: number;
  /** Default: warnings and errors as JSON lines on stderr. */
  logger?: WalLogger;
  /** Default `nodeWalFs`. */
  fs?: WalFs;
  /**
   * Start even if a segment is corrupt in the middle: cut it at the bad record (losing what follows
   * in that segment) instead of refusing to open. The engine maps PULSE_WAL_SALVAGE=1 to this.
   */
  salvage?: boolean;
  /** The lowest number a new segment may get (the engine passes one past what its manifest covers). */
  minSegment?: number;
  /**
   * Receives every intact record in log order during `open`, segment by segment (only one segment
   * is in memory at a time); `open` waits for the promise it returns. Without it, `open` collects
   * them all in `batches`.
   */
  onBatch?: (batch: ReplayedBatch) => void | Promise<void>;
  /** Called after each record fdatasync with its duration in ms and the records it covered (metrics). Must not throw. */
  onSync?: (ms: number, records: number) => void;
}

/**
 * One replayed record. Reading `i` has sequence number `firstSeq + i`. A tombstone record (a
 * DELETE) has no readings and `tombstone` set; `firstSeq` is then the tombstone's sequence.
 */
export interface ReplayedBatch {
  segment: number;
  firstSeq: number;
  readings: Reading[];
  tombstone?: WalTombstone;
}

/** What `Wal.open` found and did. */
export interface WalOpenResult {
  wal: Wal;
  /** Every intact record, in log order (empty when `onBatch` received them). */
  batches: ReplayedBatch[];
  /** The highest sequence number replayed; 0 if none. */
  maxSeq: number;
  /** Each cut made during recovery (torn tails, salvaged corruption, removed empty segments). */
  truncated: SegmentCut[];
}

const defaultLogger: WalLogger = (level, msg, fields) => {
  if (level !== "info") console.error(JSON.stringify({ level, msg, ...fields }));
};

// ---------------------------------------------------------------------------------------------
// The log

/** One segment file and its write state. */
interface Segment {
  readonly number: number;
  readonly path: string;
  fd: number; // -1 when not open
  created: boolean; // header written+synced and file renamed into place
  size: number; // end of the last record known good (written; and synced in "always" mode)
  unsynced: number; // records written but not yet fdatasync'ed ("interval" mode)
  queued: number; // appends queued for this segment and not yet settled
  retired: boolean; // no longer the current segment
  broken: boolean; // a failed write could not be truncated away yet
  deleted: boolean; // removed by deleteSegmentsThrough
  wantCreate: boolean; // create eagerly at the next cycle
}

interface PendingAppend {
  seg: Segment;
  bytes: Uint8Array;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * The write-ahead log. Obtain one with `Wal.open`.
 *
 * Invariants: records in a file are in `append()` call order; sequence numbers strictly increase
 * across the log; at most one flush cycle touches the files at a time.
 *
 * @example
 * ```ts
 * import { Memtable } from "../memtable.ts";
 *
 * const { wal, batches, maxSeq } = await Wal.open({ dir: "data/wal" });
 * const memtable = new Memtable(wal.currentSegment());
 * for (const b of batches) memtable.append(b.readings, b.firstSeq);
 * const readings = [{ userId: "u1", deviceId: "device_a", ts: Date.now(), heartRate: 72 }];
 * let seq = maxSeq;
 * await wal.append(seq + 1, readings); // durable once this resolves
 * seq += readings.length;
 * const closed = wal.rotate(); // before flushing the memtable
 * // ... flush memtable to a run ...
 * await wal.deleteSegmentsThrough(closed);
 * await wal.close();
 * ```
 */
export class Wal {
  private readonly fs: WalFs;
  private readonly dir: string;
  private readonly mode: SyncMode;
  private readonly log: WalLogger;
  private readonly segments: Segment[] = []; // open or still-referenced segments, ascending
  private current: Segment;
  private lastSeq: number;
  private pending: PendingAppend[] = [];
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private enqueued = 0;
  private settled = 0;
  private waiters: Array<{ target: number; resolve: () => void }> = [];
  private syncRequested = false;
  private housekeeping = false;
  private closed = false;
  private closing: Promise<void> | null = null;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly counters = { syncs: 0, syncedRecords: 0, lastSyncMs: 0 };
  private readonly onSync: ((ms: number, records: number) => void) | undefined;
  /** Set when a background fdatasync failed: every later append is refused (fail-stop). */
  private failed: WalFailStopError | undefined;

  private constructor(opts: WalOptions, fs: WalFs, log: WalLogger, segment: number, lastSeq: number) {
    this.fs = fs;
    this.dir = opts.dir;
    this.mode = opts.syncMode ?? "always";
    this.onSync = opts.onSync;
    this.log = log;
    this.lastSeq = lastSeq;
    this.current = this.newSegment(segment);
  }

  /**
   * Open (creating if missing) the log in `opts.dir`, replay it, and start a new segment.
   *
   * Pre: no other process has the directory open.
   * Post: `batches` holds every intact record in log order; torn tails of the last segment are cut
   * (and listed in `truncated`); leftover temp files are removed; a new segment numbered
   * last+1 exists on disk (durably) and takes all appends. Rejects, naming the file and offset, on
   * corruption that has acknowledged data after it, unless `opts.salvage`.
   *
   * @example
   * ```ts
   * const { wal, batches, maxSeq, truncated } = await Wal.open({ dir: "data/wal", salvage: process.env.PULSE_WAL_SALVAGE === "1" });
   * ```
   */
  static async open(opts: WalOptions): Promise<WalOpenResult> {
    const fs = opts.fs ?? nodeWalFs;
    const log = opts.logger ?? defaultLogger;
    const mode = opts.syncMode ?? "always";
    const intervalMs = opts.syncIntervalMs ?? 100;
    if (mode !== "always" && mode !== "interval") throw new RangeError(`wal: unknown syncMode ${String(mode)}`);
    if (!(intervalMs > 0)) throw new RangeError(`wal: syncIntervalMs must be > 0, got ${intervalMs}`);

    await fs.mkdir(opts.dir);
    await syncDir(fs, dirname(opts.dir)); // in case we just created it
    const names = await fs.readdir(opts.dir);
    for (const name of names.filter((n) => TEMP_RE.test(n))) {
      await fs.unlink(join(opts.dir, name)); // a segment whose creation never finished: holds no records
      log("info", "wal: removed unfinished segment file", { file: join(opts.dir, name) });
    }
    const numbers = names.map(parseSegmentName).filter((n): n is number => n !== null).sort((a, b) => a - b);

    const batches: ReplayedBatch[] = [];
    const truncated: WalOpenResult["truncated"] = [];
    let maxSeq = 0;
    // A bad tail is a torn (never acknowledged) write when no later segment holds an intact record:
    // a rotation can create segment N+1 before N's last queued record is written and synced, so a
    // crash there leaves N torn with only an empty N+1 after it.
    // Segments are read and replayed one at a time, so memory holds one segment, not the log. Whether
    // a later segment holds an intact record is only needed for a segment with a bad record (rare):
    // the later files are then read once more, one at a time.
    const files = numbers.map((n) => join(opts.dir, segmentFileName(n)));
    const recordsAfter = async (k: number): Promise<boolean> => {
      for (let j = k + 1; j < files.length; j++) {
        const b = await fs.readFile(files[j]);
        if (hasMagic(b) && parseSegment(b).records.length > 0) return true;
      }
      return false;
    };
    for (let k = 0; k < numbers.length; k++) {
      const number = numbers[k];
      const file = files[k];
      const content = await fs.readFile(file);
      const parsed = hasMagic(content) ? parseSegment(content) : undefined;
      const nothingAfter = parsed?.bad === undefined ? true : !(await recordsAfter(k));
      const res = await replaySegment(
        fs,
        file,
        content,
        parsed,
        k === numbers.length - 1,
        nothingAfter,
        opts.salvage === true,
        log,
      );
      if (res.cut) truncated.push(res.cut);
      for (const r of res.records) {
        if (r.firstSeq <= maxSeq) {
          log("warn", "wal: sequence numbers not increasing", { file, offset: r.offset, firstSeq: r.firstSeq, maxSeq });
        }
        maxSeq = Math.max(maxSeq, r.firstSeq + Math.max(r.readings.length, 1) - 1);
        const batch: ReplayedBatch = r.tombstone
          ? { segment: number, firstSeq: r.firstSeq, readings: r.readings, tombstone: r.tombstone }
          : { segment: number, firstSeq: r.firstSeq, readings: r.readings };
        if (opts.onBatch) await opts.onBatch(batch);
        else batches.push(batch);
      }
    }

    const wal = new Wal(opts, fs, log, Math.max((numbers.at(-1) ?? 0) + 1, opts.minSegment ?? 1), maxSeq);
    try {
      await wal.createSegment(wal.current);
    } catch (err) {
      await wal.abandonCreate(wal.current);
      throw err;
    }
    if (mode === "interval") {
      wal.timer = setInterval(() => {
        if (wal.segments.some((s) => s.unsynced > 0)) {
          wal.syncRequested = true;
          wal.kick();
        }
      }, intervalMs);
      (wal.timer as { unref?: () => void }).unref?.();
    }
    return { wal, batches, maxSeq, truncated };
  }

  /**
   * Queue `readings` (sequence numbers `firstSeq ..= firstSeq + n - 1`) for the current segment.
   *
   * Pre: the log is open; `firstSeq` > every sequence number appended or replayed before; see
   * `encodeRecord` for the size limits. Violations throw synchronously and nothing is queued.
   * Post: the promise resolves once the record is fdatasync'ed ("always") or written ("interval");
   * it rejects with the fs error (its `code` kept) if that write or sync failed, in which case the
   * record is not in the log.
   *
   * @example
   * ```ts
   * const { wal } = await Wal.open({ dir: "data/wal" });
   * await wal.append(42, [{ userId: "u1", deviceId: "device_a", ts: Date.now(), heartRate: 72 }]);
   * ```
   */
  append(firstSeq: number, readings: readonly Reading[]): Promise<void> {
    if (this.closed) throw new Error("wal: append after close");
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (!(firstSeq > this.lastSeq)) {
      throw new RangeError(`wal: sequence number ${firstSeq} not above the last one (${this.lastSeq})`);
    }
    const bytes = encodeRecord(firstSeq, readings);
    this.lastSeq = firstSeq + readings.length - 1;
    return this.enqueue(bytes);
  }

  /**
   * Queue a tombstone record (a DELETE) for the current segment; it shares the group commit with
   * reading appends and settles the same way.
   *
   * Pre: the log is open; `t.seq` > every sequence number appended or replayed before.
   * Post: `synced` resolves once the record is durable (see `append`), with the number of the
   * segment that holds it (the one current at the call, or a later one after a write error).
   *
   * @example
   * ```ts
   * const { wal, maxSeq } = await Wal.open({ dir: "data/wal" });
   * const segment = await wal.appendTombstone({ seq: maxSeq + 1, requestedAt: Date.now(), userId: "u1" });
   * ```
   */
  appendTombstone(t: WalTombstone): Promise<number> {
    if (this.closed) throw new Error("wal: append after close");
    if (!(t.seq > this.lastSeq)) {
      throw new RangeError(`wal: sequence number ${t.seq} not above the last one (${this.lastSeq})`);
    }
    const bytes = encodeTombstoneRecord(t);
    this.lastSeq = t.seq;
    let entry: PendingAppend | undefined;
    const synced = this.enqueue(bytes, (e) => (entry = e));
    return synced.then(() => entry!.seg.number);
  }

  /** Queue an encoded record for the current segment (group commit). */
  private enqueue(bytes: Uint8Array, onQueued?: (entry: PendingAppend) => void): Promise<void> {
    const seg = this.current;
    seg.queued++;
    this.enqueued++;
    return new Promise<void>((resolve, reject) => {
      const entry = { seg, bytes, resolve, reject };
      this.pending.push(entry);
      onQueued?.(entry);
      this.kick();
    });
  }

  /**
   * The fail-stop error once a background fdatasync has failed ("interval" mode), else undefined.
   * From then on every append rejects with it; restart to recover.
   *
   * @example
   * ```ts
   * const { wal } = await Wal.open({ dir: "data/wal", syncMode: "interval" });
   * if (wal.failure() !== undefined) console.error("restart pulsedb:", wal.failure()!.message);
   * ```
   */
  failure(): WalFailStopError | undefined {
    return this.failed;
  }

  /**
   * Switch appends to a new segment (number = current + 1), synchronously.
   *
   * Post: returns the number of the segment that was current; records already queued for it are
   * still written and synced to it, then its file is closed. The new file is created in the
   * background (and at the latest with its first record).
   *
   * @example
   * ```ts
   * const { wal } = await Wal.open({ dir: "data/wal" });
   * const closed = wal.rotate(); // all data up to here is in segments <= closed
   * ```
   */
  rotate(): number {
    if (this.closed) throw new Error("wal: rotate after close");
    const old = this.current;
    old.retired = true;
    this.current = this.newSegment(old.number + 1);
    this.current.wantCreate = true;
    this.housekeeping = true;
    this.kick();
    return old.number;
  }

  /**
   * The number of the segment appends currently go to.
   *
   * @example
   * ```ts
   * const { wal } = await Wal.open({ dir: "data/wal" });
   * wal.currentSegment(); // 7
   * ```
   */
  currentSegment(): number {
    return this.current.number;
  }

  /**
   * Delete every segment file numbered <= `segment` (never the current one), then fsync the
   * directory.
   *
   * Pre: the caller no longer needs those records (they are flushed elsewhere).
   * Post: every append made before the call has settled; the files are gone, durably.
   *
   * @example
   * ```ts
   * const { wal } = await Wal.open({ dir: "data/wal" });
   * const closed = wal.rotate();
   * // ... write what segments <= closed hold to runs, record them in the manifest ...
   * await wal.deleteSegmentsThrough(closed);
   * ```
   */
  async deleteSegmentsThrough(segment: number): Promise<void> {
    const limit = Math.min(segment, this.current.number - 1);
    if (!(limit >= 1)) return;
    await this.whenSettled();
    for (const s of this.segments) if (s.number <= limit) s.deleted = true;
    this.housekeeping = true; // let the flush loop close their fds
    this.kick();
    let removed = 0;
    for (const name of await this.fs.readdir(this.dir)) {
      const n = parseSegmentName(name);
      if (n === null || n > limit) continue;
      try {
        await this.fs.unlink(join(this.dir, name));
        removed++;
      } catch (err) {
        if (errCode(err) !== "ENOENT") throw err;
      }
    }
    if (removed > 0) await syncDir(this.fs, this.dir);
  }

  /**
   * Write and sync everything queued, then close all files. Idempotent.
   *
   * Post: no further append/rotate is allowed. Rejects if a final sync ("interval" mode) fails.
   *
   * @example
   * ```ts
   * const { wal } = await Wal.open({ dir: "data/wal" });
   * await wal.close();
   * ```
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    clearInterval(this.timer);
    this.closing = (async () => {
      await this.whenSettled();
      while (this.running) await this.loopDone;
      await this.repairBroken();
      let firstErr: unknown;
      for (const seg of this.segments) {
        if (seg.fd < 0) continue;
        if (seg.unsynced > 0 && !seg.deleted) {
          try {
            await this.timedSync(seg, seg.unsynced);
          } catch (err) {
            firstErr ??= err;
          }
        }
        await this.fs.close(seg.fd).catch(() => {});
        seg.fd = -1;
      }
      this.segments.length = 0;
      if (firstErr !== undefined) throw firstErr;
    })();
    return this.closing;
  }

  /**
   * Counters for metrics and back-pressure: `syncs` = record fdatasyncs done, `syncedRecords` =
   * records those covered, `lastSyncMs` = duration of the latest one, `pendingRecords` = appends
   * not yet settled.
   *
   * @example
   * ```ts
   * const { wal } = await Wal.open({ dir: "data/wal" });
   * const overloaded = wal.stats().pendingRecords > 50_000; // then answer 503 + Retry-After
   * ```
   */
  stats(): { syncs: number; syncedRecords: number; lastSyncMs: number; pendingRecords: number } {
    return { ...this.counters, pendingRecords: this.enqueued - this.settled };
  }

  // -------------------------------------------------------------------------------------------
  // Flush loop

  private newSegment(number: number): Segment {
    const seg: Segment = {
      number,
      path: join(this.dir, segmentFileName(number)),
      fd: -1,
      created: false,
      size: 0,
      unsynced: 0,
      queued: 0,
      retired: false,
      broken: false,
      deleted: false,
      wantCreate: false,
    };
    this.segments.push(seg);
    return seg;
  }

  /** Start the flush loop unless it runs; deferred a microtask so a synchronous burst shares it. */
  private kick(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = Promise.resolve().then(() => this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (this.pending.length > 0 || this.syncRequested || this.housekeeping) await this.cycle();
    } catch (err) {
      // cycle() handles fs errors itself; this is a bug. Fail what is queued rather than hang it.
      this.log("error", "wal: flush loop failed", { error: String(err) });
      const stranded = this.pending;
      this.pending = [];
      for (const p of stranded) p.reject(err);
      this.settle(stranded, 0, stranded.length);
    } finally {
      this.running = false;
    }
  }

  /** One group-commit cycle: everything queued right now shares its writes and syncs. */
  private async cycle(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const syncDue = this.syncRequested;
    this.syncRequested = false;
    this.housekeeping = false;

    if (this.failed !== undefined) {
      // Fail-stop: nothing queued is written (its callers get the error, nothing is acknowledged).
      for (const p of batch) p.reject(this.failed);
      this.settle(batch, 0, batch.length);
      batch.length = 0;
    }
    await this.repairBroken();
    const cur = this.current;
    if (cur.wantCreate && !cur.created) {
      cur.wantCreate = false;
      try {
        await this.createSegment(cur);
      } catch (err) {
        this.log("warn", "wal: could not create segment yet", {
          file: cur.path,
          error: String(err),
          code: errCode(err),
        });
        await this.abandonCreate(cur);
      }
    }
    // Records are in append order, so each segment's records are contiguous.
    for (let i = 0; i < batch.length;) {
      let j = i + 1;
      while (j < batch.length && batch[j].seg === batch[i].seg) j++;
      await this.writeGroup(batch[i].seg, batch, i, j);
      i = j;
    }
    for (const seg of this.segments) {
      if (seg.unsynced > 0 && !seg.deleted && (syncDue || seg.retired)) {
        try {
          await this.timedSync(seg, seg.unsynced);
          seg.unsynced = 0;
        } catch (err) {
          this.failed ??= new WalFailStopError(err);
          this.log(
            "error",
            "wal: background fdatasync failed; acknowledged records may be lost from the log. Writes are refused " +
              "from now on: restart pulsedb (a clean shutdown flushes memory to runs; start-up replays the log)",
            { file: seg.path, error: String(err), code: errCode(err) },
          );
        }
      }
    }
    await this.closeRetired();
  }

  /** Write (and in "always" mode sync) `batch[i, j)`, all for `seg`; settle their promises. */
  private async writeGroup(seg: Segment, batch: PendingAppend[], i: number, j: number): Promise<void> {
    try {
      if (!seg.created) await this.createSegment(seg);
      let pos = seg.size;
      for (let k = i; k < j;) {
        let m = k;
        let total = 0;
        while (m < j && (m === k || total + batch[m].bytes.length <= WRITE_CHUNK)) total += batch[m++].bytes.length;
        let buf = batch[k].bytes;
        if (m - k > 1) {
          buf = new Uint8Array(total);
          for (let q = k, o = 0; q < m; o += batch[q].bytes.length, q++) buf.set(batch[q].bytes, o);
        }
        await writeFully(this.fs, seg.fd, buf, pos);
        pos += total;
        k = m;
      }
      if (this.mode === "always") await this.timedSync(seg, j - i);
      else seg.unsynced += j - i;
      seg.size = pos;
      for (let k = i; k < j; k++) batch[k].resolve();
      this.settle(batch, i, j);
    } catch (err) {
      this.log("error", "wal: append failed", {
        file: seg.path,
        records: j - i,
        error: String(err),
        code: errCode(err),
      });
      await this.recover(seg); // never throws; done first so callers see the log in its post-error state
      for (let k = i; k < j; k++) batch[k].reject(err);
      this.settle(batch, i, j);
    }
  }

  /**
   * After a failed write/sync: cut the file back to the last good offset so no garbage sits
   * before later records. If even that fails, mark it broken (repaired at later cycles) and move
   * appends to a fresh segment.
   */
  private async recover(seg: Segment): Promise<void> {
    if (!seg.created) return this.abandonCreate(seg);
    try {
      await this.fs.ftruncate(seg.fd, seg.size);
      await this.fs.fdatasync(seg.fd);
    } catch (err) {
      seg.broken = true;
      this.log("error", "wal: could not truncate after a failed write; switching segment", {
        file: seg.path,
        offset: seg.size,
        error: String(err),
        code: errCode(err),
      });
      if (seg === this.current) {
        seg.retired = true;
        this.current = this.newSegment(seg.number + 1);
        this.current.wantCreate = true;
        for (const p of this.pending) {
          if (p.seg === seg) {
            p.seg = this.current;
            seg.queued--;
            this.current.queued++;
          }
        }
      }
    }
  }

  /** Retry the truncation of broken segments; they must not end in garbage at the next start. */
  private async repairBroken(): Promise<void> {
    for (const seg of this.segments) {
      if (!seg.broken || seg.deleted || seg.fd < 0) continue;
      try {
        await this.fs.ftruncate(seg.fd, seg.size);
        await this.fs.fdatasync(seg.fd);
        seg.broken = false;
        this.log("info", "wal: repaired segment after earlier write failure", { file: seg.path, offset: seg.size });
      } catch {
        // still failing; try again next cycle
      }
    }
  }

  /** Create `seg` durably: temp file, header, fdatasync, rename, directory fsync. */
  private async createSegment(seg: Segment): Promise<void> {
    const tmp = seg.path + ".tmp";
    seg.fd = await this.fs.open(tmp, "w");
    await writeFully(this.fs, seg.fd, MAGIC, 0);
    await this.fs.fdatasync(seg.fd);
    await this.fs.rename(tmp, seg.path);
    await syncDir(this.fs, this.dir);
    seg.created = true;
    seg.size = HEADER_BYTES;
  }

  /** Undo a failed createSegment so that it can be retried from scratch (nothing is in the file). */
  private async abandonCreate(seg: Segment): Promise<void> {
    if (seg.fd >= 0) await this.fs.close(seg.fd).catch(() => {});
    seg.fd = -1;
    await this.fs.unlink(seg.path + ".tmp").catch(() => {});
    await this.fs.unlink(seg.path).catch(() => {});
  }

  /** Close the files of retired segments that have nothing left to write, sync or repair. */
  private async closeRetired(): Promise<void> {
    for (let k = 0; k < this.segments.length; k++) {
      const seg = this.segments[k];
      if (seg === this.current || seg.queued > 0) continue;
      if (!seg.deleted && !(seg.retired && seg.unsynced === 0 && !seg.broken)) continue;
      if (seg.fd >= 0) await this.fs.close(seg.fd).catch(() => {});
      seg.fd = -1;
      this.segments.splice(k--, 1);
    }
  }

  private async timedSync(seg: Segment, records: number): Promise<void> {
    const t0 = performance.now();
    await this.fs.fdatasync(seg.fd);
    const ms = performance.now() - t0;
    this.counters.lastSyncMs = ms;
    this.counters.syncs++;
    this.counters.syncedRecords += records;
    this.onSync?.(ms, records);
  }

  /** Account for `batch[i, j)` having been resolved or rejected; wake `whenSettled` waiters. */
  private settle(batch: PendingAppend[], i: number, j: number): void {
    for (let k = i; k < j; k++) batch[k].seg.queued--;
    this.settled += j - i;
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) w.target <= this.settled ? w.resolve() : still.push(w);
    this.waiters = still;
  }

  /** Resolves when every append made before this call has settled (resolved or rejected). */
  private whenSettled(): Promise<void> {
    const target = this.enqueued;
    if (this.settled >= target) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ target, resolve }));
  }
}
