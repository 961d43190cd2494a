/**
 * Configuration: every setting comes from an environment variable with a default, validated with
 * zod once at start-up. A bad value is reported with the variable's name; the caller exits non-zero.
 *
 * @module
 */
import * as fs from "node:fs";
import { z } from "zod";
import { ID_PATTERN } from "../reading.ts";

/** Device priorities: a lower number is a higher priority (1 is the highest). */
export type DevicePriority = ReadonlyMap<string, number>;

/** The validated configuration the engine and the HTTP layer run with. */
export interface Config {
  host: string;
  port: number;
  dataDir: string;
  devicePriority: DevicePriority;
  /** "always": a write is answered after the fsync covering it. "interval": after write(2); fsync every fsyncIntervalMs. */
  fsync: "always" | "interval";
  fsyncIntervalMs: number;
  /** Rows that make the active memtable full (it then becomes immutable and is flushed). */
  memtableRows: number;
  /** Age (ms) after which a non-empty memtable is flushed even if it is not full. */
  flushIntervalMs: number;
  /** Memory budget for all memtables, in bytes; at the budget, writes are answered 503. */
  memoryBudgetBytes: number;
  maxBodyBytes: number;
  cacheEntries: number;
  cacheBytes: number;
  /** How many runs of one day and level trigger a merge into the next level. */
  compactionTrigger: number;
  /** Turn background compaction off (tests and benchmarks that want to see raw runs). */
  compaction: boolean;
  /** A day with several runs and no flush for this long is merged into one run. */
  compactionSettleMs: number;
  logLevel: "debug" | "info" | "warn" | "error" | "silent";
  /** Start even if a WAL segment is corrupt in the middle, cutting it at the corruption. */
  walSalvage: boolean;
  /** Operator-requested recovery at start-up: "rebuild-manifest" rebuilds MANIFEST from the run files. */
  recovery: "none" | "rebuild-manifest";
  /** Test-only: the name of a crash point at which the process kills itself. */
  crashPoint: string | undefined;
  /** Queries run by Polars at once; more wait in line (keeps threads free for the WAL). */
  queryConcurrency: number;
  /** Access control: "on" requires bearer tokens on the data routes, /metrics and /tokens. */
  auth: "on" | "off";
  /** The admin token (set when `auth` is "on"); prints as "[redacted]" in logs and JSON. */
  adminToken: Secret | undefined;
  /** A file the audit lines are appended to; undefined: the audit lines go to the normal log. */
  auditLog: string | undefined;
  /** How long readings are kept (ms before now); undefined: forever. */
  retentionMs: number | undefined;
  /** A DELETE's readings are purged from every file within this many ms. */
  erasureDeadlineMs: number;
}

/** Shortest admin token accepted. */
export const MIN_ADMIN_TOKEN_LENGTH = 32;

/**
 * A secret string that never prints: `JSON.stringify`, string conversion and `util.inspect` all
 * give `"[redacted]"`; only {@link Secret.reveal} returns the value.
 *
 * @example
 * ```ts
 * const s = new Secret("x".repeat(32));
 * JSON.stringify({ s }); // '{"s":"[redacted]"}'
 * s.reveal();            // "xxxx..."
 * ```
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  /** The secret itself. */
  reveal(): string {
    return this.#value;
  }
  toJSON(): string {
    return "[redacted]";
  }
  toString(): string {
    return "[redacted]";
  }
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return "[redacted]";
  }
}

/**
 * Whether `host` is a loopback address: 127.0.0.0/8, `::1` (also bracketed or written out) or
 * `localhost`.
 *
 * @example
 * ```ts
 * isLoopbackHost("127.0.0.1"); // true
 * isLoopbackHost("0.0.0.0");   // false
 * ```
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = /^(?:::ffff:)?127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return v4 !== null && v4.slice(1).every((o) => Number(o) <= 255);
}

/** Raised for an invalid variable; `message` names the variable and the problem. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

const intIn = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/, "must be a whole number").transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const DURATION_UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration such as `30d`, `12h`, `90m`, `45s` into milliseconds; undefined when malformed.
 *
 * @example
 * ```ts
 * parseDuration("30d"); // 2592000000
 * parseDuration("30"); // undefined
 * ```
 */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d{1,9})([smhd])$/.exec(text.trim());
  if (!m || Number(m[1]) === 0) return undefined;
  return Number(m[1]) * DURATION_UNIT_MS[m[2]];
}

const duration = z.string().transform((raw, ctx) => {
  const ms = parseDuration(raw);
  if (ms === undefined) {
    ctx.addIssue({
      code: "custom",
      message: `bad duration "${raw}": expected a positive number with s, m, h or d (e.g. 30d)`,
    });
    return z.NEVER;
  }
  return ms;
});

