/**
 * The memtable: readings in memory, column by column, from the WAL segment that is (or was) current.
 *
 * Columns live in growable typed arrays (ids dictionary-encoded), which is exactly Arrow's memory
 * layout: turning rows into an Arrow table is zero-copy, and Arrow IPC hands them to Polars.
 * Duplicates are kept (each row carries its sequence number); they are resolved at flush and query.
 *
 * Contract: a memtable takes new writes until `seal()`. Rows arrive after their WAL fsync, so a
 * write begun before the seal may still land after it: `begin()` / `end()` bracket each write, and
 * `drained()` resolves when none is in flight; only then is a sealed memtable complete and flushed.
 * Frames already handed out never change. One memtable belongs to exactly one WAL segment (`id`), so
 * once the memtable's runs are in the manifest, that segment can be deleted.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import pl from "nodejs-polars";
import { Buffer } from "node:buffer";
import type { Reading } from "../reading.ts";
import { DAY_MS, toMicroBpm } from "../reading.ts";

/** Rows per Polars frame converted in the background (see `frameTail`). */
export const FRAME_CHUNK_ROWS = 32_768;
/** At most this many stored frames per memtable: more are merged into one in the background. */
export const MAX_FRAMES = 8;

class StringDictionary {
  readonly values: string[] = [];
  private readonly index = new Map<string, number>();
  bytes = 0;
  find(value: string): number | undefined {
    return this.index.get(value);
  }
  code(value: string): number {
    let code = this.index.get(value);
    if (code === undefined) {
      code = this.values.length;
      this.values.push(value);
      this.index.set(value, code);
      this.bytes += value.length * 2 + 64;
    }
    return code;
  }
}

/**
 * An append-only columnar buffer of readings.
 *
 * @example
 * ```ts
 * const m = new Memtable(1);
 * m.append([{ userId: "u", deviceId: "device_a", ts: Date.UTC(2024, 0, 15), heartRate: 70 }], 1);
 * m.rows; // 1
 * ```
 */
export class Memtable {
  /** The WAL segment whose records this memtable holds. */
  readonly id: number;
  readonly createdAt: number;
  rows = 0;
  minTs = Infinity;
  maxTs = -Infinity;
  maxSeq = 0;
  /** The UTC days (ms / 86,400,000) the rows fall on: the flush writes one run per day. */
  readonly days = new Set<number>();
  private sealed = false;
  private flushed = false;
  /** Writes begun (WAL append queued) but not yet appended here or abandoned. */
  private inFlight = 0;
  private inFlightRows = 0;
  private waiters: Array<() => void> = [];
  private readonly users = new StringDictionary();
  private readonly devices = new StringDictionary();
  private userCodes = new Int32Array(1024);
  private deviceCodes = new Int32Array(1024);
  private ts = new Float64Array(1024);
  /** Heart rates in micro-bpm (toMicroBpm in reading.ts): 30..220 bpm fits an int32. */
  private hr = new Int32Array(1024);
  private seq = new Float64Array(1024);
  /** Polars frames covering rows [0, framedRows), built in the background (`frameTail`). */
  private chunks: pl.DataFrame[] = [];
  private framedRows = 0;
  private merging = false;
  /** Per user code: per device code, the newest timestamp appended. */
  private readonly lastTs: Array<Map<number, number>> = [];
  /** Per user code: the smallest and largest timestamp appended. */
  private readonly userMin: number[] = [];
  private readonly userMax: number[] = [];
  /**
   * Per user code: whether a reading arrived at or before the newest one of its (user, device), so
   * that an identity may repeat here (a duplicate, a correction or late data). Conservative: an
   * out-of-order reading sets it even when its identity is new.
   */
  private readonly userMayRepeat: boolean[] = [];
  /**
   * Per user code, per device code: minute start (ms) -> [count, micro-bpm sum] of the readings
   * appended, kept while the user's readings arrive in order (then each is counted once). Dropped
   * for a user as soon as an identity may repeat (queries then read the rows).
   */
  private readonly minutes: Array<Map<number, Map<number, [number, number]>> | undefined> = [];
  private minuteCells = 0;

