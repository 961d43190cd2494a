/**
 * The architecture, checked: every module of src/ belongs to a layer, imports only its own layer or the
 * layers below it, and no import cycle exists between files. Type-only imports and re-exports count
 * (`import type`, `export ... from`), as do dynamic `import("...")` calls; imports inside comments
 * (the `@example` blocks) do not. The layers and their rule are described in src/README.md.
 *
 *   main -> pulsedb -> engine -> query -> storage -> ops -> reading   (http sits beside pulsedb:
 *   main -> http -> engine; http and pulsedb do not import each other)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../src");

type Layer = "reading" | "ops" | "storage" | "query" | "engine" | "http" | "pulsedb" | "main";

/** Which layer a file (path relative to src/, with `/`) belongs to; undefined for an unassigned file. */
function layerOf(rel: string): Layer | undefined {
  if (rel === "reading.ts") return "reading";
  if (rel === "engine.ts") return "engine";
  if (rel === "pulsedb.ts") return "pulsedb";
  if (rel === "main.ts" || rel === "verify-erased.ts") return "main"; // the two entry points
  const top = rel.split("/")[0];
  if (top === "ops" || top === "storage" || top === "query" || top === "http") return top;
  return undefined;
}

/** The layers each layer may import besides its own. */
const MAY_IMPORT: Record<Layer, readonly Layer[]> = {
  reading: [],
  ops: ["reading"],
  storage: ["ops", "reading"],
  query: ["storage", "ops", "reading"],
  engine: ["query", "storage", "ops", "reading"],
  http: ["engine", "query", "storage", "ops", "reading"],
  pulsedb: ["engine", "query", "storage", "ops", "reading"],
  main: ["pulsedb", "http", "engine", "query", "storage", "ops", "reading"],
};

/** One relative import of a module: the specifier as written and the line it is on. */
interface ImportRef {
  spec: string;
  line: number;
}

/** Static `import ... from`, `import "x"`, `export ... from` at the start of a line (a JSDoc line starts with `*`). */
const STATIC_IMPORT = /^[ \t]*(?:import|export)(?:\s+type)?(?:\s*[\w$*{},\s]*?\s*from)?\s*["']([^"']+)["']/gm;
/** `import("x")` anywhere, checked for not being inside a comment line afterwards. */
const DYNAMIC_IMPORT = /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g;

/**
 * The specifiers a module's source imports or re-exports (relative or not), in source order.
 * Statements inside block comments (`@example` code) and `//` comments are skipped.
 */
export function importsOf(source: string): ImportRef[] {
  const code = blankComments(source);
  const refs: ImportRef[] = [];
  const lineAt = (index: number) => code.slice(0, index).split("\n").length;
  for (const m of code.matchAll(STATIC_IMPORT)) refs.push({ spec: m[1], line: lineAt(m.index! + m[0].indexOf(m[1])) });
  for (const m of code.matchAll(DYNAMIC_IMPORT)) refs.push({ spec: m[1], line: lineAt(m.index!) });
  return refs.sort((a, b) => a.line - b.line);
}

/**
 * The source with every comment replaced by spaces (newlines kept, so line numbers stay right).
 * Strings and template literals are skipped so that `"http://x"` is not taken for a comment.
 * Regex literals are not recognised; none in src/ contains a quote or a comment opener today.
 */
function blankComments(source: string): string {
  let out = "";
  let i = 0;
  const blank = (s: string) => s.replace(/[^\n]/g, " ");
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      out += blank(source.slice(i, stop));
      i = stop;
    } else if (c === "/" && next === "/") {
      const end = source.indexOf("\n", i);
      const stop = end < 0 ? source.length : end;
      out += blank(source.slice(i, stop));
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < source.length && source[j] !== c) j += source[j] === "\\" ? 2 : 1;
      out += source.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Every .ts file under `dir`, as paths relative to it with `/` separators, sorted. */
function tsFiles(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + e.name;
    if (e.isDirectory()) out.push(...tsFiles(path.join(dir, e.name), rel + "/"));
    else if (e.name.endsWith(".ts")) out.push(rel);
  }
  return out.sort();
}

/** The module graph of src/: file -> the src files it imports (with the line of each import). */
function srcGraph(): Map<string, Array<{ target: string; line: number }>> {
  const graph = new Map<string, Array<{ target: string; line: number }>>();
  for (const rel of tsFiles(SRC)) {
    const edges: Array<{ target: string; line: number }> = [];
    for (const { spec, line } of importsOf(fs.readFileSync(path.join(SRC, rel), "utf8"))) {
      if (!spec.startsWith(".")) continue; // a package or node: builtin
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec));
      edges.push({ target, line });
    }
    graph.set(rel, edges);
  }
  return graph;
}

/** Layer-rule violations of a graph, one line each. */
export function layerViolations(graph: ReadonlyMap<string, ReadonlyArray<{ target: string; line: number }>>): string[] {
  const bad: string[] = [];
  for (const [file, edges] of graph) {
    const from = layerOf(file);
    if (from === undefined) {
      bad.push(`src/${file}: in no layer (put it in a layer folder, or add it to layerOf() and src/README.md)`);
      continue;
    }
    for (const { target, line } of edges) {
      if (target.startsWith("../")) {
        bad.push(`src/${file}:${line} imports ${target}, outside src/`);
        continue;
      }
      const to = layerOf(target);
      if (to === undefined || to === from || MAY_IMPORT[from].includes(to)) continue;
      bad.push(
        `src/${file}:${line} (${from}) imports src/${target} (${to}); ${from} may import only ${
          [from, ...MAY_IMPORT[from]].join(", ")
        }`,
      );
    }
  }
  return bad;
}

