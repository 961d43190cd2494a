/**
 * The data directory's lock: `LOCK` holds the pid of the process using it, and on Linux its start
 * time. A second live process is refused; a lock left by a dead process (a crash) is taken over,
 * also when its pid has since been reused by an unrelated process (the start times differ).
 *
 * Exclusivity: `LOCK` is only ever created exclusively (link(2) of a synced temp file, which fails
 * when the name exists, like O_CREAT|O_EXCL, and never shows a LOCK without its content), so of two
 * processes starting together exactly one creates it; the other finds it and is refused. A stale lock is never
 * overwritten: it is renamed away to a name unique to this process, and removed only if the file
 * renamed is the very one (same inode) that was judged stale. A taker that moved a fresh lock
 * instead (another taker removed the stale one and created its own in between) puts it back with
 * link(2), which cannot overwrite, and is refused. Then the exclusive create is tried again.
 * On a file system without hard links the lock is created with O_CREAT|O_EXCL and then written; an
 * empty LOCK (a crash between the two) counts as stale there, which leaves a window of a few
 * microseconds in which a racing start could take it too.
 * A lock naming this very process (an engine of this process that was abandoned without `close`, as
 * the crash tests do) counts as stale.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** How many times a stale lock is cleared and the exclusive create retried before giving up. */
const ATTEMPTS = 5;

/**
 * Takes the lock of `dataDir`.
 *
 * @throws when a live process other than this one holds it.
 * @example
 * ```ts
 * await takeLock("./data");
 * ```
 */
export async function takeLock(dataDir: string): Promise<void> {
  const lock = path.join(dataDir, "LOCK");
  const me = startTime(process.pid);
  const content = me === undefined ? String(process.pid) : `${process.pid} ${me}`;
  // The content is written and synced under a temp name first, then linked to LOCK: link(2) fails
  // with EEXIST when LOCK exists (as O_EXCL does), and LOCK never exists without its content, so a
  // crash at any point leaves either no LOCK or a whole one (the temp file is removed at start-up).
  const tmp = path.join(dataDir, `.tmp-LOCK-${process.pid}`);
  const handle = await fs.promises.open(tmp, "w");
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      try {
        await fs.promises.link(tmp, lock);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "ENOSYS") {
          // A file system without hard links: O_EXCL create, then the content (a crash in between
          // leaves an empty LOCK, which counts as stale).
          if (await createExclusive(lock, content)) return;
        } else if (code !== "EEXIST") throw err;
      }
      await clearStaleLock(dataDir, lock);
    }
    throw new Error(`could not take the lock ${lock}: it keeps being re-created by other processes`);
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
}

/** Creates `lock` with O_CREAT|O_EXCL and writes `content`; false if it exists. */
async function createExclusive(lock: string, content: string): Promise<boolean> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(lock, "wx");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}

/**
 * Removes `lock` if the process it names is gone; throws if it is held by a live process. Returns
 * normally when the caller should retry the exclusive create (the lock was removed, or vanished).
 */
async function clearStaleLock(dataDir: string, lock: string): Promise<void> {
  let ino: number;
  let text: string;
  try {
    const handle = await fs.promises.open(lock, "r");
    try {
      ino = (await handle.stat()).ino;
      text = await handle.readFile("utf8");
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return; // released meanwhile: retry
    throw err;
  }
  const [pidText, started] = text.trim().split(" ");
  const pid = Number(pidText);
  const inUse = () => new Error(`data directory ${dataDir} is in use by process ${pid} (${lock}); stop it first`);
  // A start time we cannot read (no /proc, or a runtime that may not read it) proves nothing: then
  // only the pid decides, and a live pid keeps the lock.
  const now = pid ? startTime(pid) : undefined;
  if (pid && pid !== process.pid && isAlive(pid) && (started === undefined || now === undefined || now === started)) {
    throw inUse();
  }
  // Stale: move it away under a name only this process uses, then check that it was that file.
  const aside = `${lock}.stale-${process.pid}`;
  try {
    await fs.promises.rename(lock, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return; // another taker removed it first
    throw err;
  }
  if ((await fs.promises.stat(aside)).ino === ino) {
    await fs.promises.rm(aside, { force: true });
    return;
  }
  // We moved a fresh lock that another taker created after clearing the stale one: put it back.
  try {
    await fs.promises.link(aside, lock);
  } finally {
    await fs.promises.rm(aside, { force: true });
  }
  throw new Error(`data directory ${dataDir} is being taken by another process (${lock}); stop it first`);
}

/**
 * Releases the lock of `dataDir`.
 *
 * @example
 * ```ts
 * await releaseLock("./data");
 * ```
 */
export async function releaseLock(dataDir: string): Promise<void> {
  await fs.promises.rm(path.join(dataDir, "LOCK"), { force: true });
}

/** The start time of a process (Linux: field 22 of /proc/<pid>/stat), or undefined elsewhere. */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // the command name (field 2) is in parentheses and may hold spaces: count fields after it
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/**
 * Whether process `pid` exists (signal 0). Only ESRCH ("no such process") means gone: any other
 * failure, EPERM or a runtime that may not send signals (Deno without run permission), keeps the
 * lock, since taking a live process's directory would lose its acknowledged writes.
 */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}
