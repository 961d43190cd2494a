/**
 * Crash-test driver: proves that nothing pulsedb acknowledged is ever lost.
 *
 * Each round starts pulsedb as a child process on a data directory kept across rounds (on most
 * rounds with `PULSE_CRASH_POINT` armed, cycling through every crash point of src/storage/crash-point.ts), runs
 * concurrent writers and readers against it, and kills it: by its crash point, or by SIGKILL at a
 * random moment. It then restarts pulsedb on the same directory (no crash point) and compares every
 * 10 s bucket of every user and device with a model kept by the driver.
 *
 * The model: for each identity (user, device, timestamp) the set of values the store may hold.
 *  - An acknowledged write (200) of value v: the set becomes {v}. Writes of one identity never run
 *    concurrently (writer loop w owns the timestamps slot % W == w, and sends its requests one at a
 *    time), so the order of acknowledged writes is the order the driver saw.
 *  - A write whose outcome is unknown (connection reset because the child died, 503, timeout): the
 *    set becomes the old set plus v (v = the batch's last value for that identity, since a batch is
 *    all-or-nothing and a later duplicate in a batch wins). "absent" is a member of the set until a
 *    write of that identity is acknowledged.
 *  - A request refused at connect (ECONNREFUSED) never reached the server: the model is unchanged.
 *  - A DELETE (sent now and then by a writer loop, of one slot it owns, one device or all): answered
 *    200, the set becomes {absent}; outcome unknown, "absent" joins the set.
 * Every bucket answered must hold a value from its identity's set; a bucket whose set excludes
 * "absent" (an acknowledged reading) must be answered; no bucket may appear for an identity never
 * sent; and the query without device_id must pick, per bucket, device_a > device_b > device_z.
 *
 * Timestamps lie on exact 10 s boundaries, so with bucket=10s each bucket holds exactly one identity
 * per device and the mean is that identity's value: the comparison is exact (tolerance 0.006).
 *
 * Each verifying process is itself killed with SIGKILL after its check (often while it flushes the
 * replayed WAL or compacts), and the next round's start recovers from that too. Every other round
 * checks twice: right after start-up (replayed data in memory) and once the replay is flushed to
 * runs. After the last round: restart, check, SIGTERM (must exit 0), restart, check again.
 *
 * Script: `node --import tsx test/support/crash-driver.ts --rounds 20 [--seed S] [--verbose]
 * [--data-dir DIR] [--keep]`. Exit 0 when every round passed, 1 (with details and the kept data
 * directory) on any violation.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { CRASH_POINTS } from "../../src/storage/crash-point.ts";
import { isDeno, runArgs } from "./child.ts";

// ---------------------------------------------------------------------------------------------
// Constants

/** The repository root (the child's cwd). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
/** Users the writers use. */
export const USERS = ["user_0", "user_1", "user_2", "user_3", "user_4"] as const;
/** Devices in priority order: device_a (1) > device_b (2) > device_z (not configured). */
export const DEVICES = ["device_a", "device_b", "device_z"] as const;
/** The span the writers cover: 3 UTC days around 2024-01-15, half-open. */
export const SPAN_START = Date.UTC(2024, 0, 14);
export const SPAN_END = Date.UTC(2024, 0, 17);
/** Timestamps are multiples of this (the query bucket), so a bucket holds one identity per device. */
export const SLOT_MS = 10_000;
export const SLOTS = (SPAN_END - SPAN_START) / SLOT_MS;
const MAX_BUCKETS = 100_000;
const TOLERANCE = 0.006;
const READY_TIMEOUT_MS = 30_000;
const WRITE_TIMEOUT_MS = 20_000;
const QUERY_TIMEOUT_MS = 60_000;
const SETTLE_TIMEOUT_MS = 20_000;
const OUTPUT_KEEP_BYTES = 64 * 1024;
const HISTORY_CAP = 4000;

// ---------------------------------------------------------------------------------------------
// Public types

export interface CrashTestOptions {
  /** Rounds to run (default 20). */
  rounds?: number;
  /** PRNG seed for the schedule, configurations and generated data (default: time-based). */
  seed?: number;
  /** Print child output and per-check details. */
  verbose?: boolean;
  /** Data directory (default: a new temp dir, removed when all passed). A given dir is never removed. */
  dataDir?: string;
  /** Keep the data directory even when all passed. */
  keepDataDir?: boolean;
  /**
   * Crash point per round (`"name"` or `"name:N"`), `null` for a random kill; index i = round i,
   * cycled. Default: two rounds of three use the next point of CRASH_POINTS with a small random N.
   */
  schedule?: ReadonlyArray<string | null>;
  /** Concurrent writer loops (default 6). */
  writers?: number;
  /** Concurrent query loops during writes (default 2). */
  readers?: number;
  /** Random-kill rounds write for a random time in this range, ms (default [300, 1500]). */
  killAfterMs?: [number, number];
  /** Crash-point rounds write at most this long, ms, before a random kill (default 4000). */
  maxCrashWaitMs?: number;
  /** Where round lines go (default console.log). */
  log?: (line: string) => void;
}

export type ViolationKind =
  | "missing" // an acknowledged reading is not answered
  | "wrong-value" // a bucket holds a value that is not the last acknowledged (or an allowed unknown) one
  | "phantom" // a bucket for an identity never sent
  | "priority" // the query without device_id picked the wrong device / value
  | "http" // 5xx or another unexpected status, malformed answer
  | "timeout" // a request got no answer in time
  | "crash"; // the child died unexpectedly or did not restart

export interface Violation {
  round: number;
  kind: ViolationKind;
  detail: string;
}

