/**
 * The data directory's LOCK is created exclusively: of two processes taking it at the same moment,
 * exactly one gets it, whether the directory had no lock or a stale one (issue 11, item 6).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { evalArgs } from "../support/child.ts";
import { removeDir, tempDir } from "../support/harness.ts";

const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");

/** A child that waits for `go`, takes the lock of `dir`, reports, and holds it until `stop` exists. */
function taker(
  dir: string,
  go: string,
  stop: string,
): { proc: ChildProcess; ready: Promise<void>; result: Promise<string> } {
  const code = `
    import * as fs from "node:fs";
    import { takeLock } from "./src/storage/lock-file.ts";
    process.stdout.write("ready\\n");
    while (!fs.existsSync(${JSON.stringify(go)})) { /* spin: start as close together as possible */ }
    let line;
    try { await takeLock(${JSON.stringify(dir)}); line = "ok"; } catch (err) { line = "refused " + err.message; }
    process.stdout.write(line + "\\n");
    const t = setInterval(() => { if (fs.existsSync(${
    JSON.stringify(stop)
  })) { clearInterval(t); process.exit(0); } }, 5);
  `;
  const { cmd, args } = evalArgs(code);
  const proc = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  let onReady!: () => void;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const result = new Promise<string>((resolve, reject) => {
    proc.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
      if (out.startsWith("ready\n")) onReady();
      const lines = out.split("\n");
      if (lines.length >= 3) resolve(lines[1]);
    });
    proc.once("exit", (c) => reject(new Error(`taker exited (${c}) before reporting: ${out}`)));
  });
  result.catch(() => {});
  return { proc, ready, result };
}

async function race(dir: string): Promise<string[]> {
  const go = path.join(dir, "..", `${path.basename(dir)}.go`);
  const stop = path.join(dir, "..", `${path.basename(dir)}.stop`);
  const takers = [taker(dir, go, stop), taker(dir, go, stop)];
  try {
    // both are running and spinning on `go` before it appears
    await Promise.all(takers.map((t) => t.ready));
    fs.writeFileSync(go, "");
    return (await Promise.all(takers.map((t) => t.result))).sort();
  } finally {
    fs.writeFileSync(stop, "");
    await Promise.all(
      takers.map((t) => t.proc.exitCode !== null ? undefined : new Promise((r) => t.proc.once("exit", r))),
    );
    fs.rmSync(go, { force: true });
    fs.rmSync(stop, { force: true });
  }
}

describe("LOCK", () => {
  for (const start of ["no lock", "a stale lock (dead pid)", "a stale lock (pid reused)"]) {
    it(`two processes taking it at once from ${start}: exactly one gets it`, async () => {
      for (let round = 0; round < 3; round++) {
        const dir = tempDir();
        try {
          if (start === "a stale lock (dead pid)") fs.writeFileSync(path.join(dir, "LOCK"), "2147483646 1");
          if (start === "a stale lock (pid reused)") fs.writeFileSync(path.join(dir, "LOCK"), "1 12345");
          const results = await race(dir);
          assert.equal(results.filter((r) => r === "ok").length, 1, JSON.stringify(results));
          assert.match(results.find((r) => r !== "ok") ?? "", /^refused .*(in use by process|being taken)/);
          assert.deepEqual(fs.readdirSync(dir).filter((f) => f !== "LOCK"), [], "no temp or stale files left");
        } finally {
          removeDir(dir);
        }
      }
    });
  }
});
