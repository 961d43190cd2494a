/**
 * Load generator and end-to-end check: the brief's `generate_data.py`, in TypeScript.
 *
 * Sends `--count` heart-rate readings (default 10,000) to a running pulsedb over about `--duration`
 * seconds (default 120), as single `POST /metrics/heart-rate` requests, then queries the API for every
 * user and device over several ranges and compares each answer with the one it computes itself from
 * what the server acknowledged.
 *
 *   npm run generate -- [--url http://127.0.0.1:8000] [--count 10000] [--duration 120] [--users 5]
 *                       [--concurrency 20] [--burst 200] [--seed 1]
 *                       [--priority device_a:1,device_b:2] [--no-verify]
 *   deno run -A bench/generate.ts [the same flags]
 *
 * What it sends (the same for the same `--seed`):
 * - readings of user_000..user_NNN from device_a, device_b and device_c (device_c is not in the default
 *   priority table); each device is worn in on/off windows, so some minutes have only one or two of
 *   them. Timestamps lie in 2024-01-15 10:00-10:30Z, mostly to the second, some to the millisecond, a
 *   few written with a UTC offset or with none; heart rates 30-220, some with decimals. Shuffled.
 * - `--count` includes ~5% exact duplicates (half of them right after the original, so often in flight
 *   together) and ~3% re-sends of an identity with a corrected heart_rate. A send whose value differs
 *   from a send of the same identity still in flight waits for that one's answer, so "the last accepted
 *   write" is well defined.
 * - on top of `--count`, a few invalid readings (heart rate out of range or a string, impossible,
 *   date-only or numeric timestamp, missing or bad id) that must be answered 400.
 *
 * Pacing: a token bucket spreads the steady traffic over `--duration` with at most `--concurrency`
 * requests in flight; about every 10 s a burst of `--burst` readings is fired at once (bursts carry at
 * most 30% of the traffic). A 503 is retried after its Retry-After (the contract's overload answer).
 * A progress line goes to stderr every second (every 5 s when stderr is not a terminal).
 *
 * Verification assumes the server holds no other readings of these users in that half hour, apart from
 * an earlier run with the same `--seed`, `--count` and `--users` (which leaves the same final values:
 * re-running is idempotent).
 *
 * Exit code: 0 all as expected; 1 a query answered wrongly, a valid reading not accepted, an invalid
 * one not answered 400, or a transport error; 2 bad flags or server unreachable.
 */
import process from "node:process";
import { flags, percentile } from "./support.ts";

const USAGE = "usage: npm run generate -- [--url URL] [--count N] [--duration SECONDS] [--users N] [--concurrency N] " +
  "[--burst N] [--seed N] [--priority device:rank,...] [--no-verify]";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
/** Simulated time: 2024-01-15T10:00:00Z plus 30 minutes. */
const BASE = Date.UTC(2024, 0, 15, 10, 0, 0);
const SPAN_MS = 30 * MINUTE;
const DEVICES = ["device_a", "device_b", "device_c"] as const;
/** Share of the readings each device sends. */
const DEVICE_WEIGHTS = [0.4, 0.4, 0.2];
/** Share of the wear windows in which each device is worn. */
const DEVICE_DUTY = [0.55, 0.7, 0.5];
/** Per device: offset from the true heart rate and noise amplitude (bpm). */
const DEVICE_BIAS = [
  { offset: 0, noise: 1 },
  { offset: 2, noise: 3 },
  { offset: -3, noise: 6 },
];
const DUPLICATE_SHARE = 0.05;
const CORRECTION_SHARE = 0.03;
const BURST_SHARE = 0.3;
const BURST_EVERY_MS = 10 * SECOND;
const REQUEST_TIMEOUT_MS = 30 * SECOND;
const MAX_ATTEMPTS = 8;
const MAX_RETRY_AFTER_MS = 5 * SECOND;
const TOLERANCE = 0.005 + 1e-9;

// ---------------------------------------------------------------------------------------------
// Options

/** Parsed command-line options. */
interface Options {
  url: string;
  count: number;
  durationMs: number;
  users: number;
  concurrency: number;
  burst: number;
  seed: number;
  priority: Map<string, number>;
  verify: boolean;
}

const KNOWN_FLAGS = new Set([
  "url",
  "count",
  "duration",
  "users",
  "concurrency",
  "burst",
  "seed",
  "priority",
  "no-verify",
  "help",
]);

/** Thrown for bad flags; main prints it with the usage line and exits 2. */
class UsageError extends Error {}

/** Reads the options from argv, or throws UsageError. */
function parseOptions(argv: string[]): Options {
  const f = flags(argv);
  for (const k of f.keys()) if (!KNOWN_FLAGS.has(k)) throw new UsageError(`unknown flag --${k}`);
  if (f.has("help")) throw new UsageError("");
  return {
    url: (f.get("url") ?? "http://127.0.0.1:8000").replace(/\/+$/, ""),
    count: intFlag(f, "count", 10_000, 1),
    durationMs: numberFlag(f, "duration", 120, 0.1) * SECOND,
    users: intFlag(f, "users", 5, 1),
    concurrency: intFlag(f, "concurrency", 20, 1),
    burst: intFlag(f, "burst", 200, 0),
    seed: intFlag(f, "seed", 1, 0),
    priority: parsePriority(f.get("priority") ?? "device_a:1,device_b:2"),
    verify: !f.has("no-verify"),
  };
}