export interface RoundReport {
  round: number;
  /** Armed crash point, or null for a random kill. */
  crashPoint: string | null;
  /** The crash point fired (during writes or during start-up recovery). */
  crashFired: boolean;
  /** Where the child died: "crash point", "crash point during start-up", "random kill". */
  death: string;
  /** Acknowledged readings so far (all rounds). */
  ackedSoFar: number;
  /** Acknowledged identities checked after the restart (counted per check; two checks on even rounds). */
  checked: number;
  /** Readings of this round whose write had an unknown outcome (child killed mid-request, 503). */
  unknown: number;
  violations: number;
  ms: number;
}

export interface CrashTestResult {
  seed: number;
  dataDir: string;
  dataDirKept: boolean;
  rounds: RoundReport[];
  /** Acknowledged readings (elements of 200-answered POSTs). */
  ackedReadings: number;
  /** DELETEs answered 200. */
  ackedDeletes: number;
  /** Sum over verifications of acknowledged identities checked. */
  checkedReadings: number;
  /** Distinct acknowledged readings found missing or with a wrong value (in any check). */
  lost: number;
  violations: Violation[];
  /** The first 500 violations, plus every crash / timeout and the first of each round (all are counted). */
  violationCount: number;
  /** Violations per kind (all of them). */
  violationsByKind: Partial<Record<ViolationKind, number>>;
}

// ---------------------------------------------------------------------------------------------
// PRNG

/** A small seeded PRNG (mulberry32). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

// ---------------------------------------------------------------------------------------------
// Model

/** A value the store may hold for an identity; null = the identity may be absent. */
type Outcome = number | null;

interface GenReading {
  user: string;
  device: string;
  slot: number;
  hr: number;
  tsText: string;
}

/** The expected state: per (user|device), per slot, the set of values the store may hold. */
export class Model {
  private readonly byStream = new Map<string, Map<number, Outcome[]>>();
  ackedReadings = 0;
  unknownReadings = 0;

  stream(user: string, device: string): Map<number, Outcome[]> {
    const k = `${user}|${device}`;
    let m = this.byStream.get(k);
    if (!m) this.byStream.set(k, m = new Map());
    return m;
  }

  /** A 200 answer: every reading is stored, in order (a later duplicate in the batch wins). */
  acked(readings: readonly GenReading[]): void {
    for (const r of readings) this.stream(r.user, r.device).set(r.slot, [r.hr]);
    this.ackedReadings += readings.length;
  }

  /** A DELETE answered 200: every identity it covers is absent (until written again). */
  deleted(ids: ReadonlyArray<{ user: string; device: string; slot: number }>): void {
    for (const id of ids) this.stream(id.user, id.device).set(id.slot, [null]);
    this.ackedDeletes++;
  }

  /** A DELETE with unknown outcome: each identity it covers may also be absent. */
  maybeDeleted(ids: ReadonlyArray<{ user: string; device: string; slot: number }>): void {
    for (const id of ids) {
      const s = this.stream(id.user, id.device);
      const prev = s.get(id.slot) ?? [null];
      s.set(id.slot, prev.includes(null) ? prev : [...prev, null]);
    }
  }

  ackedDeletes = 0;

  /** Unknown outcome: the whole batch may or may not be stored; if stored, its last duplicate won. */
  unknown(readings: readonly GenReading[]): void {
    const last = new Map<string, GenReading>();
    for (const r of readings) last.set(`${r.user}|${r.device}|${r.slot}`, r);
    for (const r of last.values()) {
      const s = this.stream(r.user, r.device);
      const prev = s.get(r.slot) ?? [null];
      s.set(r.slot, prev.includes(r.hr) ? prev : [...prev, r.hr]);
    }
    this.unknownReadings += readings.length;
  }
}

// ---------------------------------------------------------------------------------------------
// Child process

interface Child {
  proc: ChildProcess;
  port: number;
  base: string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** The last OUTPUT_KEEP_BYTES of stdout + stderr. */
  output(): string;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const p of liveChildren) {
      try {
        p.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("PULSE_") || k === "NODE_TEST_CONTEXT") delete env[k];
  return env;
}

/** The child's configuration for one start (everything but PORT). */
export function childEnv(dataDir: string, memtableRows: number, crashPoint: string | null): Record<string, string> {
  const env: Record<string, string> = {
    HOST: "127.0.0.1",
    PULSE_DATA_DIR: dataDir,
    PULSE_LOG_LEVEL: isDeno() ? "info" : "warn", // under Deno the "closed" line proves a clean exit
    PULSE_MEMTABLE_ROWS: String(memtableRows),
    PULSE_FLUSH_INTERVAL_MS: "200",
    PULSE_COMPACTION_TRIGGER: "2",
    PULSE_COMPACTION_SETTLE_MS: "300",
    // Purges (of the DELETEs writers send) start 2 s after a DELETE: they run, and crash, in rounds.
    PULSE_ERASURE_DEADLINE: "8s",
  };
  if (crashPoint) env.PULSE_CRASH_POINT = crashPoint;
  return env;
}

/**
 * Starts pulsedb and waits until GET /health (and GET /ready, where it exists) answer 200, or the
 * child exits (the caller looks at `alive()`: a crash point may fire during start-up recovery).
 * Throws after READY_TIMEOUT_MS with the child's output.
 */
