/**
 * Named crash points for crash tests. Disabled unless `PULSE_CRASH_POINT` names one
 * (`point` crashes at its first hit, `point:N` at its Nth). The process then dies by SIGKILL at
 * that exact step, as a power cut would stop it: no handler runs, nothing is flushed.
 *
 * @module
 */

/** Every crash point the engine passes through, in the order a write reaches disk. */
export const CRASH_POINTS = [
  "wal-after-append",
  "flush-after-sink",
  "flush-after-rename",
  "manifest-before-rename",
  "manifest-after-rename",
  "flush-before-wal-delete",
  "compaction-after-sink",
  "compaction-after-rename",
  "compaction-after-manifest",
  "purge-after-manifest",
  "purge-before-retire",
] as const;

/** A crash point's name. */
export type CrashPoint = (typeof CRASH_POINTS)[number];

let armed: { point: string; remaining: number } | undefined;

/**
 * Arms one crash point (or disarms with undefined).
 *
 * @example
 * ```ts
 * armCrashPoint("flush-after-sink:2"); // die the second time a flush has sunk its run
 * ```
 */
export function armCrashPoint(spec: string | undefined): void {
  if (!spec) {
    armed = undefined;
    return;
  }
  const [point, n] = spec.split(":");
  if (!(CRASH_POINTS as readonly string[]).includes(point)) throw new Error(`unknown crash point "${point}"`);
  armed = { point, remaining: n ? Math.max(1, Number(n)) : 1 };
}

/**
 * Marks a step; kills the process if it is the armed crash point.
 *
 * @example
 * ```ts
 * crashPoint("manifest-after-rename");
 * ```
 */
export function crashPoint(point: CrashPoint): void {
  if (armed === undefined || armed.point !== point) return;
  if (--armed.remaining > 0) return;
  process.stderr.write(`pulsedb: crash point ${point} reached, killing the process\n`);
  process.kill(process.pid, "SIGKILL");
}
