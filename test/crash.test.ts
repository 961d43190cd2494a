/**
 * Crash test (short): three rounds of the crash-test driver (test/support/crash-driver.ts) against a
 * real pulsedb child process: one killed by a crash point inside a flush, one by a crash point inside
 * a compaction, one by SIGKILL at a random moment. After each kill pulsedb is restarted on the same
 * data directory and every acknowledged reading must be answered with its last acknowledged value,
 * and every reading erased by an acknowledged DELETE (writers send some at random points) must stay
 * absent.
 * The long version: `npm run test:crash` (20 rounds) or `--rounds 100`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeViolations, runCrashTest } from "./support/crash-driver.ts";

test("crash test: nothing acknowledged is lost across crashes in flush, compaction and random kills", {
  timeout: 120_000,
}, async (t) => {
  const result = await runCrashTest({
    rounds: 3,
    seed: 20240115,
    schedule: ["flush-after-rename:1", "compaction-after-manifest:1", null],
    log: (line) => t.diagnostic(line),
  });
  assert.equal(
    result.violationCount,
    0,
    `${result.lost} acknowledged readings lost, ${result.violationCount} violations (seed ${result.seed}; data dir kept: ${result.dataDir}):\n${
      describeViolations(result)
    }`,
  );
  assert.equal(result.rounds.length, 3);
  assert.ok(result.rounds[0].crashFired, `the flush crash point did not fire: ${result.rounds[0].death}`);
  assert.ok(result.rounds[1].crashFired, `the compaction crash point did not fire: ${result.rounds[1].death}`);
  assert.ok(result.ackedReadings > 0, "no write was acknowledged");
  assert.ok(result.ackedDeletes > 0, "no DELETE was acknowledged");
  assert.ok(result.checkedReadings > 0, "no acknowledged reading was checked");
  assert.equal(result.lost, 0);
});
