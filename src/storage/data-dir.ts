/**
 * The data directory check made before anything else at start-up: the directory exists (it is
 * created, durably, if missing) and this process can create and remove files in it. A path that is
 * a regular file, lies under one, or cannot be written is refused with a one-line reason, so the
 * daemon can name the setting instead of failing later on `LOCK` with a stack trace.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ensureDir } from "./fsutil.ts";

/** The data directory cannot be used; the message is one line and says why. */
export class DataDirError extends Error {
  constructor(readonly dir: string, reason: string) {
    super(reason);
    this.name = "DataDirError";
  }
}

/**
 * Makes sure `dir` is a directory this process can write, creating it if missing.
 *
 * @throws DataDirError with a one-line reason.
 * @example
 * ```ts
 * await checkDataDir("./data");
 * ```
 */
export async function checkDataDir(dir: string): Promise<void> {
  let stat: fs.Stats | undefined;
  try {
    stat = await fs.promises.stat(dir);
  } catch (err) {
    if (code(err) === "ENOTDIR") throw new DataDirError(dir, "is not a directory (a part of the path is a file)");
    if (code(err) !== "ENOENT") throw new DataDirError(dir, `cannot be read (${describe(err)})`);
  }
  if (stat !== undefined && !stat.isDirectory()) {
    throw new DataDirError(dir, "is not a directory (a file of that name exists)");
  }
  if (stat === undefined) {
    try {
      await ensureDir(dir);
    } catch (err) {
      throw new DataDirError(dir, `cannot be created (${describe(err)})`);
    }
  }
  const probe = path.join(dir, `.tmp-probe-${process.pid}`);
  try {
    const handle = await fs.promises.open(probe, "w");
    await handle.close();
    await fs.promises.rm(probe, { force: true });
  } catch (err) {
    throw new DataDirError(dir, `is not writable (${describe(err)})`);
  }
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** One line: the errno code when there is one, else the first line of the message. */
function describe(err: unknown): string {
  const c = code(err);
  const msg = String((err as Error)?.message ?? err).split("\n")[0];
  return c !== undefined && !msg.startsWith(c) ? `${c}: ${msg}` : msg;
}
