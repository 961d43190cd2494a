/**
 * The data directory's lock: `LOCK` holds the pid of the process using it. A second live process
 * is refused; a lock left by a dead process (a crash) is taken over.
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
    const pid = Number((await fs.promises.readFile(lock, "utf8")).trim());
    if (pid && pid !== process.pid && isAlive(pid)) {
      throw new Error(`data directory ${dataDir} is in use by process ${pid} (${lock}); stop it first`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await fs.promises.writeFile(lock, String(process.pid));
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
