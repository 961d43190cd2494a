/**
 * Structured logs: one JSON object per line on stderr, `{"time","level","msg",...fields}`.
 *
 * `time` is ISO 8601 UTC with milliseconds, `level` one of debug/info/warn/error, `msg` a short
 * fixed event name ("recovered", "flush", "compaction", "listening", ...) and the remaining keys
 * the event's fields. An `Error` in a field becomes `{name, message, code?, stack?, cause?}`.
 * A line never spans lines (JSON escapes newlines), so `jq` and log shippers can read the stream.
 *
 * @module
 */

/** Log levels, from the most to the least verbose. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** A logger; `fields` are merged into the line. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Whether lines of `level` are written (check before building costly fields). */
  enabled(level: LogLevel): boolean;
}

/**
 * Creates a JSON-lines logger that drops lines below `level`.
 *
 * @param write where a finished line goes, without its newline (default: stderr).
 * @example
 * ```ts
 * const log = createLogger("info");
 * log.info("flush", { rows: 1000, ms: 12 });
 * // {"time":"2024-01-15T10:00:00.000Z","level":"info","msg":"flush","rows":1000,"ms":12}
 * ```
 */
export function createLogger(level: LogLevel, write: (line: string) => void = writeStderr): Logger {
  const min = RANK[level];
  const emit = (lvl: Exclude<LogLevel, "silent">, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    const line: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, msg };
    if (fields) {
      for (const k of Object.keys(fields)) {
        if (k === "time" || k === "level" || k === "msg") continue; // never let a field hide the envelope
        const v = fields[k];
        line[k] = v instanceof Error ? errorFields(v) : v;
      }
    }
    write(stringify(line));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    enabled: (l) => l !== "silent" && RANK[l] >= min,
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger("silent");

function errorFields(e: Error, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = { name: e.name, message: e.message };
  const code = (e as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (e.stack) out.stack = e.stack;
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof Error && depth < 3) out.cause = errorFields(cause, depth + 1);
  else if (cause !== undefined) out.cause = String(cause);
  return out;
}

/** JSON.stringify that never throws: BigInts become strings, cycles become "[circular]". */
function stringify(line: Record<string, unknown>): string {
  try {
    return JSON.stringify(line);
  } catch {
    const seen = new WeakSet<object>();
    return JSON.stringify(line, (_k, v) => {
      if (typeof v === "bigint") return v.toString();
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[circular]";
        seen.add(v);
      }
      return v;
    });
  }
}

function writeStderr(line: string): void {
  if (typeof process !== "undefined" && process.stderr) process.stderr.write(line + "\n");
  else console.error(line);
}