const priorityList = z.string().transform((raw, ctx) => {
  const map = new Map<string, number>();
  for (const part of raw.split(",").map((p) => p.trim()).filter((p) => p.length > 0)) {
    const m = /^([^:]+(?::[^:]+)*):(\d+)$/.exec(part);
    if (!m || !ID_PATTERN.test(m[1]) || Number(m[2]) < 1) {
      ctx.addIssue({ code: "custom", message: `bad entry "${part}": expected device_id:priority with priority >= 1` });
      return z.NEVER;
    }
    if (map.has(m[1])) {
      ctx.addIssue({ code: "custom", message: `device "${m[1]}" listed twice` });
      return z.NEVER;
    }
    map.set(m[1], Number(m[2]));
  }
  return map as DevicePriority;
});

const schema = z.object({
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: intIn(0, 65535).default(8000),
  PULSE_DATA_DIR: z.string().min(1).default("./data"),
  PULSE_DEVICE_PRIORITY: priorityList.default(new Map([["device_a", 1], ["device_b", 2]])),
  PULSE_FSYNC: z.enum(["always", "interval"]).default("always"),
  PULSE_FSYNC_INTERVAL_MS: intIn(1, 60_000).default(100),
  PULSE_MEMTABLE_ROWS: intIn(1, 50_000_000).default(200_000),
  PULSE_FLUSH_INTERVAL_MS: intIn(10, 86_400_000).default(30_000),
  PULSE_MEMORY_BUDGET_MB: intIn(1, 1_000_000).default(256),
  PULSE_MAX_BODY_BYTES: intIn(1024, 1 << 30).default(4 * 1024 * 1024),
  PULSE_CACHE_ENTRIES: intIn(0, 10_000_000).default(1000),
  PULSE_CACHE_MB: intIn(0, 1_000_000).default(64),
  PULSE_COMPACTION_TRIGGER: intIn(2, 1000).default(4),
  PULSE_COMPACTION: z.enum(["on", "off"]).default("on"),
  PULSE_COMPACTION_SETTLE_MS: intIn(0, 86_400_000).default(60_000),
  PULSE_LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
  PULSE_WAL_SALVAGE: z.enum(["0", "1"]).default("0"),
  PULSE_RECOVERY: z.enum(["none", "rebuild-manifest"]).default("none"),
  PULSE_CRASH_POINT: z.string().optional(),
  PULSE_QUERY_CONCURRENCY: intIn(1, 1024).default(2),
  PULSE_AUTH: z.enum(["on", "off"]).optional(),
  PULSE_ADMIN_TOKEN: z.string().optional(),
  PULSE_ADMIN_TOKEN_FILE: z.string().optional(),
  PULSE_AUDIT_LOG: z.string().optional(),
  PULSE_RETENTION: z.string().transform((raw, ctx) => {
    if (raw.trim() === "unlimited") return undefined;
    const ms = parseDuration(raw);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: `bad retention "${raw}": expected e.g. 30d or 365d, or unlimited` });
      return z.NEVER;
    }
    return ms;
  }).optional(),
  PULSE_ERASURE_DEADLINE: duration.default(86_400_000),
});

/**
 * The environment variables pulsedb reads (the keys), each with its rule and default. The
 * configuration table of docs/operating.md documents them, one row each (test/ops/config-table.test.ts).
 *
 * @example
 * ```ts
 * Object.keys(ENV_SCHEMA.shape); // ["HOST", "PORT", "PULSE_DATA_DIR", ...]
 * ENV_SCHEMA.shape.PORT.parse(undefined); // 8000, the default
 * ```
 */
export const ENV_SCHEMA: typeof schema = schema;

/** Variables whose values are never printed. */
const SECRET_VARIABLES = new Set(["PULSE_ADMIN_TOKEN"]);

/**
 * Reads and validates the configuration.
 *
 * @param env the environment (defaults to the process's); empty strings count as unset.
 * @throws ConfigError naming every bad variable.
 * @example
 * ```ts
 * const config = loadConfig({ PORT: "9000" });
 * config.port; // 9000
 * ```
 */
