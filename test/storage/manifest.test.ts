/**
 * Manifest: atomic replacement and corruption detection.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  decodeManifest,
  EMPTY_MANIFEST,
  encodeManifest,
  ManifestCorruptError,
  type ManifestData,
  ManifestFormatError,
  readManifest,
  writeManifest,
} from "../../src/storage/manifest.ts";
import { removeDir, tempDir } from "../support/harness.ts";
import { runScript } from "../support/child.ts";

const SAMPLE: ManifestData = {
  format: 2,
  nextRunId: 3,
  flushedSeq: 42,
  walSegment: 2,
  runs: [{
    id: 1,
    day: "2024-01-15",
    level: 0,
    file: "runs/day=2024-01-15/L0-00000001.parquet",
    rows: 10,
    minTs: 1,
    maxTs: 2,
    minSeq: 1,
    maxSeq: 42,
    bytes: 100,
  }],
};

describe("Manifest", () => {
  it("refuses a format-1 manifest (float heart rates) with a message naming the format", () => {
    const old = new TextDecoder().decode(encodeManifest(SAMPLE)).replace('"format": 2', '"format": 1');
    const body = old.slice(old.indexOf("\n") + 1);
    const bytes = encodeManifest(JSON.parse(body));
    assert.throws(() => decodeManifest(bytes, "MANIFEST"), (err: Error) => {
      assert.ok(err instanceof ManifestFormatError);
      assert.match(err.message, /format 1/);
      return true;
    });
  });
  it("round-trips through encode and decode", () => {
    assert.deepEqual(decodeManifest(encodeManifest(SAMPLE), "M"), SAMPLE);
  });

  it("reads an absent manifest as an empty database", async () => {
    const dir = tempDir();
    assert.deepEqual(await readManifest(dir), EMPTY_MANIFEST);
    removeDir(dir);
  });

  it("detects a flipped byte anywhere in the file", () => {
    const bytes = encodeManifest(SAMPLE);
    for (let i = 0; i < bytes.length; i++) {
      const copy = bytes.slice();
      copy[i] ^= 0x01;
      assert.throws(() => decodeManifest(copy, "M"), ManifestCorruptError, `flip at byte ${i} went unnoticed`);
    }
  });

  it("detects a truncated file at every length", () => {
    const bytes = encodeManifest(SAMPLE);
    for (let n = 0; n < bytes.length; n++) {
      assert.throws(
        () => decodeManifest(bytes.subarray(0, n), "M"),
        ManifestCorruptError,
        `cut at ${n} went unnoticed`,
      );
    }
  });

  it("names the file and the way to recover in its error", () => {
    assert.throws(
      () => decodeManifest(new TextEncoder().encode("junk"), "/d/MANIFEST"),
      (err: Error) => err.message.includes("/d/MANIFEST") && err.message.includes("To recover"),
    );
  });

  it("keeps the previous manifest in force after a crash between writing and renaming", async () => {
    const dir = tempDir();
    await writeManifest(dir, SAMPLE);
    // A child process writes a newer manifest and is killed at the crash point before the rename.
    const script = `
      import { armCrashPoint } from "./src/storage/crash-point.ts";
      import { writeManifest } from "./src/storage/manifest.ts";
      armCrashPoint("manifest-before-rename");
      await writeManifest(${JSON.stringify(dir)}, { ...${JSON.stringify(SAMPLE)}, flushedSeq: 99 });
    `;
    const child = runScript(script);
    assert.equal(child.signal, "SIGKILL", child.stderr);
    const m = await readManifest(dir);
    assert.equal(m.flushedSeq, 42);
    assert.ok(
      fs.readdirSync(dir).some((f) => f.startsWith(".tmp-")),
      "the half-done temp file is left for start-up to remove",
    );
    // After the rename, the new one is in force.
    const child2 = runScript(script.replace("manifest-before-rename", "manifest-after-rename"));
    assert.equal(child2.signal, "SIGKILL", child2.stderr);
    assert.equal((await readManifest(dir)).flushedSeq, 99);
    assert.ok(fs.existsSync(path.join(dir, "MANIFEST")));
    removeDir(dir);
  });
});
