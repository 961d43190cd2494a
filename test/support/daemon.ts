/**
 * The pulsedb daemon (src/main.ts, or another entry) as a child process on this runtime, with its
 * JSON log lines parsed as they arrive.
 */
import { spawn } from "node:child_process";
import * as path from "node:path";
import { runArgs } from "./child.ts";

export const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");

// deno-lint-ignore no-explicit-any -- parsed JSON log lines of any shape
export type Json = Record<string, any>;

export interface Daemon {
  pid: number;
  lines: Json[];
  /** Resolves with the first log line for which `pred` holds (rejects when the process exits first). */
  waitFor(pred: (line: Json) => boolean): Promise<Json>;
  exited: Promise<{ code: number | null; signal: string | null }>;
  stderr(): string;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Starts the daemon on a free port of 127.0.0.1 with `env` (compaction off, info logs by default).
 * `command` replaces the runtime's `src/main.ts` command line.
 */
export function startDaemon(env: Record<string, string>, command?: { cmd: string; args: string[] }): Daemon {
  const { cmd, args } = command ?? runArgs(path.join("src", "main.ts"));
  const proc = spawn(cmd, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, HOST: "127.0.0.1", PORT: "0", PULSE_LOG_LEVEL: "info", PULSE_COMPACTION: "off", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Json[] = [];
  let err = "";
  let partial = "";
  const waiters: Array<{ pred: (l: Json) => boolean; resolve: (l: Json) => void; reject: (e: Error) => void }> = [];
  proc.stderr!.on("data", (chunk: Buffer) => {
    const s = chunk.toString("utf8");
    err += s;
    const parts = (partial + s).split("\n");
    partial = parts.pop() ?? "";
    for (const p of parts) {
      let o: Json;
      try {
        o = JSON.parse(p);
      } catch {
        continue; // a plain "pulsedb: ..." line
      }
      lines.push(o);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].pred(o)) {
          waiters[i].resolve(o);
          waiters.splice(i, 1);
        }
      }
    }
  });
  proc.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    proc.once("exit", (code, signal) => {
      for (const w of waiters.splice(0)) {
        w.reject(new Error(`pulsedb exited (${code ?? signal}) first; stderr:\n${err}`));
      }
      resolve({ code, signal });
    });
  });
  return {
    pid: proc.pid!,
    lines,
    exited,
    stderr: () => err,
    kill: (signal) => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
    waitFor(pred) {
      const found = lines.find(pred);
      if (found) return Promise.resolve(found);
      if (proc.exitCode !== null || proc.signalCode !== null) {
        return Promise.reject(new Error(`pulsedb already exited; stderr:\n${err}`));
      }
      return new Promise((resolve, reject) => waiters.push({ pred, resolve, reject }));
    },
  };
}

/** POSTs a JSON body to the daemon. */
export async function postJson(base: string, body: unknown): Promise<Response> {
  return await fetch(`${base}/metrics/heart-rate`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
}