function numberFlag(f: Map<string, string>, name: string, fallback: number, min: number): number {
  const raw = f.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got "${raw}"`);
  return n;
}

function intFlag(f: Map<string, string>, name: string, fallback: number, min: number): number {
  const n = numberFlag(f, name, fallback, min);
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} must be an integer, got "${f.get(name)}"`);
  return n;
}

/** "device_a:1,device_b:2" -> Map; the same syntax as PULSE_DEVICE_PRIORITY. */
function parsePriority(raw: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const pair of raw.split(",").filter(Boolean)) {
    const [device, rank] = pair.split(":");
    if (!device || !Number.isInteger(Number(rank))) throw new UsageError(`--priority: bad pair "${pair}"`);
    out.set(device, Number(rank));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Randomness

/** A PRNG returning floats in [0, 1). */
type Rng = () => number;

/** mulberry32: small, fast, deterministic 32-bit PRNG. */
function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [lo, hi]. */
function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

/** An index into `weights`, drawn in proportion to them. */
function pickWeighted(rng: Rng, weights: number[]): number {
  let r = rng() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i];
    if (r < 0) return i;
  }
  return weights.length - 1;
}

/** Fisher-Yates, in place. */
function shuffle<T>(rng: Rng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// Readings and what is sent

/** A reading as the model keeps it: the timestamp in epoch milliseconds (UTC). */
interface Reading {
  userId: string;
  deviceId: string;
  ts: number;
  heartRate: number;
}

type EventKind = "original" | "duplicate" | "correction" | "invalid";

/** One POST to send: its JSON body and, for a valid one, the reading it carries. */
interface SendEvent {
  kind: EventKind;
  body: string;
  /** Valid readings only. */
  reading?: Reading;
  /** Invalid readings only: what is wrong with it. */
  why?: string;
}

/** The identity of a reading: (user_id, device_id, timestamp). */
function identityKey(r: Pick<Reading, "userId" | "deviceId" | "ts">): string {
  return `${r.userId}|${r.deviceId}|${r.ts}`;
}

function userName(i: number): string {
  return `user_${String(i).padStart(3, "0")}`;
}

/** A span of simulated time, as offsets from BASE in ms. */
interface Window {
  from: number;
  to: number;
}

/** One device worn by one user: when, and how its heart rate looks. */
interface Wearer {
  userId: string;
  device: number;
  windows: Window[];
  worn: number;
  heart: HeartModel;
}

/** A user's heart rate over the half hour: baseline, slow wave, one exercise bout. */
interface HeartModel {
  baseline: number;
  amplitude: number;
  periodMs: number;
  phase: number;
  exercise: Window;
  exerciseBoost: number;
}

function heartModel(rng: Rng): HeartModel {
  const start = randInt(rng, 0, 25) * MINUTE;
  return {
    baseline: 58 + rng() * 20,
    amplitude: 4 + rng() * 12,
    periodMs: randInt(rng, 300, 900) * SECOND,
    phase: rng() * 2 * Math.PI,
    exercise: { from: start, to: start + randInt(rng, 2, 5) * MINUTE },
    exerciseBoost: 50 + rng() * 50,
  };
}

/** On/off windows of 1-6 minutes over the half hour; at least one is on. */
function wearWindows(rng: Rng, duty: number): Window[] {
  const windows: Window[] = [];
  for (let t = 0; t < SPAN_MS;) {
    const to = Math.min(SPAN_MS, t + randInt(rng, 1, 6) * MINUTE);
    if (rng() < duty) windows.push({ from: t, to });
    t = to;
  }
  if (windows.length === 0) windows.push({ from: 0, to: randInt(rng, 1, 6) * MINUTE });
  return windows;
}

function wearers(rng: Rng, users: number): Wearer[] {
  const out: Wearer[] = [];
  for (let u = 0; u < users; u++) {
    const heart = heartModel(rng);
    DEVICES.forEach((_, device) => {
      const windows = wearWindows(rng, DEVICE_DUTY[device]);
      out.push({ userId: userName(u), device, windows, worn: windows.reduce((s, w) => s + w.to - w.from, 0), heart });
    });
  }
  return out;
}

/** A heart rate in [30, 220] with 0, 1 or 2 decimals; rarely exactly a bound. */
function heartRateAt(rng: Rng, w: Wearer, offsetMs: number): number {
  const r = rng();
  if (r < 0.0005) return 30;
  if (r < 0.001) return 220;
  const h = w.heart;
  const bias = DEVICE_BIAS[w.device];
  const exercising = offsetMs >= h.exercise.from && offsetMs < h.exercise.to;
  const raw = h.baseline +
    h.amplitude * Math.sin((2 * Math.PI * offsetMs) / h.periodMs + h.phase) +
    (exercising ? h.exerciseBoost : 0) +
    bias.offset +
    bias.noise * (rng() * 2 - 1);
  return withDecimals(rng, Math.min(220, Math.max(30, raw)));
}

function withDecimals(rng: Rng, x: number): number {
  const r = rng();
  return Number(x.toFixed(r < 0.6 ? 0 : r < 0.9 ? 1 : 2));
}

/** A different heart rate for a re-send: off by 1-15 bpm, still in range. */
function corrected(rng: Rng, old: number): number {
  const delta = randInt(rng, 1, 15) * (rng() < 0.5 ? -1 : 1);
  let value = withDecimals(rng, Math.min(220, Math.max(30, old + delta)));
  if (value === old) value = old <= 200 ? old + 10 : old - 10;
  return value;
}

/** Picks a timestamp in the wearer's windows whose identity is not taken yet, and takes it. */
function freshTimestamp(rng: Rng, w: Wearer, taken: Set<string>): number {
  for (let attempt = 0;; attempt++) {
    const win = w.windows[pickWeighted(rng, w.windows.map((x) => x.to - x.from))];
    let offset = win.from + randInt(rng, 0, (win.to - win.from) / SECOND - 1) * SECOND;
    if (attempt >= 20 || rng() < 0.15) offset += randInt(rng, 1, 999); // millisecond precision
    const key = identityKey({ userId: w.userId, deviceId: DEVICES[w.device], ts: BASE + offset });
    if (!taken.has(key)) {
      taken.add(key);
      return BASE + offset;
    }
  }
}

/** A new reading of a random wearer, at a fresh identity. */
function newReading(rng: Rng, all: Wearer[], taken: Set<string>): Reading {
  const w = all[pickWeighted(rng, all.map((x) => x.worn * DEVICE_WEIGHTS[x.device]))];
  const ts = freshTimestamp(rng, w, taken);
  return { userId: w.userId, deviceId: DEVICES[w.device], ts, heartRate: heartRateAt(rng, w, ts - BASE) };
}

// Timestamp spellings

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

/** `2024-01-15T10:00:00Z`, or with `.mmm` when the milliseconds are not zero. */
function isoUtc(ts: number): string {
  const s = new Date(ts).toISOString();
  return ts % SECOND === 0 ? s.replace(".000Z", "Z") : s;
}

/** The same instant written in local time at a UTC offset (minutes), e.g. `...T11:00:00+01:00`. */
function isoWithOffset(ts: number, offsetMin: number): string {
  const local = new Date(ts + offsetMin * MINUTE).toISOString().slice(0, ts % SECOND === 0 ? 19 : 23);
  if (offsetMin === 0) return local;
  const abs = Math.abs(offsetMin);
  return `${local}${offsetMin < 0 ? "-" : "+"}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
}

/** Mostly `Z`; 3% at +01:00 or -05:00; 2% without an offset (taken as UTC). */
function spellTimestamp(rng: Rng, ts: number): string {
  const r = rng();
  if (r < 0.03) return isoWithOffset(ts, rng() < 0.5 ? 60 : -300);
  if (r < 0.05) return isoWithOffset(ts, 0);
  return isoUtc(ts);
}

/** The wire object of a reading, in the brief's field order; rarely with an extra, ignored field. */
function wireObject(rng: Rng, r: Reading): Record<string, unknown> {
  const obj: Record<string, unknown> = {
    device_id: r.deviceId,
    user_id: r.userId,
    timestamp: spellTimestamp(rng, r.ts),
    heart_rate: r.heartRate,
  };
  if (rng() < 0.03) obj.battery = randInt(rng, 5, 100);
  return obj;
}

/** The invalid readings, most important first; each must be answered 400. */
const INVALID_KINDS: Array<{ why: string; spoil: (o: Record<string, unknown>) => void }> = [
  { why: "heart_rate 250", spoil: (o) => (o.heart_rate = 250) },
  { why: "timestamp 2024-02-30T10:00:00Z", spoil: (o) => (o.timestamp = "2024-02-30T10:00:00Z") },
  { why: "heart_rate 29.9", spoil: (o) => (o.heart_rate = 29.9) },
  { why: 'heart_rate "75" (a string)', spoil: (o) => (o.heart_rate = "75") },
  { why: "timestamp 2024-01-15 (date only)", spoil: (o) => (o.timestamp = "2024-01-15") },
  { why: "heart_rate 220.01", spoil: (o) => (o.heart_rate = 220.01) },
  { why: "timestamp 1705312800 (a number)", spoil: (o) => (o.timestamp = 1705312800) },
  { why: "user_id missing", spoil: (o) => delete o.user_id },
  { why: 'device_id "device a" (a space)', spoil: (o) => (o.device_id = "device a") },
  { why: "heart_rate null", spoil: (o) => (o.heart_rate = null) },
];

/** How many of each kind of send a run makes. */
interface Mix {
  originals: number;
  duplicates: number;
  corrections: number;
  invalid: number;
}

function mixFor(count: number): Mix {
  const duplicates = Math.round(count * DUPLICATE_SHARE);
  const corrections = Math.round(count * CORRECTION_SHARE);
  const invalid = Math.max(5, Math.round(count / 1000));
  return { originals: count - duplicates - corrections, duplicates, corrections, invalid };
}

/** An event with the position it is sent at (sorted ascending). */
interface Placed {
  at: number;
  event: SendEvent;
}

/** Where a re-send of the original at position p goes: half right after it, half anywhere later. */
function laterPosition(rng: Rng, p: number, n: number): number {
  return rng() < 0.5 ? p + 0.5 + rng() * 30 : p + 0.5 + rng() * (n - p);
}

/**
 * The whole run, in sending order: shuffled originals, duplicates and corrections placed after their
 * original, and invalid readings scattered.
 */
function buildEvents(rng: Rng, opts: Options, mix: Mix): SendEvent[] {
  const all = wearers(rng, opts.users);
  const taken = new Set<string>();
  const originals = shuffle(rng, Array.from({ length: mix.originals }, () => newReading(rng, all, taken)));
  const n = originals.length;
  const placed: Placed[] = originals.map((r, i) => ({
    at: i,
    event: { kind: "original", reading: r, body: JSON.stringify(wireObject(rng, r)) },
  }));
  for (let i = 0; i < mix.duplicates; i++) {
    const p = randInt(rng, 0, n - 1);
    placed.push({ at: laterPosition(rng, p, n), event: { ...placed[p].event, kind: "duplicate" } });
  }
  for (let i = 0; i < mix.corrections; i++) {
    const p = randInt(rng, 0, n - 1);
    const r = { ...originals[p], heartRate: corrected(rng, originals[p].heartRate) };
    placed.push({
      at: laterPosition(rng, p, n),
      event: { kind: "correction", reading: r, body: JSON.stringify(wireObject(rng, r)) },
    });
  }
  for (let i = 0; i < mix.invalid; i++) {
    const kind = INVALID_KINDS[i % INVALID_KINDS.length];
    const obj = wireObject(rng, newReading(rng, all, taken));
    kind.spoil(obj);
    placed.push({ at: rng() * n, event: { kind: "invalid", why: kind.why, body: JSON.stringify(obj) } });
  }
  return placed.sort((a, b) => a.at - b.at).map((p) => p.event);
}

// ---------------------------------------------------------------------------------------------
// Pacing plan

/** A run of consecutive events: paced steadily, or fired all at once at `atMs` after the start. */
type Segment = { kind: "steady"; from: number; to: number } | { kind: "burst"; from: number; to: number; atMs: number };

/** The pacing plan: segments in sending order, and the steady rate. */
interface Plan {
  segments: Segment[];
  steadyRate: number;
  bursts: number;
  burstSize: number;
}

/**
 * Bursts about every 10 s (at least one), each of at most `burst` events and together at most 30% of
 * the traffic; the rest at a steady rate that fills the duration.
 */
function planPacing(total: number, durationMs: number, burst: number): Plan {
  let bursts = burst > 0 ? Math.max(1, Math.round(durationMs / BURST_EVERY_MS)) : 0;
  const burstSize = bursts ? Math.min(burst, Math.floor((BURST_SHARE * total) / bursts)) : 0;
  if (burstSize < 2) bursts = 0;
  const steadyTotal = total - bursts * burstSize;
  const steadyRate = steadyTotal / (durationMs / SECOND);
  const segments: Segment[] = [];
  let cursor = 0;
  let steadySent = 0;
  const addSteady = (upTo: number) => {
    if (upTo > steadySent) segments.push({ kind: "steady", from: cursor, to: cursor + upTo - steadySent });
    cursor += Math.max(0, upTo - steadySent);
    steadySent = Math.max(steadySent, upTo);
  };
  for (let i = 0; i < bursts; i++) {
    const atMs = ((i + 0.5) * durationMs) / bursts;
    addSteady(Math.min(steadyTotal, Math.floor((atMs / SECOND) * steadyRate)));
    segments.push({ kind: "burst", from: cursor, to: cursor + burstSize, atMs });
    cursor += burstSize;
  }
  addSteady(steadyTotal);
  return { segments, steadyRate, bursts, burstSize: bursts ? burstSize : 0 };
}

// ---------------------------------------------------------------------------------------------
// Concurrency primitives

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Limits how many requests are in flight. */
class Semaphore {
  private waiting: Array<() => void> = [];
  constructor(private free: number) {}

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** Hands out `rate` tokens a second, holding at most `capacity`. */
class TokenBucket {
  private tokens = 1;
  private last = performance.now();
  constructor(
    private readonly rate: number,
    private readonly capacity: number,
  ) {}

  async take(): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / SECOND) * this.rate);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await sleep(Math.max(1, ((1 - this.tokens) / this.rate) * SECOND));
    }
  }
}

/**
 * Orders sends of one identity: a send waits for every send of the same identity still in flight
 * with a different heart rate (equal ones may overlap: whichever lands last, the value is the same).
 */
class IdentityGate {
  private inFlight = new Map<string, Array<{ value: number; done: Promise<void> }>>();

  /** Call synchronously at dispatch; await `ready`, then call `finish` once answered. */
  enter(key: string, value: number): { ready: Promise<unknown>; finish: () => void } {
    const list = this.inFlight.get(key) ?? [];
    const ready = Promise.all(list.filter((x) => x.value !== value).map((x) => x.done));
    let resolve!: () => void;
    const entry = { value, done: new Promise<void>((r) => (resolve = r)) };
    list.push(entry);
    this.inFlight.set(key, list);
    const finish = () => {
      const rest = list.filter((x) => x !== entry);
      list.length = 0;
      list.push(...rest);
      if (list.length === 0 && this.inFlight.get(key) === list) this.inFlight.delete(key);
      resolve();
    };
    return { ready, finish };
  }
}

// ---------------------------------------------------------------------------------------------
// Sending

/** The answer to one HTTP request; status 0 for a transport error. */
interface HttpAnswer {
  status: number;
  text: string;
  contentType: string;
  retryAfter: string | null;
  ms: number;
}

/** Counters shown in the progress line and the summary. */
class Stats {
  sent = 0;
  accepted = 0;
  rejected = 0;
  errors = 0;
  retries = 0;
  inFlight = 0;
  latencies: number[] = [];
  problems: string[] = [];

  problem(message: string): void {
    if (this.problems.length < 20) this.problems.push(message);
    else if (this.problems.length === 20) this.problems.push("(more problems not shown)");
  }
}

/** Shared state of a run. */
interface Run {
  opts: Options;
  stats: Stats;
  gate: IdentityGate;
  /** Identity -> the last value the server acknowledged. */
  model: Map<string, Reading>;
  /** Identities with a send that failed: the server may or may not hold it. */
  uncertain: Set<string>;
}

async function request(url: string, init: RequestInit = {}): Promise<HttpAnswer> {
  const started = performance.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await res.text();
    const headers = res.headers;
    return {
      status: res.status,
      text,
      contentType: headers.get("content-type") ?? "",
      retryAfter: headers.get("retry-after"),
      ms: performance.now() - started,
    };
  } catch (err) {
    return {
      status: 0,
      text: (err as Error).message,
      contentType: "",
      retryAfter: null,
      ms: performance.now() - started,
    };
  }
}

/** POSTs one body, retrying 503 after Retry-After (at most MAX_ATTEMPTS attempts). */
async function postReading(run: Run, body: string): Promise<HttpAnswer> {
  const url = `${run.opts.url}/metrics/heart-rate`;
  for (let attempt = 1;; attempt++) {
    const answer = await request(url, { method: "POST", headers: { "content-type": "application/json" }, body });
    run.stats.latencies.push(answer.ms);
    if (answer.status !== 503 || attempt >= MAX_ATTEMPTS) return answer;
    run.stats.retries++;
    const seconds = Number(answer.retryAfter ?? "1");
    await sleep(Math.min(MAX_RETRY_AFTER_MS, Number.isFinite(seconds) && seconds > 0 ? seconds * SECOND : SECOND));
  }
}

function describe(answer: HttpAnswer): string {
  return answer.status === 0 ? `transport error: ${answer.text}` : `${answer.status} ${answer.text.slice(0, 300)}`;
}

/** Sends one valid reading in identity order and records the acknowledged value. */
async function sendValid(run: Run, event: SendEvent): Promise<void> {
  const reading = event.reading!;
  const key = identityKey(reading);
  const { ready, finish } = run.gate.enter(key, reading.heartRate);
  try {
    await ready;
    const answer = await postReading(run, event.body);
    if (answer.status === 200) {
      run.model.set(key, reading);
      run.stats.accepted++;
      if (!/"status"\s*:\s*"accepted"/.test(answer.text)) {
        run.stats.problem(`200 with an unexpected body for ${event.body}: ${answer.text}`);
      }
    } else {
      run.uncertain.add(key);
      run.stats.errors++;
      run.stats.problem(`${event.kind} POST ${event.body} -> ${describe(answer)}`);
    }
  } finally {
    finish();
  }
}

/** Sends one invalid reading; anything but a 400 problem+json is an error. */
async function sendInvalid(run: Run, event: SendEvent): Promise<void> {
  const answer = await postReading(run, event.body);
  if (answer.status === 400) {
    run.stats.rejected++;
    if (!answer.contentType.includes("application/problem+json")) {
      run.stats.problem(`invalid (${event.why}): 400 but content-type "${answer.contentType}"`);
    }
  } else {
    run.stats.errors++;
    run.stats.problem(`invalid (${event.why}) POST ${event.body} -> ${describe(answer)} (expected 400)`);
  }
}

/** Starts one send; must be called synchronously in sending order (the identity gate relies on it). */
function dispatch(run: Run, event: SendEvent): Promise<void> {
  run.stats.sent++;
  run.stats.inFlight++;
  const task = event.kind === "invalid" ? sendInvalid(run, event) : sendValid(run, event);
  return task.finally(() => run.stats.inFlight--);
}

/** Sends every event following the plan; resolves when all are answered. */
async function sendAll(run: Run, events: SendEvent[], plan: Plan, startedAt: number): Promise<void> {
  const bucket = new TokenBucket(plan.steadyRate, Math.max(1, plan.steadyRate * 0.2));
  const slots = new Semaphore(run.opts.concurrency);
  const tasks: Promise<void>[] = [];
  for (const seg of plan.segments) {
    if (seg.kind === "burst") {
      await sleep(startedAt + seg.atMs - performance.now());
      for (let i = seg.from; i < seg.to; i++) tasks.push(dispatch(run, events[i]));
      continue;
    }
    for (let i = seg.from; i < seg.to; i++) {
      await bucket.take();
      await slots.acquire();
      tasks.push(dispatch(run, events[i]).finally(() => slots.release()));
    }
  }
  await Promise.all(tasks);
}

// ---------------------------------------------------------------------------------------------
// Progress

/** Prints a progress line every second; returns a function that stops it. */
function startProgress(stats: Stats, total: number, startedAt: number): () => void {
  const tty = Boolean(process.stderr.isTTY);
  let lastSent = 0;
  let lastAt = startedAt;
  let ticks = 0;
  const line = () => {
    const now = performance.now();
    const rate = ((stats.sent - lastSent) * SECOND) / Math.max(1, now - lastAt);
    lastSent = stats.sent;
    lastAt = now;
    return (
      `sent ${stats.sent}/${total}  accepted ${stats.accepted}  rejected ${stats.rejected}  errors ${stats.errors}` +
      `  in-flight ${stats.inFlight}  rate ${rate.toFixed(0)}/s  elapsed ${((now - startedAt) / SECOND).toFixed(1)}s`
    );
  };
  const timer = setInterval(() => {
    ticks++;
    if (tty) process.stderr.write(`\r${line()}\x1b[K`);
    else if (ticks % 5 === 0) process.stderr.write(`${line()}\n`);
  }, SECOND);
  return () => {
    clearInterval(timer);
    if (tty) process.stderr.write(`\r${line()}\x1b[K\n`);
  };
}

// ---------------------------------------------------------------------------------------------
// Verification

/** One GET to check. */
interface Query {
  userId: string;
  deviceId?: string;
  startMs: number;
  endMs: number;
  /** `start` as sent (some are spelled with an offset). */
  startParam: string;
  bucket: string;
  bucketMs: number;
}

/** One bucket of an answer. */
interface Point {
  timestamp: string;
  heart_rate: number;
  device_id: string;
}

/** One expected bucket: also the exact mean, which any correct rounding is within 0.005 of. */
interface ExpectedPoint extends Point {
  mean: number;
}

const BUCKET_MS: Record<string, number> = { "10s": 10 * SECOND, "1m": MINUTE, "5m": 5 * MINUTE };

function query(
  userId: string,
  fromMs: number,
  toMs: number,
  bucket = "1m",
  deviceId?: string,
  startParam?: string,
): Query {
  const startMs = BASE + fromMs;
  return {
    userId,
    deviceId,
    startMs,
    endMs: BASE + toMs,
    startParam: startParam ?? isoUtc(startMs),
    bucket,
    bucketMs: BUCKET_MS[bucket],
  };
}

/**
 * Per user: the whole half hour (1m and 5m), an aligned sub-range with `start` at +01:00, a range
 * not aligned to a minute, 10s buckets over two minutes, an hour before (404); then each device over
 * the whole range. Finally a user that never sent (404).
 */
function buildQueries(users: number): Query[] {
  const out: Query[] = [];
  for (let u = 0; u < users; u++) {
    const user = userName(u);
    out.push(query(user, 0, SPAN_MS));
    out.push(query(user, 5 * MINUTE, 17 * MINUTE, "1m", undefined, isoWithOffset(BASE + 5 * MINUTE, 60)));
    out.push(query(user, 3 * MINUTE + 27_250, 21 * MINUTE + 41 * SECOND));
    out.push(query(user, 0, SPAN_MS, "5m"));
    out.push(query(user, 10 * MINUTE, 12 * MINUTE, "10s"));
    out.push(query(user, -60 * MINUTE, -30 * MINUTE));
    for (const device of DEVICES) out.push(query(user, 0, SPAN_MS, "1m", device));
  }
  out.push(query("user_absent", 0, SPAN_MS));
  return out;
}

/** Ranks devices: configured ones by rank, then unlisted ones by id ascending. */
function compareDevices(priority: Map<string, number>, a: string, b: string): number {
  const ra = priority.get(a) ?? Infinity;
  const rb = priority.get(b) ?? Infinity;
  if (ra !== rb) return ra < rb ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function bucketIso(ts: number): string {
  return new Date(ts).toISOString().slice(0, 19) + "Z";
}

/** The answer the contract requires for `q`, computed from the model; [] means 404. */
function expectedPoints(readings: Iterable<Reading>, q: Query, priority: Map<string, number>): ExpectedPoint[] {
  const sums = new Map<number, Map<string, { sum: number; n: number }>>();
  for (const r of readings) {
    if (r.userId !== q.userId || r.ts < q.startMs || r.ts >= q.endMs) continue;
    if (q.deviceId !== undefined && r.deviceId !== q.deviceId) continue;
    const bucket = r.ts - (r.ts % q.bucketMs);
    const perDevice = sums.get(bucket) ?? new Map<string, { sum: number; n: number }>();
    const acc = perDevice.get(r.deviceId) ?? { sum: 0, n: 0 };
    acc.sum += r.heartRate;
    acc.n++;
    perDevice.set(r.deviceId, acc);
    sums.set(bucket, perDevice);
  }
  return [...sums.keys()]
    .sort((a, b) => a - b)
    .map((bucket) => {
      const perDevice = sums.get(bucket)!;
      const device = [...perDevice.keys()].sort((a, b) => compareDevices(priority, a, b))[0];
      const { sum, n } = perDevice.get(device)!;
      const mean = sum / n;
      return { timestamp: bucketIso(bucket), heart_rate: Math.round(mean * 100) / 100, device_id: device, mean };
    });
}

/** What differs between the answer and the expected points (empty when it is right). */
function differences(q: Query, answer: HttpAnswer, expected: ExpectedPoint[]): string[] {
  if (expected.length === 0) return answer.status === 404 ? [] : [`expected 404, got ${describe(answer)}`];
  if (answer.status !== 200) return [`expected 200 with ${expected.length} buckets, got ${describe(answer)}`];
  let body: { user_id?: unknown; data?: unknown; count?: unknown };
  try {
    body = JSON.parse(answer.text);
  } catch {
    return [`answer is not JSON: ${answer.text.slice(0, 200)}`];
  }
  const out: string[] = [];
  if (body.user_id !== q.userId) out.push(`user_id ${JSON.stringify(body.user_id)}`);
  if (!Array.isArray(body.data)) return [...out, `data is not an array`];
  const data = body.data as Point[];
  if (body.count !== data.length) out.push(`count ${body.count} but data has ${data.length}`);
  if (data.length !== expected.length) out.push(`${data.length} buckets, expected ${expected.length}`);
  return [...out, ...pointDifferences(data, expected)];
}

/**
 * Whether `got` is `mean` rounded to 2 decimals: at most 2 decimals and within 0.005 of the mean, so
 * either rule for ties (half up, half to even) and float noise pass.
 */
function roundsTo(got: unknown, mean: number): boolean {
  if (typeof got !== "number") return false;
  const cents = got * 100;
  return Math.abs(cents - Math.round(cents)) < 1e-6 && Math.abs(got - mean) <= TOLERANCE;
}

/** Bucket-by-bucket differences, matched by timestamp. */
function pointDifferences(data: Point[], expected: ExpectedPoint[]): string[] {
  const out: string[] = [];
  const got = new Map(data.map((p) => [p.timestamp, p]));
  for (let i = 1; i < data.length; i++) {
    if (!(data[i - 1].timestamp < data[i].timestamp)) out.push(`not sorted at index ${i}`);
  }
  for (const e of expected) {
    const g = got.get(e.timestamp);
    if (!g) out.push(`${e.timestamp} missing (expected ${e.device_id} ${e.heart_rate})`);
    else if (g.device_id !== e.device_id || !roundsTo(g.heart_rate, e.mean)) {
      out.push(
        `${e.timestamp}: got ${g.device_id} ${g.heart_rate}, expected ${e.device_id} ${e.heart_rate} (mean ${e.mean})`,
      );
    }
    got.delete(e.timestamp);
  }
  for (const extra of got.values()) out.push(`${extra.timestamp} unexpected (${extra.device_id} ${extra.heart_rate})`);
  return out;
}

/** `10:03:27.250` style, trimmed to `10:03` when seconds are zero. */
function clock(ts: number): string {
  const iso = new Date(ts).toISOString();
  if (ts % SECOND !== 0) return iso.slice(11, 23);
  return ts % MINUTE !== 0 ? iso.slice(11, 19) : iso.slice(11, 16);
}

function label(q: Query): string {
  const offset = q.startParam.endsWith("Z") ? "" : ` (start ${q.startParam})`;
  return `${q.userId} device=${q.deviceId ?? "*"} ${clock(q.startMs)}-${clock(q.endMs)} ${q.bucket}${offset}`;
}

function queryUrl(base: string, q: Query): string {
  const params = new URLSearchParams({
    user_id: q.userId,
    start: q.startParam,
    end: isoUtc(q.endMs),
    bucket: q.bucket,
  });
  if (q.deviceId !== undefined) params.set("device_id", q.deviceId);
  return `${base}/metrics/heart-rate?${params}`;
}

/** How many uncertain identities fall in a query's range (they may explain a failure). */
function uncertainIn(run: Run, q: Query): number {
  let n = 0;
  for (const key of run.uncertain) {
    const [user, device, ts] = key.split("|");
    if (user === q.userId && (q.deviceId === undefined || device === q.deviceId) && +ts >= q.startMs && +ts < q.endMs) {
      n++;
    }
  }
  return n;
}

/** Runs every query, prints a verdict per query and returns how many failed. */
async function verify(run: Run): Promise<{ total: number; failed: number }> {
  const queries = buildQueries(run.opts.users);
  const readings = [...run.model.values()];
  const winners = new Map<string, number>();
  let failed = 0;
  for (const q of queries) {
    const expected = expectedPoints(readings, q, run.opts.priority);
    if (q.deviceId === undefined) {
      for (const p of expected) winners.set(p.device_id, (winners.get(p.device_id) ?? 0) + 1);
    }
    const answer = await request(queryUrl(run.opts.url, q));
    const diffs = differences(q, answer, expected);
    if (diffs.length === 0) {
      console.log(`PASS ${label(q)} ${expected.length ? `${expected.length} buckets` : "404 (no data)"}`);
      continue;
    }
    failed++;
    const unsure = uncertainIn(run, q);
    console.log(`FAIL ${label(q)}${unsure ? ` (${unsure} readings with failed POSTs in range)` : ""}`);
    for (const d of diffs.slice(0, 5)) console.log(`     ${d}`);
    if (diffs.length > 5) console.log(`     ... ${diffs.length - 5} more`);
    console.log(`     GET ${queryUrl(run.opts.url, q)}`);
  }
  const won = [...winners].sort(([a], [b]) => compareDevices(run.opts.priority, a, b)).map(([d, n]) => `${d} ${n}`);
  console.log(`priority: buckets answered per device in the device=* queries: ${won.join(", ")}`);
  return { total: queries.length, failed };
}

/** Warns when the server already holds readings of these users (verification may then fail). */
async function warnAboutExistingData(opts: Options): Promise<void> {
  const found: string[] = [];
  for (let u = 0; u < opts.users; u++) {
    const answer = await request(queryUrl(opts.url, query(userName(u), 0, SPAN_MS)));
    if (answer.status === 200) found.push(userName(u));
  }
  if (found.length) {
    console.error(
      `note: the server already holds readings of ${found.join(", ")} in 2024-01-15 10:00-10:30Z; ` +
        `the verification assumes they came from a run with the same --seed, --count and --users.`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Main

function ms(n: number): string {
  return `${n.toFixed(n < 10 ? 2 : 1)} ms`;
}

/** Prints what the send phase did; returns the number of errors. */
function reportSending(stats: Stats, mix: Mix, seconds: number): number {
  console.log(
    `sent ${stats.sent} POSTs in ${seconds.toFixed(1)} s (${(stats.sent / seconds).toFixed(1)}/s): ` +
      `accepted ${stats.accepted}, rejected ${stats.rejected}, errors ${stats.errors}, 503 retries ${stats.retries}`,
  );
  console.log(
    `POST latency: p50 ${ms(percentile(stats.latencies, 50))}, p99 ${ms(percentile(stats.latencies, 99))}, ` +
      `max ${ms(Math.max(...stats.latencies))} (${stats.latencies.length} requests)`,
  );
  console.log(`invalid readings: ${stats.rejected}/${mix.invalid} answered 400`);
  for (const p of stats.problems) console.log(`PROBLEM ${p}`);
  return stats.errors;
}

/** Waits (up to 60 s) until pulsedb is ready: /ready answers 503 while it replays its WAL. */
async function checkHealth(url: string): Promise<boolean> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const answer = await request(`${url}/ready`);
    if (answer.status === 200) return true;
    if (answer.status !== 503 || Date.now() > deadline) {
      console.error(`generate: ${url}/ready answered ${describe(answer)}; is pulsedb running?`);
      return false;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) console.error(`generate: ${err.message}`);
    console.error(USAGE);
    return 2;
  }
  if (!(await checkHealth(opts.url))) return 2;
  const mix = mixFor(opts.count);
  const events = buildEvents(mulberry32(opts.seed), opts, mix);
  const plan = planPacing(events.length, opts.durationMs, opts.burst);
  console.log(
    `generate: ${opts.count} readings (${mix.originals} new, ${mix.duplicates} exact duplicates, ${mix.corrections} corrections)` +
      ` + ${mix.invalid} invalid, ${opts.users} users x ${DEVICES.length} devices, seed ${opts.seed}, to ${opts.url}`,
  );
  console.log(
    `pacing: ${events.length - plan.bursts * plan.burstSize} steady at ${
      plan.steadyRate.toFixed(1)
    }/s (concurrency ${opts.concurrency})` +
      ` + ${plan.bursts} burst(s) of ${plan.burstSize}, over ${opts.durationMs / SECOND} s`,
  );
  if (opts.verify) await warnAboutExistingData(opts);

  const run: Run = { opts, stats: new Stats(), gate: new IdentityGate(), model: new Map(), uncertain: new Set() };
  const startedAt = performance.now();
  const stopProgress = startProgress(run.stats, events.length, startedAt);
  await sendAll(run, events, plan, startedAt);
  stopProgress();
  const sendSeconds = (performance.now() - startedAt) / SECOND;
  const errors = reportSending(run.stats, mix, sendSeconds);

  let failed = 0;
  if (opts.verify) {
    const result = await verify(run);
    failed = result.failed;
    console.log(`verify: ${result.total} queries, ${result.total - result.failed} passed, ${result.failed} failed`);
  }
  const totalSeconds = (performance.now() - startedAt) / SECOND;
  const ok = errors === 0 && failed === 0;
  console.log(
    `total: ${totalSeconds.toFixed(1)} s, ${ok ? "OK" : `NOT OK (${errors} send errors, ${failed} failed queries)`}`,
  );
  return ok ? 0 : 1;
}

process.exit(await main());
