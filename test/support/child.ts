/**
 * Child processes for tests, on the runtime the tests run on: Node (via tsx) or Deno.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";

/** True when the tests run under Deno. */
export function isDeno(): boolean {
  return typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
}

/** Command and arguments that run a TypeScript file on this runtime. */
export function runArgs(entry: string): { cmd: string; args: string[] } {
  return isDeno()
    ? { cmd: process.execPath, args: ["run", "-A", "--quiet", entry] }
    : { cmd: process.execPath, args: ["--import", "tsx", entry] };
}

/** Command and arguments that evaluate a TypeScript module given as text (imports relative to the cwd). */
export function evalArgs(code: string): { cmd: string; args: string[] } {
  return isDeno()
    ? { cmd: process.execPath, args: ["eval", code] }
    : { cmd: process.execPath, args: ["--import", "tsx", "--input-type=module", "-e", code] };
}

/** Runs module text in a child process on this runtime and waits for it. */
export function runScript(code: string): SpawnSyncReturns<string> {
  const { cmd, args } = evalArgs(code);
  return spawnSync(cmd, args, { cwd: process.cwd(), encoding: "utf8" });
}