async function startChild(env: Record<string, string>, onLine?: (line: string) => void): Promise<Child> {
  installExitHook();
  for (let attempt = 0;; attempt++) {
    const port = await freePort();
    const { cmd, args } = runArgs(path.join("src", "main.ts"));
    const proc = spawn(cmd, args, {
      cwd: REPO_ROOT,
      env: { ...baseEnv(), ...env, PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    liveChildren.add(proc);
    let out = "";
    let partial = "";
    const take = (chunk: Buffer) => {
      const s = chunk.toString("utf8");
      out += s;
      if (out.length > OUTPUT_KEEP_BYTES * 2) out = out.slice(-OUTPUT_KEEP_BYTES);
      if (onLine) {
        const lines = (partial + s).split("\n");
        partial = lines.pop() ?? "";
        for (const l of lines) if (l.length > 0) onLine(l);
      }
    };
    proc.stdout!.on("data", take);
    proc.stderr!.on("data", take);
    let alive = true;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      proc.once("exit", (code, signal) => {
        alive = false;
        liveChildren.delete(proc);
        resolve({ code, signal });
      });
      proc.once("error", () => {
        alive = false;
        liveChildren.delete(proc);
        resolve({ code: -1, signal: null });
      });
    });
    const child: Child = {
      proc,
      port,
      base: `http://127.0.0.1:${port}`,
      exited,
      alive: () => alive,
      output: () => out.slice(-OUTPUT_KEEP_BYTES),
      async kill() {
        if (alive) proc.kill("SIGKILL");
        await exited;
      },
    };
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let ready = false;
    while (alive && Date.now() < deadline) {
      try {
        const res = await fetch(`${child.base}/health`, { signal: AbortSignal.timeout(1000) });
        await res.text().catch(() => "");
        // 200 from *this* child: another process may have taken the port between freePort() and
        // the child's bind (the child then exits with EADDRINUSE and we retry on another port).
        if (res.status === 200 && alive && ownsListener(proc.pid!, port) !== false) {
          // pulsedb may listen before its engine is open (/health alive, /ready 503 while the WAL
          // is replayed): wait for /ready too where it exists (404 = no such route: /health is it).
          const r = await fetch(`${child.base}/ready`, { signal: AbortSignal.timeout(1000) });
          await r.text().catch(() => "");
          if (r.status === 200 || r.status === 404) {
            ready = true;
            break;
          }
        }
      } catch {
        // not listening yet
      }
      // Bounded readiness poll: wait for the next try or for the child's exit, whichever is first.
      await Promise.race([exited, delay(50)]);
    }
    if (ready) return child;
    if (!alive) {
      await exited;
      if (/EADDRINUSE/.test(out) && attempt < 3) continue; // lost the free-port race: another port
      return child; // the caller decides (crash point during recovery, or a failed start)
    }
    await child.kill();
    throw new Error(`pulsedb did not answer GET /health within ${READY_TIMEOUT_MS} ms; its output:\n${child.output()}`);
  }
}

/**
 * Whether process `pid` holds the socket listening on 127.0.0.1:`port` (Linux, via /proc);
 * undefined where /proc cannot tell.
 */
function ownsListener(pid: number, port: number): boolean | undefined {
  let inodes: Set<string>;
  try {
    inodes = new Set<string>();
    let listeners = 0;
    const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
    for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      if (!fs.existsSync(f)) continue;
      for (const line of fs.readFileSync(f, "utf8").split("\n").slice(1)) {
        const cols = line.trim().split(/\s+/);
        if (cols.length > 9 && cols[3] === "0A") {
          listeners++;
          if (cols[1].endsWith(hex)) inodes.add(cols[9]);
        }
      }
    }
    if (listeners === 0) return undefined; // /proc does not show sockets here
    if (inodes.size === 0) return false;
  } catch {
    return undefined; // no /proc/net/tcp: cannot tell
  }
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      let link: string;
      try {
        link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && inodes.has(m[1])) return true;
    }
    return false;
  } catch {
    return false; // the process is gone (or not ours to inspect)
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errText(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  return `${e?.name ?? "Error"}: ${e?.message ?? String(err)}${
    e?.cause ? ` (${e.cause.code ?? e.cause.message})` : ""
  }`;
}

function isTimeout(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  return name === "TimeoutError" || name === "AbortError";
}

function isRefused(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string } })?.cause;
  return cause?.code === "ECONNREFUSED";
}

// ---------------------------------------------------------------------------------------------
// Generation

/** Timestamp text of a ms value, in one of a few equivalent RFC 3339 spellings. */
function tsText(ms: number, rng: Rng): string {
  const r = rng.next();
  if (r < 0.6) return new Date(ms).toISOString(); // 2024-01-15T10:00:10.000Z
  if (r < 0.85) return new Date(ms).toISOString().slice(0, 19) + "Z"; // no fraction
  const shifted = new Date(ms + 2 * 3_600_000).toISOString().slice(0, 19);
  return `${shifted}+02:00`;
}

function heartRate(rng: Rng): number {
  return Math.round((40 + rng.next() * 150) * 100) / 100; // 2 decimals, 40..190
}

/** One writer loop's persistent state: its slice of timestamps and the identities it wrote. */
interface WriterState {
  index: number;
  count: number;
  history: Array<{ user: string; device: string; slot: number }>;
}

function single(values: readonly Outcome[] | undefined): number | undefined {
  return values !== undefined && values.length === 1 && values[0] !== null ? values[0] : undefined;
}

