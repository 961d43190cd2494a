/**
 * Shared benchmark helpers: start pulsedb as a child process, wait for it, stop it; percentiles;
 * table printing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** "node" or "deno": which runtime runs the server under test. */
export type Runtime = "node" | "deno";

/** The command line that runs a TypeScript entry point (default src/main.ts) on a runtime. */
export function serverCommand(runtime: Runtime, entry = "src/main.ts"): { cmd: string; args: string[] } {
  if (runtime === "deno") {
    return {
      cmd: path.join(ROOT, "node_modules/.bin/deno"),
      args: ["run", "-A", "--quiet", path.join(ROOT, entry)],
    };
  }
  return { cmd: process.execPath, args: ["--import", "tsx", path.join(ROOT, entry)] };
}

/** A running pulsedb child. */
export interface ServerChild {
  url: string;
  child: ChildProcess;
  stop(): Promise<number | null>;
}

/**
 * Starts pulsedb with `env` on a free port and waits until /ready answers 200 (bounded: 60 s).
 * (The bare ceiling server answers /ready too.)
 */
export async function startServer(
  env: Record<string, string>,
  runtime: Runtime = "node",
  entry = "src/main.ts",
): Promise<ServerChild> {
  const port = await freePort();
  const { cmd, args } = serverCommand(runtime, entry);
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), PULSE_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d) => {
    stderr += d;
    if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${stderr}`);
    try {
      const res = await fetch(`${url}/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`server did not become ready in 60 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    child,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once("exit", (code) => resolve(code));
        child.kill("SIGTERM");
      }),
  };
}

/** The p-th percentile (0-100) of `values` (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = values.slice().sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** Prints rows as a Markdown table. */
export function printTable(headers: string[], rows: Array<Array<string | number>>): void {
  const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === "number" ? fmt(c) : c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  const line = (r: Array<string | number>) => "| " + r.map((c, i) => String(c).padEnd(widths[i])).join(" | ") + " |";
  console.log(line(cells[0]));
  console.log("| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |");
  for (const r of cells.slice(1)) console.log(line(r));
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return n.toLocaleString("en-US");
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en-US");
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** Parses `--name value` flags. */
export function flags(argv = process.argv.slice(2)): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const [k, v] = a.slice(2).split("=");
    if (v !== undefined) out.set(k, v);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) out.set(k, argv[++i]);
    else out.set(k, "true");
  }
  return out;
}