export function loadConfig(env: Record<string, string | undefined> = readEnv()): Config {
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") cleaned[key] = value;
  }
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    // Each issue names the variable and the value given (never a secret's value).
    const lines = parsed.error.issues.map((i) => {
      const name = String(i.path[0] ?? "?");
      const shown = SECRET_VARIABLES.has(name) || cleaned[name] === undefined ? name : `${name}=${cleaned[name]}`;
      return `${shown}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration: ${lines.join("; ")}`);
  }
  const e = parsed.data;
  const access = accessControl(e);
  return {
    host: e.HOST,
    port: e.PORT,
    dataDir: e.PULSE_DATA_DIR,
    devicePriority: e.PULSE_DEVICE_PRIORITY,
    fsync: e.PULSE_FSYNC,
    fsyncIntervalMs: e.PULSE_FSYNC_INTERVAL_MS,
    memtableRows: e.PULSE_MEMTABLE_ROWS,
    flushIntervalMs: e.PULSE_FLUSH_INTERVAL_MS,
    memoryBudgetBytes: e.PULSE_MEMORY_BUDGET_MB * 1024 * 1024,
    maxBodyBytes: e.PULSE_MAX_BODY_BYTES,
    cacheEntries: e.PULSE_CACHE_ENTRIES,
    cacheBytes: e.PULSE_CACHE_MB * 1024 * 1024,
    compactionTrigger: e.PULSE_COMPACTION_TRIGGER,
    compaction: e.PULSE_COMPACTION === "on",
    compactionSettleMs: e.PULSE_COMPACTION_SETTLE_MS,
    logLevel: e.PULSE_LOG_LEVEL,
    walSalvage: e.PULSE_WAL_SALVAGE === "1",
    recovery: e.PULSE_RECOVERY,
    crashPoint: e.PULSE_CRASH_POINT,
    queryConcurrency: e.PULSE_QUERY_CONCURRENCY,
    retentionMs: e.PULSE_RETENTION,
    erasureDeadlineMs: e.PULSE_ERASURE_DEADLINE,
    ...access,
  };
}

/**
 * The start-up rules of access control. Messages name variables, never a token's value.
 */
function accessControl(
  e: {
    HOST: string;
    PULSE_AUTH?: "on" | "off";
    PULSE_ADMIN_TOKEN?: string;
    PULSE_ADMIN_TOKEN_FILE?: string;
    PULSE_AUDIT_LOG?: string;
  },
): Pick<Config, "auth" | "adminToken" | "auditLog"> {
  let auth = e.PULSE_AUTH;
  if (auth === undefined) {
    if (!isLoopbackHost(e.HOST)) {
      throw new ConfigError(
        `HOST=${e.HOST} is not a loopback address and PULSE_AUTH is not set: set PULSE_AUTH=on (with PULSE_ADMIN_TOKEN or PULSE_ADMIN_TOKEN_FILE) to require tokens, or PULSE_AUTH=off to serve without access control`,
      );
    }
    auth = "off";
  }
  const auditLog = e.PULSE_AUDIT_LOG;
  if (auth === "off") return { auth, adminToken: undefined, auditLog };
  if (e.PULSE_ADMIN_TOKEN !== undefined && e.PULSE_ADMIN_TOKEN_FILE !== undefined) {
    throw new ConfigError("invalid configuration: set only one of PULSE_ADMIN_TOKEN and PULSE_ADMIN_TOKEN_FILE");
  }
  let name = "PULSE_ADMIN_TOKEN";
  let token = e.PULSE_ADMIN_TOKEN;
  if (e.PULSE_ADMIN_TOKEN_FILE !== undefined) {
    name = "PULSE_ADMIN_TOKEN_FILE";
    try {
      token = fs.readFileSync(e.PULSE_ADMIN_TOKEN_FILE, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
      throw new ConfigError(
        `invalid configuration: PULSE_ADMIN_TOKEN_FILE: cannot read ${e.PULSE_ADMIN_TOKEN_FILE} (${code})`,
      );
    }
  }
  if (token === undefined) {
    throw new ConfigError(
      "invalid configuration: PULSE_AUTH=on needs an admin token: set PULSE_ADMIN_TOKEN or PULSE_ADMIN_TOKEN_FILE",
    );
  }
  if (token.length < MIN_ADMIN_TOKEN_LENGTH) {
    throw new ConfigError(
      `invalid configuration: ${name}: the admin token must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`,
    );
  }
  if (!/^[\x21-\x7e]+$/.test(token) || token.length > 4096) {
    throw new ConfigError(
      `invalid configuration: ${name}: the admin token must be at most 4096 printable ASCII characters without spaces`,
    );
  }
  return { auth, adminToken: new Secret(token), auditLog };
}

/**
 * A configuration for tests and embedding: the defaults with some fields replaced.
 *
 * @example
 * ```ts
 * const config = testConfig({ dataDir: "/tmp/x", compaction: false });
 * ```
 */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({}), logLevel: "silent", ...overrides };
}

function readEnv(): Record<string, string | undefined> {
  return typeof process !== "undefined" ? process.env : {};
}