function genReadings(w: WriterState, rng: Rng, model: Model, n: number): GenReading[] {
  const out: GenReading[] = [];
  const perWriter = Math.floor((SLOTS - 1 - w.index) / w.count) + 1;
  for (let i = 0; i < n; i++) {
    let id: { user: string; device: string; slot: number };
    if (out.length > 0 && rng.chance(0.04)) {
      id = rng.pick(out); // a duplicate inside the batch (the later element must win)
    } else if (w.history.length > 0 && rng.chance(0.25)) {
      id = rng.pick(w.history); // re-send of an identity this loop wrote before (maybe rounds ago)
    } else {
      id = { user: rng.pick(USERS), device: rng.pick(DEVICES), slot: w.index + w.count * rng.int(0, perWriter - 1) };
      if (w.history.length < HISTORY_CAP) w.history.push(id);
      else w.history[rng.int(0, HISTORY_CAP - 1)] = id;
    }
    // Sometimes the same value again (an idempotent re-send), usually a different one.
    const prev = out.findLast((r) => r.user === id.user && r.device === id.device && r.slot === id.slot)?.hr ??
      single(model.stream(id.user, id.device).get(id.slot));
    const hr = prev !== undefined && rng.chance(0.3) ? prev : heartRate(rng);
    out.push({
      user: id.user,
      device: id.device,
      slot: id.slot,
      hr,
      tsText: tsText(SPAN_START + id.slot * SLOT_MS, rng),
    });
  }
  return out;
}

function toJson(r: GenReading): Record<string, unknown> {
  return { user_id: r.user, device_id: r.device, timestamp: r.tsText, heart_rate: r.hr };
}

// ---------------------------------------------------------------------------------------------
// The run

class Recorder {
  readonly violations: Violation[] = [];
  readonly byKind: Partial<Record<ViolationKind, number>> = {};
  private readonly rounds = new Set<number>();
  /** Acknowledged identities (user|device|slot) found missing or wrong at least once. */
  readonly lostKeys = new Set<string>();
  count = 0;
  constructor(private readonly verbose: boolean, private readonly log: (line: string) => void) {}
  add(round: number, kind: ViolationKind, detail: string): void {
    this.count++;
    this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
    const firstOfRound = !this.rounds.has(round);
    this.rounds.add(round);
    // Keep the first 500, plus every crash / timeout and the first violation of each round.
    if (this.violations.length < 500 || firstOfRound || kind === "crash" || kind === "timeout") {
      this.violations.push({ round, kind, detail });
    }
    if (this.verbose) this.log(`  VIOLATION round ${round} ${kind}: ${detail}`);
  }
}

interface RoundCtx {
  round: number;
  child: Child;
  stop: boolean;
  /** Verbose-only remarks. */
  note: (line: string) => void;
}

/**
 * Sometimes a writer erases instead of writing: one slot it owns (so no other loop writes those
 * identities meanwhile) for one user, one device or all of them, as a range [slot, slot + 10 s).
 * Returns false when the loop must stop (as after a failed POST).
 */
async function deleteOne(ctx: RoundCtx, w: WriterState, rng: Rng, model: Model, rec: Recorder): Promise<boolean> {
  const id = rng.pick(w.history);
  const devices = rng.chance(0.5) ? [id.device] : [...DEVICES];
  const ids = devices.map((device) => ({ user: id.user, device, slot: id.slot }));
  const start = SPAN_START + id.slot * SLOT_MS;
  const params = new URLSearchParams({
    user_id: id.user,
    start: new Date(start).toISOString(),
    end: new Date(start + SLOT_MS).toISOString(),
  });
  if (devices.length === 1) params.set("device_id", devices[0]);
  try {
    const res = await fetch(`${ctx.child.base}/metrics/heart-rate?${params}`, {
      method: "DELETE",
      signal: AbortSignal.timeout(WRITE_TIMEOUT_MS),
    });
    const text = await res.text().catch(() => "");
    if (res.status === 200) model.deleted(ids);
    else {
      model.maybeDeleted(ids);
      if (res.status !== 503) rec.add(ctx.round, "http", `DELETE answered ${res.status}: ${text.slice(0, 300)}`);
    }
    return true;
  } catch (err) {
    if (isRefused(err)) return false;
    model.maybeDeleted(ids);
    if (isTimeout(err)) rec.add(ctx.round, "timeout", `DELETE got no answer in ${WRITE_TIMEOUT_MS} ms`);
    return false;
  }
}

async function writerLoop(ctx: RoundCtx, w: WriterState, rng: Rng, model: Model, rec: Recorder): Promise<void> {
  while (!ctx.stop && ctx.child.alive()) {
    if (w.history.length > 0 && rng.chance(0.05)) {
      if (!(await deleteOne(ctx, w, rng, model, rec))) return;
      continue;
    }
    const single = rng.chance(0.35);
    const n = single ? 1 : rng.chance(0.3) ? rng.int(1, 10) : rng.int(1, 200);
    const readings = genReadings(w, rng, model, n);
    const body = JSON.stringify(single ? toJson(readings[0]) : readings.map(toJson));
    let status: number;
    try {
      const res = await fetch(`${ctx.child.base}/metrics/heart-rate`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(WRITE_TIMEOUT_MS),
      });
      status = res.status;
      const text = await res.text().catch(() => "");
      if (status !== 200 && status !== 503) {
        rec.add(ctx.round, "http", `POST answered ${status}: ${text.slice(0, 300)}`);
      }
    } catch (err) {
      if (isRefused(err)) return; // never reached the server: nothing stored
      model.unknown(readings);
      if (isTimeout(err)) {
        rec.add(ctx.round, "timeout", `POST of ${n} readings got no answer in ${WRITE_TIMEOUT_MS} ms`);
      } else if (ctx.child.alive() && !ctx.stop) {
        // A reset while the server lives (e.g. a keep-alive race): the request may still be running,
        // so this loop stops writing for the round (a later write of the same identity could
        // overtake it). Not a violation by itself: the outcome is recorded as unknown.
        await Promise.race([ctx.child.exited, delay(200)]);
        if (ctx.child.alive()) {
          ctx.note(`writer ${w.index}: POST failed while the server was up (${errText(err)}); loop stopped`);
        }
      }
      return;
    }
    if (status === 200) {
      model.acked(readings);
    } else {
      // 503 (overload / WAL failure): nothing should be stored, but unknown is the safe reading.
      model.unknown(readings);
      if (status >= 500 && status !== 503) return;
    }
  }
}

