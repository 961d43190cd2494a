/**
 * Small durable-file helpers shared by the manifest, runs and the WAL.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * fsyncs a directory so that a create, rename or unlink inside it is durable.
 * Platforms that cannot open a directory for fsync are tolerated (the call is then a no-op).
 *
 * @example
 * ```ts
 * await fsyncDir("./data/runs");
 * ```
 */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(dir, "r");
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // NotCapable: Deno without read permission on `dir` (the launcher grants only the data
    // directory, so the parent of a data directory it creates cannot be opened).
    if ((err as Error).name === "NotCapable") return;
    if (code !== "EISDIR" && code !== "EINVAL" && code !== "EPERM" && code !== "EBADF") throw err;
  } finally {
    await handle?.close();
  }
}

/**
 * `writeFileAtomic` failed after the rename: the new content is in place but may not be durable
 * (its directory fsync failed), so a crash may leave the old content or the new one.
 */
export class MaybeWrittenError extends Error {
  constructor(readonly file: string, override readonly cause: unknown) {
    super(`${file} was replaced but the directory fsync failed: ${(cause as Error)?.message ?? cause}`);
    this.name = "MaybeWrittenError";
  }
}

/**
 * Writes `bytes` to `file` atomically: temp file, fsync, rename over, fsync the directory.
 * After it resolves, a crash leaves either the old or the new content, never a mix. When it
 * rejects, `file` still holds the old content (the temp file is removed), except after a
 * `MaybeWrittenError`, when it may hold either.
 *
 * @param beforeRename called between the temp file's fsync and the rename (crash-test hook).
 * @example
 * ```ts
 * await writeFileAtomic("./data/MANIFEST", new TextEncoder().encode("{}"));
 * ```
 */
export async function writeFileAtomic(file: string, bytes: Uint8Array, beforeRename?: () => void): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.tmp-${path.basename(file)}-${process.pid}`);
  try {
    const handle = await fs.promises.open(tmp, "w");
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    beforeRename?.();
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true, recursive: true }).catch(() => {});
    throw err;
  }
  try {
    await fsyncDir(dir);
  } catch (err) {
    throw new MaybeWrittenError(file, err);
  }
}

/**
 * Creates a directory (and parents) and makes its entry durable in its parent.
 *
 * @example
 * ```ts
 * await ensureDir("./data/runs/day=2024-01-15");
 * ```
 */
export async function ensureDir(dir: string): Promise<void> {
  if (fs.existsSync(dir)) return;
  const parent = path.dirname(dir);
  // mkdir first, parents only on ENOENT: the parents' existence is not read (under Deno's narrow
  // permissions only `dir` itself may be readable). Not `recursive: true`: Node's recursive mkdir
  // can loop forever where the kernel refuses with ENOENT (e.g. under /proc).
  try {
    await fs.promises.mkdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return;
    if (code !== "ENOENT" || parent === dir) throw err;
    await ensureDir(parent);
    try {
      await fs.promises.mkdir(dir);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== "EEXIST") throw again;
    }
  }
  await fsyncDir(parent);
}
