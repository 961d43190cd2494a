/**
 * The file layer under the WAL: the calls it makes (`WalFs`, promise-style and fd-based), the
 * default on node:fs (which Deno implements too), and the few helpers built on them.
 *
 * @module
 */
import * as nodeFs from "node:fs";

/** Structured logger; `fields` are extra key/values for a JSON log line. */
export type WalLogger = (
  level: "info" | "warn" | "error",
  msg: string,
  fields?: Record<string, unknown>,
) => void;

/**
 * The file-system calls the WAL makes, promise-style and fd-based. The default is `nodeWalFs`
 * (node:fs); tests wrap it to inject faults. Errors should carry the errno `code` (ENOSPC, EIO...).
 */
export interface WalFs {
  open(path: string, flags: string): Promise<number>;
  /** Positioned write of `data[offset, offset+length)` at file `position`; resolves bytes written. */
  write(fd: number, data: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  close(fd: number): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  readdir(path: string): Promise<string[]>;
  /** Recursive: no error if it exists. */
  mkdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

type Cb<T> = (err: NodeJS.ErrnoException | null, value: T) => void;
function call<T>(f: (cb: Cb<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => f((err, value) => (err ? reject(err) : resolve(value))));
}

/**
 * The default `WalFs`, backed by `node:fs`.
 *
 * @example
 * ```ts
 * // Wrap it to inject a fault in tests:
 * const fs: WalFs = { ...nodeWalFs, fdatasync: () => Promise.reject(Object.assign(new Error("EIO"), { code: "EIO" })) };
 * ```
 */
export const nodeWalFs: WalFs = {
  open: (path, flags) => call<number>((cb) => nodeFs.open(path, flags, 0o644, cb)),
  write: (fd, data, offset, length, position) =>
    call<number>((cb) => nodeFs.write(fd, data, offset, length, position, cb)),
  fdatasync: (fd) => call<void>((cb) => nodeFs.fdatasync(fd, cb)),
  fsync: (fd) => call<void>((cb) => nodeFs.fsync(fd, cb)),
  ftruncate: (fd, length) => call<void>((cb) => nodeFs.ftruncate(fd, length, cb)),
  close: (fd) => call<void>((cb) => nodeFs.close(fd, cb)),
  readFile: (path) => call<Uint8Array>((cb) => nodeFs.readFile(path, cb)),
  readdir: (path) => call<string[]>((cb) => nodeFs.readdir(path, cb)),
  mkdir: (path) => call<string | undefined>((cb) => nodeFs.mkdir(path, { recursive: true }, cb)).then(() => {}),
  rename: (from, to) => call<void>((cb) => nodeFs.rename(from, to, cb)),
  unlink: (path) => call<void>((cb) => nodeFs.unlink(path, cb)),
};

export function errCode(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

/** fsync a directory so that entries created/renamed/removed in it are durable. */
export async function syncDir(fs: WalFs, dir: string): Promise<void> {
  // Platforms that cannot open or fsync a directory (Windows) answer with one of these: skip.
  const unsupported = (e: unknown) => ["EISDIR", "EINVAL", "EPERM", "ENOTSUP", "EBADF"].includes(errCode(e) ?? "");
  let fd: number;
  try {
    fd = await fs.open(dir, "r");
  } catch (e) {
    if (unsupported(e)) return;
    throw e;
  }
  try {
    await fs.fsync(fd);
  } catch (e) {
    if (!unsupported(e)) throw e;
  } finally {
    await fs.close(fd).catch(() => {});
  }
}

/** Write all of `data` at `position`, looping over short writes. */
export async function writeFully(fs: WalFs, fd: number, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const n = await fs.write(fd, data, done, data.length - done, position + done);
    if (!(n > 0)) throw Object.assign(new Error("wal: write(2) wrote nothing"), { code: "EIO" });
    done += n;
  }
}

/** Cut `path` to `length` bytes and make that durable. */
export async function truncateFile(fs: WalFs, path: string, length: number): Promise<void> {
  const fd = await fs.open(path, "r+");
  try {
    await fs.ftruncate(fd, length);
    await fs.fsync(fd);
  } finally {
    await fs.close(fd).catch(() => {});
  }
}
