/**
 * Burst activities: a tiny sleep that stands in for real work in `sluice demo burst` and
 * `npm run bench:autoscale`. No external system; it reports which attempt and which process
 * ran it, so a caller can count retries (failed attempts) across scale-downs.
 */
import { Context, activityInfo } from '@temporalio/activity';

/** Input of {@link BurstActivities.burstSleep}. */
export interface BurstSleepInput {
  /** Index of the sub-job in its burst. */
  index: number;
  /** How long the work takes, in milliseconds. */
  ms: number;
}

/** What one burst sub-job reports. */
export interface BurstSleepResult {
  index: number;
  /** 1 on the first try; more means earlier attempts failed or timed out. */
  attempt: number;
  /** Worker process that ran it. */
  pid: number;
  /** When this attempt began and ended its work (epoch ms): overlaps show how many ran at once. */
  startedAt: number;
  endedAt: number;
}

/** Dependencies of the burst activities (none yet; kept for the factory pattern). */
export type BurstDeps = Record<string, never>;

/** Creates the burst activities. */
export function createBurstActivities(_deps: BurstDeps = {}) {
  return {
    /** Sleeps `ms` (cancellable: a cancellation arrives with the next heartbeat), then reports the attempt. */
    async burstSleep(input: BurstSleepInput): Promise<BurstSleepResult> {
      const ctx = Context.current();
      const startedAt = Date.now();
      ctx.heartbeat(input.index);
      await ctx.sleep(Math.max(0, input.ms));
      return { index: input.index, attempt: activityInfo().attempt, pid: process.pid, startedAt, endedAt: Date.now() };
    },
  };
}

/** The burst activities' type, for `proxyActivities`. */
export type BurstActivities = ReturnType<typeof createBurstActivities>;
