/**
 * The Deno launcher (`deno task start`): runs `src/main.ts` on Deno with permissions derived from
 * the configuration instead of fixed ones, so that a data directory outside the checkout works and
 * nothing else is granted:
 *
 * - read: the checkout's `node_modules`, `src`, `package.json`, `deno.json`; `PULSE_DATA_DIR`
 *   (default `./data`); `PULSE_ADMIN_TOKEN_FILE` and `PULSE_AUDIT_LOG` when set;
 * - write: `PULSE_DATA_DIR`; `PULSE_AUDIT_LOG` when set;
 * - ffi: `node_modules` (nodejs-polars); net, env, and the few sys calls Polars makes;
 * - run: Deno ties signal 0 (the LOCK's liveness check of the pid it names) to it; no subprocess is started.
 *
 * It behaves like exec: stdio is the server's, SIGTERM/SIGINT/SIGHUP are passed on to it, and the
 * launcher exits with the server's exit code (128 + the signal number if a signal ended it).
 * Arguments after the launcher's name are passed to `deno run` before the entry (e.g. `--inspect`).
 * A path that holds a comma cannot be expressed as a Deno permission: the launcher refuses it with
 * one line naming the variable.
 *
 * Run it with `deno run --allow-env --allow-read=. --allow-run=<deno> src/ops/deno-launcher.ts`
 * (what the `start` task of deno.json does). It uses only node: APIs, so it type-checks with the rest.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";

/** Path-valued variables and the access the server needs to each (when set). */
export const PATH_VARIABLES: ReadonlyArray<{ name: string; fallback?: string; read: boolean; write: boolean }> = [
  { name: "PULSE_DATA_DIR", fallback: "./data", read: true, write: true },
  { name: "PULSE_ADMIN_TOKEN_FILE", read: true, write: false },
  { name: "PULSE_AUDIT_LOG", read: true, write: true },
];

/** The parts of the checkout the server reads (relative to the checkout). */
const CHECKOUT_READ = ["node_modules", "src", "package.json", "deno.json"];

/**
 * The `deno run` permission flags for an environment: the checkout is `root`; relative paths in
 * variables are resolved against `cwd` (where the server runs); `realpath` adds the targets of
 * symlinked checkout paths.
 *
 * @throws Error naming the variable when a path cannot be expressed as a permission (a comma).
 * @example
 * ```ts
 * denoPermissionFlags({ PULSE_DATA_DIR: "/var/lib/pulsedb" }, "/srv/pulsedb");
 * // ["--allow-env", "--allow-net", ..., "--allow-read=/srv/pulsedb/node_modules,...,/var/lib/pulsedb", "--allow-write=/var/lib/pulsedb"]
 * ```
 */
export function denoPermissionFlags(
  env: Record<string, string | undefined>,
  root: string,
  cwd: string = root,
  realpath: (p: string) => string = (p) => p,
): string[] {
  // Deno checks the canonical path of what is opened: a symlinked node_modules needs its target too.
  const withReal = (p: string) => (realpath(p) === p ? [p] : [p, realpath(p)]);
  const read = CHECKOUT_READ.flatMap((p) => withReal(path.join(root, p)));
  const write: string[] = [];
  for (const v of PATH_VARIABLES) {
    const value = env[v.name] || v.fallback;
    if (value === undefined) continue;
    if (value.includes(",")) {
      throw new Error(`${v.name}=${value} holds a comma, which a Deno permission flag cannot express`);
    }
    const full = path.resolve(cwd, value);
    if (v.read) read.push(full);
    if (v.write) write.push(full);
  }
  return [
    "--allow-env",
    "--allow-net",
    `--allow-ffi=${withReal(path.join(root, "node_modules")).join(",")}`,
    "--allow-sys=cpus,networkInterfaces,hostname,osRelease",
    // The LOCK's liveness check sends signal 0 to the pid it names, which Deno ties to run
    // permission; pulsedb starts no subprocess.
    "--allow-run",
    `--allow-read=${read.join(",")}`,
    `--allow-write=${write.join(",")}`,
  ];
}

/** The part of the Deno namespace the launcher uses (declared here: the project type-checks against Node). */
interface DenoRuntime {
  execPath(): string;
  Command: new (
    cmd: string,
    opts: { args: string[]; env: Record<string, string>; stdin: "inherit"; stdout: "inherit"; stderr: "inherit" },
  ) => {
    spawn(): { kill(signal: string): void; status: Promise<{ code: number; signal: string | null }> };
  };
  addSignalListener(signal: string, handler: () => void): void;
  exit(code: number): never;
}

if ((import.meta as { main?: boolean }).main) {
  const deno = (globalThis as { Deno?: DenoRuntime }).Deno;
  if (deno === undefined) {
    process.stderr.write("pulsedb: the Deno launcher runs on Deno (on Node.js: npm start)\n");
    process.exit(2);
  }
  const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
  let flags: string[] = [];
  try {
    flags = denoPermissionFlags(process.env, root, process.cwd(), (p) => {
      try {
        return fs.realpathSync(p);
      } catch {
        return p;
      }
    });
  } catch (err) {
    process.stderr.write(`pulsedb: ${(err as Error).message}\n`);
    deno.exit(2);
  }
  // Deno.Command, not node:child_process: under Deno the latter reports the signal it sent
  // instead of the exit code of a child that handled it.
  // The binary the start task allows (`--allow-run=./node_modules/deno/deno`), by that very path:
  // Deno.execPath() is canonical, and differs from it when node_modules is reached by a symlink.
  const local = path.join(root, "node_modules", "deno", "deno");
  const child = new deno.Command(fs.existsSync(local) ? local : deno.execPath(), {
    args: ["run", ...flags, ...process.argv.slice(2), path.join(root, "src", "main.ts")],
    // The server watches for this launcher's death (SIGKILL cannot be forwarded) and stops itself.
    env: { PULSEDB_LAUNCHER: String(process.pid) }, // added to the inherited environment
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) {
    deno.addSignalListener(signal, () => child.kill(signal));
  }
  // If `deno task` above us is killed outright, stop the server as on SIGTERM instead of leaving it
  // running as an orphan (the server likewise watches this launcher).
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) child.kill("SIGTERM");
  }, 500);
  const status = await child.status;
  const numbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  deno.exit(status.signal === null ? status.code : 128 + (numbers[status.signal] ?? 0));
}