async function readerLoop(ctx: RoundCtx, rng: Rng, rec: Recorder): Promise<void> {
  const buckets: Array<[string, number]> = [["10s", 10_000], ["30s", 30_000], ["1m", 60_000], ["5m", 300_000], [
    "1h",
    3_600_000,
  ], ["1d", 86_400_000]];
  while (!ctx.stop && ctx.child.alive()) {
    const user = rng.pick(USERS);
    const device = rng.chance(0.5) ? rng.pick(DEVICES) : undefined;
    const [bucket, bucketMs] = rng.pick(buckets);
    const a = SPAN_START + rng.int(0, SLOTS - 1) * SLOT_MS;
    const len = Math.min(rng.int(1, SLOTS) * SLOT_MS, MAX_BUCKETS * bucketMs);
    const b = Math.min(SPAN_END + 86_400_000, a + len);
    const qs = new URLSearchParams({
      user_id: user,
      start: new Date(a).toISOString(),
      end: new Date(b).toISOString(),
      bucket,
    });
    if (device) qs.set("device_id", device);
    try {
      const res = await fetch(`${ctx.child.base}/metrics/heart-rate?${qs}`, {
        signal: AbortSignal.timeout(QUERY_TIMEOUT_MS),
      });
      const text = await res.text();
      if (res.status !== 200 && res.status !== 404) {
        rec.add(ctx.round, "http", `GET ?${qs} answered ${res.status}: ${text.slice(0, 300)}`);
      }
    } catch (err) {
      if (isTimeout(err)) rec.add(ctx.round, "timeout", `GET ?${qs} got no answer in ${QUERY_TIMEOUT_MS} ms`);
      return; // the child died (or hangs): stop reading
    }
  }
}

/** The server answered, but not as the contract says. */
class AnswerError extends Error {}

/** Buckets of one query over the whole span (split so no request exceeds MAX_BUCKETS). */
async function fetchBuckets(
  base: string,
  user: string,
  device: string | undefined,
): Promise<Map<number, { hr: number; device: string }>> {
  const out = new Map<number, { hr: number; device: string }>();
  const chunk = MAX_BUCKETS * SLOT_MS;
  for (let a = SPAN_START; a < SPAN_END; a += chunk) {
    const b = Math.min(SPAN_END, a + chunk);
    const qs = new URLSearchParams({
      user_id: user,
      start: new Date(a).toISOString(),
      end: new Date(b).toISOString(),
      bucket: "10s",
    });
    if (device) qs.set("device_id", device);
    const res = await fetch(`${base}/metrics/heart-rate?${qs}`, { signal: AbortSignal.timeout(QUERY_TIMEOUT_MS) });
    const text = await res.text();
    if (res.status === 404) continue;
    if (res.status !== 200) throw new AnswerError(`GET ?${qs} answered ${res.status}: ${text.slice(0, 300)}`);
    let body: {
      user_id: string;
      data: Array<{ timestamp: string; heart_rate: number; device_id: string }>;
      count: number;
    };
    try {
      body = JSON.parse(text);
    } catch {
      throw new AnswerError(`GET ?${qs}: answer is not JSON: ${text.slice(0, 200)}`);
    }
    if (body.user_id !== user || !Array.isArray(body.data) || body.count !== body.data.length) {
      throw new AnswerError(
        `GET ?${qs}: malformed answer (user_id ${body.user_id}, count ${body.count}, ${body.data?.length} entries)`,
      );
    }
    let prev = -Infinity;
    for (const p of body.data) {
      const ms = Date.parse(p.timestamp);
      if (
        !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(p.timestamp) || !(ms >= a && ms < b) ||
        (ms - SPAN_START) % SLOT_MS !== 0 || ms <= prev
      ) {
        throw new AnswerError(`GET ?${qs}: bad or unordered bucket timestamp ${p.timestamp}`);
      }
      if (device !== undefined && p.device_id !== device) {
        throw new AnswerError(`GET ?${qs}: bucket ${p.timestamp} names device ${p.device_id}`);
      }
      prev = ms;
      out.set((ms - SPAN_START) / SLOT_MS, { hr: p.heart_rate, device: p.device_id });
    }
  }
  return out;
}

function fmtSet(values: readonly Outcome[]): string {
  return `{${values.map((v) => (v === null ? "absent" : String(v))).join(", ")}}`;
}