  constructor(id: number, now: number = Date.now()) {
    this.id = id;
    this.lastSegment = id;
    this.createdAt = now;
  }

  /** A write of `rows` readings has been queued in this memtable's WAL segment. Pre: not sealed. */
  begin(rows: number): void {
    if (this.sealed) throw new Error(`memtable ${this.id} is sealed`);
    this.inFlight++;
    this.inFlightRows += rows;
  }

  /** The write begun with `begin(rows)` has been appended (after its fsync) or abandoned. */
  end(rows: number): void {
    this.inFlight--;
    this.inFlightRows -= rows;
    if (this.inFlight === 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves when no write begun here is still in flight. */
  drained(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Rows stored plus rows of writes in flight (for the size threshold). */
  get committedAndPendingRows(): number {
    return this.rows + this.inFlightRows;
  }

  /**
   * Appends readings; reading i gets sequence `firstSeq + i`.
   * Pre: not yet flushed (a sealed memtable still takes the writes begun before the seal);
   * readings already validated.
   */
  append(readings: readonly Reading[], firstSeq: number): void {
    if (this.flushed) throw new Error(`memtable ${this.id} is already flushed`);
    const n = readings.length;
    this.reserve(this.rows + n);
    let row = this.rows;
    let lastDay = NaN;
    for (let i = 0; i < n; i++, row++) {
      const r = readings[i];
      const t = r.ts;
      const u = this.users.code(r.userId);
      const d = this.devices.code(r.deviceId);
      this.userCodes[row] = u;
      this.deviceCodes[row] = d;
      let last = this.lastTs[u];
      if (last === undefined) {
        last = this.lastTs[u] = new Map();
        this.userMin[u] = t;
        this.userMax[u] = t;
        this.userMayRepeat[u] = false;
      } else {
        if (t < this.userMin[u]) this.userMin[u] = t;
        if (t > this.userMax[u]) this.userMax[u] = t;
      }
      const newest = last.get(d);
      if (newest === undefined || t > newest) last.set(d, t);
      else if (!this.userMayRepeat[u]) {
        this.userMayRepeat[u] = true;
        this.minutes[u] = undefined;
      }
      const micro = toMicroBpm(r.heartRate);
      if (!this.userMayRepeat[u]) this.addToMinute(u, d, t, micro);
      this.ts[row] = t;
      this.hr[row] = micro;
      this.seq[row] = firstSeq + i;
      if (t < this.minTs) this.minTs = t;
      if (t > this.maxTs) this.maxTs = t;
      const day = Math.floor(t / DAY_MS);
      if (day !== lastDay) {
        this.days.add(day);
        lastDay = day;
      }
    }
    this.rows = row;
    if (n > 0 && firstSeq + n - 1 > this.maxSeq) this.maxSeq = firstSeq + n - 1;
  }

  /**
   * What this memtable holds of one user: the span `[minTs, maxTs]` of its readings and whether an
   * identity may repeat among them; undefined when it holds none.
   *
   * @example
   * ```ts
   * const memtable = new Memtable(1);
   * memtable.append([{ userId: "u", deviceId: "device_a", ts: Date.UTC(2024, 0, 15), heartRate: 70 }], 1);
   * memtable.userSpan("u")?.mayRepeat; // false while every (u, device) arrived in time order
   * ```
   */
  userSpan(userId: string): { minTs: number; maxTs: number; mayRepeat: boolean } | undefined {
    const u = this.users.find(userId);
    if (u === undefined) return undefined;
    return { minTs: this.userMin[u], maxTs: this.userMax[u], mayRepeat: this.userMayRepeat[u] };
  }

  /**
   * One user's per-minute aggregates (count and micro-bpm sum per device and minute) of the whole
   * minutes in `[lo, hi)` (both multiples of a minute), as a frame in rollup schema (user_id,
   * device_id, minute_ms, readings, micro_sum); undefined when the user's identities may repeat
   * here (then only the rows answer). Every reading is in exactly one minute.
   *
   * @example
   * ```ts
   * const memtable = new Memtable(1);
   * const day = Date.UTC(2024, 0, 15);
   * memtable.append([{ userId: "u", deviceId: "device_a", ts: day + 1_000, heartRate: 70 }], 1);
   * const frame = memtable.minuteFrame("u", day, day + 86_400_000); // 1 row: 1 reading, 70,000,000
   * ```
   */
  minuteFrame(userId: string, lo: number, hi: number): pl.DataFrame | undefined {
    const u = this.users.find(userId);
    if (u === undefined || this.userMayRepeat[u]) return undefined;
    const devices: string[] = [];
    const mins: number[] = [];
    const counts: number[] = [];
    const sums: number[] = [];
    for (const [d, perMinute] of this.minutes[u] ?? []) {
      const name = this.devices.values[d];
      for (const [minute, [n, sum]] of perMinute) {
        if (minute < lo || minute >= hi) continue;
        devices.push(name);
        mins.push(minute);
        counts.push(n);
        sums.push(sum);
      }
    }
    return pl.DataFrame({
      user_id: pl.Series("user_id", new Array<string>(devices.length).fill(userId), pl.Utf8),
      device_id: pl.Series("device_id", devices, pl.Utf8),
      minute_ms: pl.Series("minute_ms", mins, pl.Int64),
      readings: pl.Series("readings", counts, pl.Int64),
      micro_sum: pl.Series("micro_sum", sums, pl.Int64),
    });
  }

  private addToMinute(u: number, d: number, t: number, micro: number): void {
    let perDevice = this.minutes[u];
    if (perDevice === undefined) perDevice = this.minutes[u] = new Map();
    let perMinute = perDevice.get(d);
    if (perMinute === undefined) perDevice.set(d, perMinute = new Map());
    const minute = t - (t % 60_000);
    const cell = perMinute.get(minute);
    if (cell === undefined) {
      perMinute.set(minute, [1, micro]);
      this.minuteCells++;
    } else {
      cell[0]++;
      cell[1] += micro; // at most 60,000 readings of <= 2.2e8: far below 2^53
    }
  }

  /** The distinct device_ids appended so far (not sorted; the array is copied). */
  deviceIds(): string[] {
    return this.devices.values.slice();
  }

  /**
   * The newest WAL segment holding records of this memtable (set at seal). Usually `id`; higher
   * when the WAL had to move to a fresh segment after a write error while this memtable was active.
   */
  lastSegment: number;

  /** Makes the memtable immutable; `lastSegment` is the newest WAL segment that holds its records. */
  seal(lastSegment: number = this.id): void {
    this.sealed = true;
    this.lastSegment = Math.max(this.id, lastSegment);
  }

  /** An estimate of the memory this memtable holds, in bytes. */
  approxBytes(): number {
    return this.ts.length * 28 + this.users.bytes + this.devices.bytes + this.framedRows * 44 + this.minuteCells * 120;
  }

  /**
   * The rows [from, to) as an Arrow table with columns user_id, device_id (dictionary-encoded
   * strings), ts (float64 ms), heart_rate (int32 micro-bpm), seq (float64).
   */
  toArrow(from = 0, to = this.rows): arrow.Table {
    const n = to - from;
    const dict = (codes: Int32Array, values: string[]) =>
      arrow.makeVector(arrow.makeData({
        type: new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32()),
        length: n,
        nullCount: 0,
        data: codes.subarray(from, to),
        dictionary: arrow.vectorFromArray(values, new arrow.Utf8()),
      }));
    return new arrow.Table({
      user_id: dict(this.userCodes, this.users.values),
      device_id: dict(this.deviceCodes, this.devices.values),
      ts: arrow.makeVector(this.ts.subarray(from, to)),
      heart_rate: arrow.makeVector(this.hr.subarray(from, to)),
      seq: arrow.makeVector(this.seq.subarray(from, to)),
    });
  }

  /**
   * Polars frames (raw memtable schema, see toArrow) covering every row appended so far.
   * Only rows added since the last call are converted; frames already handed out never change.
   */
  frames(): pl.DataFrame[] {
    // The tail not yet converted is converted for this caller only (at most FRAME_CHUNK_ROWS rows,
    // normally): stored frames are added in the background alone, so queries never fragment them.
    if (this.framedRows >= this.rows || this.flushed) return this.chunks.slice();
    return [...this.chunks, arrowToPolars(this.toArrow(this.framedRows, this.rows))];
  }

  /** Stored Polars frames (bounded by MAX_FRAMES, plus the few added while a merge runs). */
  get frameCount(): number {
    return this.chunks.length;
  }

  /** Rows appended but not yet converted to a Polars frame. */
  get unframedRows(): number {
    return this.rows - this.framedRows;
  }

  /**
   * Converts the rows appended since the last conversion into one more frame. The engine calls it
   * every FRAME_CHUNK_ROWS rows, off the request path, so that a query or a flush only ever has a
   * small tail to convert (conversion is synchronous: ~1.5 ms per 32,768 rows).
   */
  frameTail(): void {
    if (this.framedRows >= this.rows || this.flushed) return;
    this.chunks.push(arrowToPolars(this.toArrow(this.framedRows, this.rows)));
    this.framedRows = this.rows;
    if (this.chunks.length > MAX_FRAMES && !this.merging) void this.mergeFrames();
  }

  /** Merges the stored frames into one, off the event loop (lazy concat + collect). */
  private async mergeFrames(): Promise<void> {
    this.merging = true;
    try {
      while (!this.flushed && this.chunks.length > MAX_FRAMES) {
        const taken = this.chunks.slice();
        const merged = await pl.concat(taken.map((f) => f.lazy()), { how: "vertical" }).collect();
        // Frames appended meanwhile stay after the merged one; a released memtable keeps nothing.
        if (this.flushed || this.chunks[0] !== taken[0]) break;
        this.chunks = [merged, ...this.chunks.slice(taken.length)];
      }
    } catch {
      // Keep the frames as they are: merging only saves planning work.
    } finally {
      this.merging = false;
    }
  }

  /** Drops cached frames (after the memtable has been flushed and is no longer queried). */
  release(): void {
    this.flushed = true;
    this.chunks = [];
    this.framedRows = 0;
  }

  private reserve(need: number): void {
    if (need <= this.ts.length) return;
    let cap = this.ts.length;
    while (cap < need) cap *= 2;
    const grow = <T extends Int32Array | Float64Array>(old: T, make: (n: number) => T): T => {
      const next = make(cap);
      next.set(old.subarray(0, this.rows) as never);
      return next;
    };
    this.userCodes = grow(this.userCodes, (c) => new Int32Array(c));
    this.deviceCodes = grow(this.deviceCodes, (c) => new Int32Array(c));
    this.ts = grow(this.ts, (c) => new Float64Array(c));
    this.hr = grow(this.hr, (c) => new Int32Array(c));
    this.seq = grow(this.seq, (c) => new Float64Array(c));
  }
}

/**
 * Hands an Arrow table to Polars through an IPC stream (one copy, no per-row work).
 *
 * @example
 * ```ts
 * const memtable = new Memtable(1);
 * memtable.append([{ userId: "u1", deviceId: "device_a", ts: Date.UTC(2024, 0, 15, 10), heartRate: 72 }], 1);
 * const df = arrowToPolars(memtable.toArrow()); // 1 row
 * ```
 */
export function arrowToPolars(table: arrow.Table): pl.DataFrame {
  const bytes = arrow.tableToIPC(table, "stream");
  return pl.readIPCStream(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}
