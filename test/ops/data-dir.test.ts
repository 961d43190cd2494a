/**
 * A PULSE_DATA_DIR that is a regular file, lies under one, or cannot be written stops start-up with
 * a non-zero exit and one line naming the variable and its value, no stack trace, on Node and on
 * Deno (issue 11, item 2). The tests run as root, who can write anywhere chmod forbids, so the
 * unwritable directories are under /proc and /sys.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { removeDir, tempDir } from "../support/harness.ts";
import { REPO_ROOT } from "../support/daemon.ts";

const RUNTIMES: Array<[string, string, string[]]> = [
  ["node", "node", ["--import", "tsx", "src/main.ts"]],
  ["deno", path.join(REPO_ROOT, "node_modules", ".bin", "deno"), ["run", "-A", "--quiet", "src/main.ts"]],
];

describe("a bad PULSE_DATA_DIR", () => {
  const dir = tempDir();
  const file = path.join(dir, "a-file");
  fs.writeFileSync(file, "not a directory\n");
  const cases: Array<[string, string]> = [
    ["a regular file", file],
    ["a path under a regular file", path.join(file, "data")],
    ["a directory that cannot be created (/proc)", "/proc/pulsedb-data"],
    ["a directory that cannot be written (/proc)", "/proc"],
    ["a directory that cannot be written (/sys)", "/sys/kernel"],
  ];
  for (const [runtime, cmd, args] of RUNTIMES) {
    for (const [name, value] of cases) {
      it(`${runtime}: ${name} exits non-zero with one line naming PULSE_DATA_DIR and its value`, () => {
        const res = spawnSync(cmd, args, {
          cwd: REPO_ROOT,
          encoding: "utf8",
          timeout: 60_000,
          env: { ...process.env, PULSE_DATA_DIR: value, HOST: "127.0.0.1", PORT: "0", PULSE_LOG_LEVEL: "info" },
        });
        assert.notEqual(res.status, 0, res.stderr);
        assert.notEqual(res.status, null, `exited by itself (${res.signal})`);
        const lines = res.stderr.split("\n").filter((l) => l.trim() !== "");
        assert.equal(lines.length, 1, res.stderr);
        assert.ok(lines[0].startsWith(`pulsedb: PULSE_DATA_DIR=${value} `), lines[0]);
        assert.doesNotMatch(res.stderr, /\n\s+at /, "no stack trace");
      });
    }
  }
  after(() => removeDir(dir));
});