/** Compares every user and device with the model; returns the acknowledged identities checked. */
async function verifyAll(base: string, round: number, label: string, model: Model, rec: Recorder): Promise<number> {
  let checked = 0;
  for (const user of USERS) {
    const per = new Map<string, Map<number, { hr: number; device: string }>>();
    let noDev: Map<number, { hr: number; device: string }>;
    try {
      for (const d of DEVICES) per.set(d, await fetchBuckets(base, user, d));
      noDev = await fetchBuckets(base, user, undefined);
    } catch (err) {
      if (!(err instanceof AnswerError)) throw err; // no answer at all (the server died or hangs): the caller reports
      rec.add(round, "http", `${label}: verification query for ${user}: ${err.message}`);
      continue;
    }
    const where = (d: string, slot: number) =>
      `${label}: ${user}/${d} @ ${new Date(SPAN_START + slot * SLOT_MS).toISOString()}`;
    for (const d of DEVICES) {
      const got = per.get(d)!;
      const expect = model.stream(user, d);
      for (const [slot, values] of expect) {
        const definite = !values.includes(null);
        if (definite) checked++;
        const actual = got.get(slot);
        if (actual === undefined) {
          if (definite) {
            rec.lostKeys.add(`${user}|${d}|${slot}`);
            rec.add(round, "missing", `${where(d, slot)}: acknowledged reading missing (allowed ${fmtSet(values)})`);
          }
          continue;
        }
        if (!values.some((v) => v !== null && Math.abs(v - actual.hr) <= TOLERANCE)) {
          if (definite) rec.lostKeys.add(`${user}|${d}|${slot}`);
          rec.add(round, "wrong-value", `${where(d, slot)}: heart_rate ${actual.hr}, allowed ${fmtSet(values)}`);
        }
      }
      for (const [slot, actual] of got) {
        if (!expect.has(slot)) {
          rec.add(round, "phantom", `${where(d, slot)}: bucket with heart_rate ${actual.hr} that was never sent`);
        }
      }
    }
    // Without device_id: the highest-priority device present in the per-device answers, same value.
    const slots = new Set<number>(noDev.keys());
    for (const m of per.values()) for (const s of m.keys()) slots.add(s);
    for (const slot of slots) {
      const best = DEVICES.find((d) => per.get(d)!.has(slot));
      const actual = noDev.get(slot);
      const t = new Date(SPAN_START + slot * SLOT_MS).toISOString();
      if (best === undefined) {
        rec.add(
          round,
          "phantom",
          `${label}: ${user} @ ${t}: bucket without device_id (${actual!.device} ${actual!.hr}) but no device has one`,
        );
      } else if (actual === undefined) {
        rec.add(round, "priority", `${label}: ${user} @ ${t}: no bucket without device_id, but ${best} has one`);
      } else if (actual.device !== best || Math.abs(actual.hr - per.get(best)!.get(slot)!.hr) > TOLERANCE) {
        rec.add(
          round,
          "priority",
          `${label}: ${user} @ ${t}: without device_id got ${actual.device} ${actual.hr}, expected ${best} ${
            per.get(best)!.get(slot)!.hr
          }`,
        );
      }
    }
  }
  return checked;
}

/** Polls /metrics until the memtables are empty (the replayed WAL is flushed to runs); bounded. */
async function waitFlushed(base: string): Promise<boolean> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    const m = /^pulsedb_memtable_rows (\S+)$/m.exec(text);
    if (m && Number(m[1]) === 0) return true;
    await delay(50);
  }
  return false;
}

function crashFiredIn(output: string): boolean {
  return /crash point \S+ reached/.test(output);
}

function defaultSchedule(rounds: number, rng: Rng): Array<string | null> {
  const out: Array<string | null> = [];
  let next = 0;
  for (let r = 0; r < rounds; r++) {
    if (r % 3 === 2) {
      out.push(null);
      continue;
    }
    const point = CRASH_POINTS[next++ % CRASH_POINTS.length];
    // Hits per run of the writers: one per POST for the WAL point; a few per second for the others.
    const n = point === "wal-after-append"
      ? rng.int(1, 100)
      : point.startsWith("compaction")
      ? rng.int(1, 3)
      : rng.int(1, 5);
    out.push(`${point}:${n}`);
  }
  return out;
}

/**
 * Runs the crash test. Never throws for a violation: they are in the result. Throws only when the
 * driver itself cannot run (e.g. the first start of pulsedb fails).
 *
 * @example
 * ```ts
 * const result = await runCrashTest({ rounds: 3, seed: 7 });
 * if (result.violationCount > 0) console.error(result.violations);
 * ```
 */
