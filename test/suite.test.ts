/**
 * Both runtimes run the whole suite: every `*.test.ts` under test/ is matched by a glob of
 * `npm test` (package.json) and lies under a directory `deno task test` runs (deno.json). A test file
 * put one directory deeper than the npm globs reach would otherwise run on Deno only, silently.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Every `*.test.ts` under test/, relative to the repository root, with `/` separators. */
function testFiles(dir = "test"): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...testFiles(rel));
    else if (e.name.endsWith(".test.ts")) out.push(rel);
  }
  return out.sort();
}

/** A shell glob (`*` within one path segment) as a regular expression. */
function globToRegExp(glob: string): RegExp {
  const body = glob.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*");
  return new RegExp(`^${body}$`);
}

test("npm test's globs match every test file under test/", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
  const globs = (pkg.scripts.test as string).split(/\s+/).filter((w) => w.startsWith("test/"));
  assert.ok(globs.length > 0, "npm test names its test files by glob");
  const patterns = globs.map(globToRegExp);
  const files = testFiles();
  assert.ok(files.includes("test/suite.test.ts") && files.length > 10, "the test files are found");
  assert.deepEqual(files.filter((f) => !patterns.some((p) => p.test(f))), []);
});

test("deno task test runs a directory that holds every test file", () => {
  const deno = JSON.parse(fs.readFileSync(path.join(ROOT, "deno.json"), "utf8"));
  const task = deno.tasks.test as string;
  const dirs = task.split(/\s+/).filter((w) => w.startsWith("test"));
  assert.ok(dirs.length > 0, "deno task test names what it runs");
  const covered = (f: string) => dirs.some((d) => f === d || f.startsWith(d.endsWith("/") ? d : `${d}/`));
  assert.deepEqual(testFiles().filter((f) => !covered(f)), []);
});
