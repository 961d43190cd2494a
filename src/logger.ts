/**
 * Structured logs: one JSON object per line on stderr, `{"time","level","msg",...fields}`.
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
  enabled(level: LogLevel): boolean;
}

/**
 * Creates a JSON-lines logger that drops lines below `level`.
 *
 * @param write where a finished line goes (default: stderr).
 * @example
 * ```ts
 * const log = createLogger("info");
 * log.info("flush done", { rows: 1000, ms: 12 });
 * ```
 */
export function createLogger(level: LogLevel, write: (line: string) => void = writeStderr): Logger {
  const min = RANK[level];
  const emit = (lvl: Exclude<LogLevel, "silent">, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    const line: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, msg };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) line[k] = v instanceof Error ? { message: v.message, code: (v as NodeJS.ErrnoException).code } : v;
    }
    write(JSON.stringify(line));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    enabled: (l) => RANK[l] >= min && l !== "silent",
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger("silent");

function writeStderr(line: string): void {
  if (typeof process !== "undefined" && process.stderr) process.stderr.write(line + "\n");
  else console.error(line);
}
