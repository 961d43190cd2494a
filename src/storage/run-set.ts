/**
 * The run set: the runs a database currently serves, and the queries reading each. The job LevelDB
 * gives its `VersionSet`: a query takes a snapshot of the runs that overlap its range and releases
 * it when done; a run replaced by compaction leaves the set at once (later snapshots never see it)
 * and its file is deleted when the last snapshot holding it is released.
 *
 * Pre: `add` and `retire` are called only after the manifest that names (or drops) the runs is
 * durable. Post of `retire`: the retired runs are in no later snapshot; their files are gone once
 * no snapshot holds them (a crash before that leaves orphans, which start-up removes).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Logger } from "../ops/logger.ts";
import { type RunMeta, verifyRun } from "./run.ts";
import { rollupChecksumOk } from "./rollup.ts";

/** A run of the set, with the snapshots currently reading it. */
export interface RunHandle {
  readonly meta: RunMeta;
  /** The file's absolute path. */
  readonly path: string;
  readers: number;
  /** Replaced by compaction: delete the file once no snapshot reads it. */
  obsolete: boolean;
  /**
   * The whole-file checksum check: undefined until first asked for, then the check's promise
   * (settled for good). Runs written by this process start checked.
   */
  checked: Promise<void> | undefined;
  /** False once the run's rollup failed its checksum: the run's day is then read raw. */
  rollupOk: boolean;
}

/**
 * The live runs and their readers.
 *
 * @example
 * ```ts
 * import { silentLogger } from "../ops/logger.ts";
 * const set = new RunSet("/tmp/pulse", silentLogger);
 * const snapshot = set.acquire(0, Date.UTC(2024, 0, 16));
 * try {
 *   // read snapshot.map((h) => h.path)
 * } finally {
 *   set.release(snapshot);
 * }
 * ```
 */
export class RunSet {
  private readonly runs = new Map<number, RunHandle>();

  constructor(private readonly dataDir: string, private readonly log: Logger) {}

  /**
   * Adds runs that a durable manifest names. `checked`: their checksums are known good (written by
   * this process); otherwise `verify` checks each on first use.
   */
  add(metas: readonly RunMeta[], checked = true): void {
    for (const meta of metas) {
      this.runs.set(meta.id, {
        meta,
        path: path.join(this.dataDir, meta.file),
        readers: 0,
        obsolete: false,
        checked: checked ? Promise.resolve() : undefined,
        rollupOk: true,
      });
    }
  }

  /**
   * Resolves when every run of `handles` has passed its whole-file check (size and CRC-32C), each
   * file read at most once per process; rejects with the first RunCorruptError.
   */
  async verify(handles: readonly RunHandle[]): Promise<void> {
    for (const h of handles) {
      if (h.checked === undefined) {
        h.checked = this.check(h);
        h.checked.catch(() => {});
      }
    }
    for (const h of handles) await h.checked;
  }

  /** The run's checksum (throws RunCorruptError), then its rollup's (a bad one is only dropped). */
  private async check(h: RunHandle): Promise<void> {
    await verifyRun(this.dataDir, h.meta);
    const rollup = h.meta.rollup;
    if (rollup !== undefined && !(await rollupChecksumOk(this.dataDir, rollup))) {
      h.rollupOk = false;
      this.log.warn("run rollup damaged; the run is read row by row", { file: rollup.file });
    }
  }

  /** The live runs with these ids (for checks before a compaction reads them). */
  handles(ids: Iterable<number>): RunHandle[] {
    const out: RunHandle[] = [];
    for (const id of ids) {
      const h = this.runs.get(id);
      if (h) out.push(h);
    }
    return out;
  }

  /** The runs whose time span meets `[start, end)`, held until `release`. */
  acquire(start: number, end: number): RunHandle[] {
    const out: RunHandle[] = [];
    for (const h of this.runs.values()) {
      if (!h.obsolete && h.meta.minTs < end && h.meta.maxTs >= start) {
        h.readers++;
        out.push(h);
      }
    }
    return out;
  }

  /** Releases a snapshot from `acquire`; deletes the files of retired runs it was the last to hold. */
  release(snapshot: readonly RunHandle[]): void {
    for (const h of snapshot) {
      h.readers--;
      if (h.obsolete && h.readers === 0) void this.deleteFile(h);
    }
  }

  /**
   * Removes runs from the set in one synchronous step (no later snapshot sees them); returns them
   * for `deleteUnread`.
   */
  retire(ids: Iterable<number>): RunHandle[] {
    const retired: RunHandle[] = [];
    for (const id of ids) {
      const h = this.runs.get(id);
      if (!h) continue;
      h.obsolete = true;
      this.runs.delete(id);
      retired.push(h);
    }
    return retired;
  }

  /** Deletes the files of retired runs that no snapshot holds (the others go on their last release). */
  async deleteUnread(retired: readonly RunHandle[]): Promise<void> {
    for (const h of retired) if (h.readers === 0) await this.deleteFile(h);
  }

  private async deleteFile(h: RunHandle): Promise<void> {
    try {
      await fs.promises.rm(h.path, { force: true });
      if (h.meta.rollup) await fs.promises.rm(path.join(this.dataDir, h.meta.rollup.file), { force: true });
    } catch (err) {
      this.log.warn("could not delete obsolete run (start-up will remove it)", { file: h.meta.file, err });
    }
  }
}