/** Every import cycle of a graph (one per strongly connected component), as `a -> b -> a`. */
export function importCycles(graph: ReadonlyMap<string, ReadonlyArray<{ target: string }>>): string[] {
  // Tarjan's strongly connected components (recursive: the graph is small).
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  const targets = (n: string) => (graph.get(n) ?? []).map((e) => e.target).filter((t) => graph.has(t));
  const visit = (n: string) => {
    index.set(n, counter);
    low.set(n, counter++);
    stack.push(n);
    onStack.add(n);
    for (const t of targets(n)) {
      if (!index.has(t)) {
        visit(t);
        low.set(n, Math.min(low.get(n)!, low.get(t)!));
      } else if (onStack.has(t)) low.set(n, Math.min(low.get(n)!, index.get(t)!));
    }
    if (low.get(n) === index.get(n)) {
      const comp: string[] = [];
      let m: string;
      do {
        m = stack.pop()!;
        onStack.delete(m);
        comp.push(m);
      } while (m !== n);
      if (comp.length > 1 || targets(n).includes(n)) components.push(comp);
    }
  };
  for (const n of [...graph.keys()].sort()) if (!index.has(n)) visit(n);
  // For each component, one concrete cycle through its first file (breadth-first within the component).
  return components.map((comp) => {
    const members = new Set(comp);
    const start = [...comp].sort()[0];
    const prev = new Map<string, string>();
    const queue = [start];
    let last: string | undefined;
    while (queue.length > 0 && last === undefined) {
      const n = queue.shift()!;
      for (const t of targets(n)) {
        if (!members.has(t)) continue;
        if (t === start) {
          last = n;
          break;
        }
        if (!prev.has(t)) {
          prev.set(t, n);
          queue.push(t);
        }
      }
    }
    const chain = [start];
    for (let n = last!; n !== start; n = prev.get(n)!) chain.splice(1, 0, n);
    return [...chain, start].join(" -> ");
  });
}

test("every module of src/ is in a layer and imports only its own layer or the layers below", () => {
  assert.deepEqual(layerViolations(srcGraph()), []);
});

test("no import cycle between the modules of src/ (type-only imports included)", () => {
  assert.deepEqual(importCycles(srcGraph()), []);
});

test("every relative import of src/ names a file that exists", () => {
  const missing: string[] = [];
  for (const [file, edges] of srcGraph()) {
    for (const { target, line } of edges) {
      if (!fs.existsSync(path.join(SRC, target))) missing.push(`src/${file}:${line} imports ${target}`);
    }
  }
  assert.deepEqual(missing, []);
});

test("the import scanner sees type-only imports, re-exports, multi-line and dynamic imports, not comments", () => {
  const source = [
    `import { a } from "./a.ts";`,
    `import type { B } from "../b.ts";`,
    `import {`,
    `  c,`,
    `  type D,`,
    `} from "./c.ts";`,
    `import * as e from "./e.ts";`,
    `import f, { g } from "./f.ts";`,
    `import "./side-effect.ts";`,
    `export { h } from "./h.ts";`,
    `export type { I } from "./i.ts";`,
    `export * from "./j.ts";`,
    `const k = await import("./k.ts");`,
    `import pl from "nodejs-polars";`,
    `/**`,
    ` * @example`,
    ` * import { Engine } from "../engine.ts";`,
    ` */`,
    `// import { x } from "./commented.ts";`,
    `const url = "http://example.com/"; // a string is not a comment`,
    `export const FROM = "from";`,
    `export function fromage(): string { return "import x from './not-an-import.ts'"; }`,
  ].join("\n");
  assert.deepEqual(importsOf(source).map((r) => `${r.line}:${r.spec}`), [
    "1:./a.ts",
    "2:../b.ts",
    "6:./c.ts",
    "7:./e.ts",
    "8:./f.ts",
    "9:./side-effect.ts",
    "10:./h.ts",
    "11:./i.ts",
    "12:./j.ts",
    "13:./k.ts",
    "14:nodejs-polars",
  ]);
});

test("the checks catch a layer breach and a cycle (storage importing query, a type-only loop in http)", () => {
  const graph = new Map([
    ["storage/run.ts", [{ target: "query/query.ts", line: 3 }]],
    ["query/query.ts", [{ target: "storage/run.ts", line: 5 }]],
    ["ops/config.ts", [{ target: "storage/run.ts", line: 9 }]],
    ["http/a.ts", [{ target: "http/b.ts", line: 1 }]],
    ["http/b.ts", [{ target: "http/c.ts", line: 1 }]],
    ["http/c.ts", [{ target: "http/a.ts", line: 1 }]],
    ["http/d.ts", [{ target: "engine.ts", line: 1 }]],
    ["engine.ts", []],
    ["tokens/store.ts", []],
  ]);
  assert.deepEqual(layerViolations(graph), [
    "src/storage/run.ts:3 (storage) imports src/query/query.ts (query); storage may import only storage, ops, reading",
    "src/ops/config.ts:9 (ops) imports src/storage/run.ts (storage); ops may import only ops, reading",
    "src/tokens/store.ts: in no layer (put it in a layer folder, or add it to layerOf() and src/README.md)",
  ]);
  assert.deepEqual(importCycles(graph).sort(), [
    "http/a.ts -> http/b.ts -> http/c.ts -> http/a.ts",
    "query/query.ts -> storage/run.ts -> query/query.ts",
  ]);
});