export async function runCrashTest(opts: CrashTestOptions = {}): Promise<CrashTestResult> {
  const rounds = opts.rounds ?? 20;
  const seed = (opts.seed ?? Date.now() % 2 ** 31) >>> 0;
  const log = opts.log ?? ((line: string) => console.log(line));
  const verbose = opts.verbose ?? false;
  const writers = opts.writers ?? 6;
  const readers = opts.readers ?? 2;
  const [killLo, killHi] = opts.killAfterMs ?? [300, 1500];
  const maxCrashWaitMs = opts.maxCrashWaitMs ?? 4000;
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "pulsedb-crash-"));
  fs.mkdirSync(dataDir, { recursive: true });
  const rng = new Rng(seed);
  const schedule = opts.schedule ? [...opts.schedule] : defaultSchedule(rounds, rng);
  const model = new Model();
  const rec = new Recorder(verbose, log);
  const writerStates: WriterState[] = Array.from(
    { length: writers },
    (_, i) => ({ index: i, count: writers, history: [] }),
  );
  const reports: RoundReport[] = [];
  let checkedTotal = 0;
  const childLine = verbose ? (tag: string) => (line: string) => log(`    [${tag}] ${line}`) : () => undefined;
  if (verbose) log(`crash test: seed ${seed}, data dir ${dataDir}`);

  /**
   * Starts pulsedb without a crash point, compares everything with the model (again once the
   * replayed WAL is flushed, if `settle`), then stops it: SIGKILL, or SIGTERM expecting exit 0.
   */
  const verifyWithRestart = async (
    round: number,
    settle: boolean,
    stop: "kill" | "term",
  ): Promise<{ checked: number; fatal: boolean }> => {
    let checked = 0;
    const label = round > rounds ? (stop === "kill" ? "final restart" : "after clean shutdown") : "after restart";
    const verifier = await startChild(childEnv(dataDir, rng.int(300, 2000), null), childLine(`r${round} verify`));
    if (!verifier.alive()) {
      const { code, signal } = await verifier.exited;
      rec.add(round, "crash", `pulsedb did not restart (exit ${code ?? signal}); output:\n${verifier.output()}`);
      return { checked, fatal: true };
    }
    try {
      checked += await verifyAll(verifier.base, round, label, model, rec);
      if (settle) {
        if (await waitFlushed(verifier.base)) {
          checked += await verifyAll(verifier.base, round, `${label}, replay flushed`, model, rec);
        } else rec.add(round, "timeout", `${label}: replayed memtable not flushed within ${SETTLE_TIMEOUT_MS} ms`);
      }
    } catch (err) {
      await Promise.race([verifier.exited, delay(1000)]);
      if (!verifier.alive()) {
        const { code, signal } = await verifier.exited;
        rec.add(
          round,
          "crash",
          `${label}: pulsedb died during verification (exit ${code ?? signal}; ${
            errText(err)
          }); output:\n${verifier.output()}`,
        );
      } else {
        rec.add(
          round,
          isTimeout(err) ? "timeout" : "http",
          `${label}: verification failed: ${errText(err)}; output:\n${verifier.output()}`,
        );
      }
    }
    if (stop === "kill" || !verifier.alive()) {
      await verifier.kill();
      return { checked, fatal: false };
    }
    verifier.proc.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = await Promise.race([
      verifier.exited,
      new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), READY_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (ended === undefined) {
      rec.add(
        round,
        "timeout",
        `${label}: pulsedb did not exit within ${READY_TIMEOUT_MS} ms of SIGTERM; output:\n${verifier.output()}`,
      );
      await verifier.kill();
    } else if (
      ended.code !== 0 && !(isDeno() && ended.signal === "SIGTERM" && /"msg":"closed"/.test(verifier.output()))
    ) {
      // (Deno's child_process reports the signal it sent instead of the child's exit code 0; there,
      // the child's own "closed" log line is the proof of a clean shutdown.)
      rec.add(
        round,
        "crash",
        `${label}: pulsedb exited ${ended.code ?? ended.signal} on SIGTERM (expected 0); output:\n${verifier.output()}`,
      );
    }
    return { checked, fatal: false };
  };

  let fatal = false;
  try {
    for (let round = 1; round <= rounds && !fatal; round++) {
      const started = Date.now();
      const spec = schedule.length > 0 ? schedule[(round - 1) % schedule.length] : null;
      const memtableRows = rng.int(300, 2000);
      const violationsBefore = rec.count;
      const unknownBefore = model.unknownReadings;

      // 1. Write phase: pulsedb with the crash point armed, concurrent writers and readers.
      const child = await startChild(childEnv(dataDir, memtableRows, spec), childLine(`r${round} write`));
      let death: string;
      let crashFired = false;
      const ctx: RoundCtx = { round, child, stop: false, note: (line) => verbose && log(`  note: ${line}`) };
      if (!child.alive()) {
        const { code, signal } = await child.exited;
        if (spec && signal === "SIGKILL" && crashFiredIn(child.output())) {
          crashFired = true;
          death = "crash point during start-up";
        } else {
          rec.add(round, "crash", `pulsedb did not start (exit ${code ?? signal}); output:\n${child.output()}`);
          fatal = true;
          death = "did not start";
        }
      } else {
        const loops: Promise<void>[] = [];
        for (const w of writerStates) {
          loops.push(writerLoop(ctx, w, new Rng(seed ^ (round * 7919 + w.index * 104729)), model, rec));
        }
        for (let i = 0; i < readers; i++) loops.push(readerLoop(ctx, new Rng(seed ^ (round * 31337 + i * 613)), rec));
        const waitMs = spec ? maxCrashWaitMs : rng.int(killLo, killHi);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeUp = new Promise<"time">((resolve) => (timer = setTimeout(() => resolve("time"), waitMs)));
        const first = await Promise.race([child.exited.then(() => "died" as const), timeUp]);
        clearTimeout(timer);
        if (first === "died") {
          const { code, signal } = await child.exited;
          if (spec && signal === "SIGKILL" && crashFiredIn(child.output())) {
            crashFired = true;
            death = "crash point";
          } else {
            death = "unexpected exit";
            rec.add(
              round,
              "crash",
              `pulsedb exited by itself (exit ${code ?? signal}) while serving; output:\n${child.output()}`,
            );
          }
        } else {
          death = spec ? "crash point not reached, random kill" : "random kill";
          await child.kill(); // SIGKILL with requests in flight
        }
        ctx.stop = true;
        await Promise.all(loops);
      }

      // 2. Restart on the same directory (no crash point) and compare with the model; then SIGKILL
      // the verifier too (another crash, at whatever recovery flush or compaction is doing).
      let checked = 0;
      if (!fatal) {
        const v = await verifyWithRestart(round, round % 2 === 0, "kill");
        checked = v.checked;
        if (v.fatal) fatal = true;
      }
      checkedTotal += checked;
      const report: RoundReport = {
        round,
        crashPoint: spec,
        crashFired,
        death: death!,
        ackedSoFar: model.ackedReadings,
        checked,
        unknown: model.unknownReadings - unknownBefore,
        violations: rec.count - violationsBefore,
        ms: Date.now() - started,
      };
      reports.push(report);
      const what = spec ? `${spec} (${report.death})` : report.death;
      log(
        `round ${String(round).padStart(String(rounds).length)}/${rounds}  ${what.padEnd(52)} acked ${
          String(report.ackedSoFar).padStart(8)
        }  ` +
          `checked ${String(checked).padStart(7)}  unknown ${String(report.unknown).padStart(5)}  ` +
          `${report.violations === 0 ? "ok" : `FAIL (${report.violations} violations)`}  ${report.ms} ms${
            fatal ? "  (pulsedb cannot start: stopping)" : ""
          }`,
      );
    }
    // 3. Final: after the last kill, restart, check, stop gracefully (SIGTERM: flush, exit 0), and
    // check once more after a clean restart.
    if (!fatal && reports.length > 0) {
      const before = rec.count;
      let checked = 0;
      const a = await verifyWithRestart(rounds + 1, true, "term");
      checked += a.checked;
      if (!a.fatal) checked += (await verifyWithRestart(rounds + 1, false, "term")).checked;
      checkedTotal += checked;
      const prefix = "final".padEnd(`round ${rounds}/${rounds}`.length);
      log(
        `${prefix}  ${"restart, check, SIGTERM, clean restart, check".padEnd(52)} acked ${
          String(model.ackedReadings).padStart(8)
        }  checked ${String(checked).padStart(7)}  ${
          rec.count === before ? "ok" : `FAIL (${rec.count - before} violations)`
        }`,
      );
    }
  } finally {
    for (const p of [...liveChildren]) p.kill("SIGKILL");
  }

  const passed = rec.count === 0;
  const keep = !passed || opts.keepDataDir === true || !ownDir;
  if (!keep) fs.rmSync(dataDir, { recursive: true, force: true });
  return {
    seed,
    dataDir,
    dataDirKept: keep,
    rounds: reports,
    ackedReadings: model.ackedReadings,
    ackedDeletes: model.ackedDeletes,
    checkedReadings: checkedTotal,
    lost: rec.lostKeys.size,
    violations: rec.violations,
    violationCount: rec.count,
    violationsByKind: rec.byKind,
  };
}

