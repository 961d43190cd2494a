/**
 * The data directory's lock: `LOCK` holds the pid of the process using it, and on Linux its start
 * time. A second live process is refused; a lock left by a dead process (a crash) is taken over,
 * also when its pid has since been reused by an unrelated process (the start times differ).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";

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
  try {
    const [pidText, started] = (await fs.promises.readFile(lock, "utf8")).trim().split(" ");
    const pid = Number(pidText);
    if (
      pid && pid !== process.pid && isAlive(pid) &&
      (started === undefined || startTime(pid) === undefined || startTime(pid) === started)
    ) {
      throw new Error(`data directory ${dataDir} is in use by process ${pid} (${lock}); stop it first`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const me = startTime(process.pid);
  await fs.promises.writeFile(lock, me === undefined ? String(process.pid) : `${process.pid} ${me}`);
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
