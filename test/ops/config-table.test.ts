/**
 * The configuration table of docs/operating.md against the zod schema of src/ops/config.ts: every
 * variable the schema reads has exactly one row `| \`NAME\` | default | meaning |`, no row names a
 * variable the schema does not read, and each row's default is the schema's (compared after parsing
 * both with the variable's own rule, so `4194304` matches `4 * 1024 * 1024` and
 * `device_a:1,device_b:2` matches its Map). A variable without a default has an empty default cell.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { z } from "zod";
import { ENV_SCHEMA } from "../../src/ops/config.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const OPERATING = path.join(ROOT, "docs/operating.md");

interface Row {
  name: string;
  default: string;
  meaning: string;
  line: number;
}

/** The rows of the table under `## Configuration` (up to the next `## ` heading). */
function configurationRows(markdown: string): Row[] {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => /^## Configuration\s*$/.test(l));
  assert.ok(start >= 0, "docs/operating.md has a '## Configuration' section");
  const rows: Row[] = [];
  for (let i = start + 1; i < lines.length && !lines[i].startsWith("## "); i++) {
    const l = lines[i];
    if (!l.startsWith("|") || /^\|\s*(variable\s*\||-)/.test(l)) continue;
    const m = /^\| `([A-Za-z0-9_]+)` \| (.*?) \| (.*) \|$/.exec(l);
    assert.ok(m, `docs/operating.md:${i + 1}: a configuration row is | \`NAME\` | default | meaning |: ${l}`);
    rows.push({ name: m[1], default: m[2].trim(), meaning: m[3].trim(), line: i + 1 });
  }
  return rows;
}

const shape = ENV_SCHEMA.shape as Record<string, z.ZodType>;
const names = Object.keys(shape);
const rows = configurationRows(fs.readFileSync(OPERATING, "utf8"));

describe("docs/operating.md's configuration table matches the schema in src/ops/config.ts", () => {
  it("has one row for every variable the schema reads, and no other rows", () => {
    const counts = new Map<string, number>();
    for (const r of rows) counts.set(r.name, (counts.get(r.name) ?? 0) + 1);
    const missing = names.filter((n) => !counts.has(n));
    const twice = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
    const extra = [...counts.keys()].filter((n) => !names.includes(n));
    assert.deepEqual({ missing, twice, extra }, { missing: [], twice: [], extra: [] });
  });

  it("gives each variable the schema's default (an empty cell for one without a default)", () => {
    const wrong: string[] = [];
    for (const r of rows) {
      const rule = shape[r.name];
      if (rule === undefined) continue; // reported above
      const unset = rule.safeParse(undefined);
      const schemaDefault = unset.success ? unset.data : undefined;
      if (schemaDefault === undefined) {
        if (r.default !== "") wrong.push(`${r.name}: the schema has no default, the table says "${r.default}"`);
        continue;
      }
      const documented = rule.safeParse(r.default);
      if (!documented.success || !isDeepStrictEqual(documented.data, schemaDefault)) {
        wrong.push(`${r.name}: the table says "${r.default}", the schema's default is ${show(schemaDefault)}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it("gives every row a meaning", () => {
    assert.deepEqual(rows.filter((r) => r.meaning === "").map((r) => r.name), []);
  });

  it("is read by the test: the table is found and holds the well-known variables", () => {
    for (const n of ["HOST", "PORT", "PULSE_DATA_DIR", "PULSE_FSYNC"]) assert.ok(rows.some((r) => r.name === n), n);
  });
});

describe("the schema is the only reader of PULSE_* variables", () => {
  it("names no PULSE_* variable in src/ that the schema does not read", () => {
    const strays: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, e.name);
        if (e.isDirectory()) walk(full);
        else if (e.name.endsWith(".ts")) {
          for (const m of fs.readFileSync(full, "utf8").matchAll(/\bPULSE_[A-Z0-9_]+\b/g)) {
            if (!names.includes(m[0])) strays.push(`${path.relative(ROOT, full)}: ${m[0]}`);
          }
        }
      }
    };
    walk(path.join(ROOT, "src"));
    assert.deepEqual(strays, []);
  });
});

function isDeepStrictEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

function show(v: unknown): string {
  return v instanceof Map ? `Map(${JSON.stringify([...v])})` : JSON.stringify(v);
}