/** Human-readable report of violations (first `max`). */
export function describeViolations(result: CrashTestResult, max = 30): string {
  const kinds = Object.entries(result.violationsByKind).map(([k, n]) => `${k} ${n}`).join(", ");
  const lines = [`  by kind: ${kinds}`];
  // The first violation of each round (the earliest symptom), then the first `max` overall.
  const firstPerRound = new Map<number, Violation>();
  for (const v of result.violations) if (!firstPerRound.has(v.round)) firstPerRound.set(v.round, v);
  for (const v of firstPerRound.values()) lines.push(`  first in round ${v.round}: ${v.kind}: ${v.detail}`);
  lines.push(...result.violations.slice(0, max).map((v) => `  round ${v.round} ${v.kind}: ${v.detail}`));
  if (result.violationCount > max) lines.push(`  ... and ${result.violationCount - max} more`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Script entry

function parseArgs(argv: string[]): CrashTestOptions {
  const opts: CrashTestOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--rounds") opts.rounds = Number(value());
    else if (a === "--seed") opts.seed = Number(value());
    else if (a === "--verbose" || a === "-v") opts.verbose = true;
    else if (a === "--data-dir") opts.dataDir = path.resolve(value());
    else if (a === "--keep") opts.keepDataDir = true;
    else if (a === "--help" || a === "-h") {
      console.log(
        "usage: node --import tsx test/support/crash-driver.ts [--rounds N] [--seed S] [--verbose] [--data-dir DIR] [--keep]",
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (opts.rounds !== undefined && !(Number.isInteger(opts.rounds) && opts.rounds >= 1)) {
    throw new Error("--rounds must be a whole number >= 1");
  }
  if (opts.seed !== undefined && !Number.isFinite(opts.seed)) throw new Error("--seed must be a number");
  return opts;
}

async function main(): Promise<void> {
  let opts: CrashTestOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`crash-driver: ${(err as Error).message}`);
    process.exit(2);
  }
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      console.error(`crash-driver: ${sig}, stopping (children killed; data dir kept)`);
      process.exit(130);
    });
  }
  const t0 = Date.now();
  const result = await runCrashTest(opts);
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (result.violationCount === 0) {
    console.log(
      `crash test: ${result.rounds.length} rounds, ${result.checkedReadings} acknowledged readings checked, 0 lost (seed ${result.seed}, ${result.ackedReadings} acknowledged writes, ${secs} s)`,
    );
    process.exit(0);
  }
  console.log(
    `crash test: ${result.rounds.length} rounds, ${result.checkedReadings} acknowledged readings checked, ${result.lost} lost, ${result.violationCount} violations (seed ${result.seed})`,
  );
  console.log(describeViolations(result));
  const file = `${result.dataDir.replace(/[\\/]+$/, "")}.violations.txt`;
  try {
    fs.writeFileSync(file, result.violations.map((v) => `round ${v.round} ${v.kind}: ${v.detail}`).join("\n") + "\n");
    console.log(`all stored violations (first 500): ${file}`);
  } catch {
    // not important
  }
  console.log(`data dir kept for inspection: ${result.dataDir}`);
  process.exit(1);
}

const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && pathToFileURL(fs.realpathSync(process.argv[1])).href === import.meta.url;
  } catch {
    return false;
  }
})();
if (invokedDirectly) {
  main().catch((err) => {
    console.error(`crash-driver: ${(err as Error)?.stack ?? err}`);
    process.exit(1);
  });
}
