/**
 * Retention (`PULSE_RETENTION`): readings older than `now - retention` (the horizon) are never
 * answered, never accepted, and the runs of whole UTC days below the horizon are dropped.
 *
 * Contract: pure functions over a clock reading; the engine applies them (queries clamp their
 * start to the horizon, writes refuse expired readings, the background task drops expired runs by
 * a manifest edit and then unlinks them). A day only partly below the horizon stays on disk and
 * is filtered at query time until it expires whole.
 *
 * @module
 */
import { DAY_MS, type Reading } from "../reading.ts";
import type { RunMeta } from "./run.ts";

/**
 * The retention horizon: the oldest timestamp still kept (inclusive), or -Infinity without
 * retention.
 *
 * @example
 * ```ts
 * retentionHorizon(Date.UTC(2024, 1, 14), 30 * 86_400_000); // Date.UTC(2024, 0, 15)
 * retentionHorizon(Date.now(), undefined); // -Infinity
 * ```
 */
export function retentionHorizon(now: number, retentionMs: number | undefined): number {
  return retentionMs === undefined ? -Infinity : now - retentionMs;
}

/**
 * The indices of readings older than the horizon (they would never be answered).
 *
 * @example
 * ```ts
 * expiredIndices([{ userId: "u", deviceId: "d", ts: 5, heartRate: 70 }], 10); // [0]
 * ```
 */
export function expiredIndices(readings: readonly Reading[], horizon: number): number[] {
  const out: number[] = [];
  if (horizon === -Infinity) return out;
  for (let i = 0; i < readings.length; i++) if (readings[i].ts < horizon) out.push(i);
  return out;
}

/**
 * The runs whose whole UTC day lies below the horizon (every reading in them has expired).
 *
 * @example
 * ```ts
 * import { readManifest } from "./manifest.ts";
 * const manifest = await readManifest("/var/lib/pulsedb");
 * expiredRuns(manifest.runs, retentionHorizon(Date.now(), 30 * 86_400_000));
 * ```
 */
export function expiredRuns(runs: readonly RunMeta[], horizon: number): RunMeta[] {
  if (horizon === -Infinity) return [];
  return runs.filter((r) => Date.parse(`${r.day}T00:00:00Z`) + DAY_MS <= horizon);
}
