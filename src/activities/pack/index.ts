/**
 * Packed sub-jobs: one activity task that runs several tiny sub-jobs of one activity type, one
 * after another in one slot. For sub-jobs of a few hundred milliseconds, the per-task cost of a
 * durable queue (schedule, match, start, complete, a workflow task) dwarfs the work; a pack of k
 * pays it once for k sub-jobs while each sub-job keeps its own input, result, attempts and failure.
 *
 * - Each sub-job retries on its own, in the pack, with the worker's jittered backoff and its
 *   activity type's attempt budget; a non-retryable failure or a spent budget fails that sub-job
 *   only, and the pack goes on.
 * - Progress is checkpointed in the pack's heartbeat: a pack retried after a crash skips the
 *   sub-jobs already done, and hands the interrupted one its own last heartbeat. A sub-job during
 *   which the pack was lost on every one of its attempts fails on its own (Timeout).
 * - Inside a sub-job, `activityInfo()` reports that sub-job's attempt, and its heartbeats keep the
 *   pack alive. Cancelling the pack cancels the sub-job that runs.
 */
import { ApplicationFailure, CancelledFailure, Context, asyncLocalStorage } from '@temporalio/activity';
import { FailureType, PACKED_ACTIVITY } from '../../shared/constants';
import type { PackInput, PackOutcome, PackResult } from '../../shared/fan-out';
import { isRetryableFailure, type ActivityRetryPolicy } from '../retry';

/** What a pack checkpoints in its heartbeat. */
interface PackProgress {
  /** Outcomes of the sub-jobs done so far, in order. */
  packed: PackOutcome[];
  /** The running sub-job's own last heartbeat. */
  current?: unknown;
  /** Attempts the running sub-job has made so far, the running one included (a crash spends it). */
  attempts?: number;
}

export interface PackDeps {
  /** The activities a pack may run, by name (the worker's own registry). */
  activities: Readonly<Record<string, unknown>>;
  /** The worker's retry rules: backoff and per-type attempt budgets (src/activities/retry.ts). */
  retry: ActivityRetryPolicy;
}

function isProgress(d: unknown): d is PackProgress {
  return typeof d === 'object' && d !== null && Array.isArray((d as PackProgress).packed);
}

/**
 * The outcome of a sub-job that failed for good, named as an unpacked sub-job's failure would be:
 * as it failed, or RetriesExhausted when the worker's budget for its type (SLUICE_RETRY_POLICIES)
 * ran out rather than the workflow's attempt limit.
 */
function failedOutcome(err: unknown, attempts: number, retry: ActivityRetryPolicy, activity: string): PackOutcome {
  const budget = retry.budgetOf(activity);
  if (budget !== undefined && retry.isExhausted(err, attempts, activity)) {
    return {
      ok: false,
      type: FailureType.RetriesExhausted,
      message: retry.exhaustedMessage(activity, attempts, budget, err),
      attempts,
    };
  }
  const type =
    err instanceof ApplicationFailure ? (err.type ?? undefined) : err instanceof Error ? err.name : undefined;
  return { ok: false, ...(type ? { type } : {}), message: err instanceof Error ? err.message : String(err), attempts };
}

/** Sleeps `ms` (cancellable), heartbeating often enough for the pack's heartbeat timeout. */
async function waitHeartbeating(ctx: Context, ms: number, beat: () => void): Promise<void> {
  const step = Math.max(200, Math.floor((ctx.info.heartbeatTimeoutMs ?? 30_000) / 3));
  for (let left = ms; left > 0; left -= step) {
    await ctx.sleep(Math.min(step, left));
    beat();
  }
}

/** Creates the pack runner over the worker's activities. */
export function createPackActivities(deps: PackDeps) {
  return {
    /** Runs `input.inputs` through `input.activity`, one after another; one outcome per input. */
    [PACKED_ACTIVITY]: async (input: PackInput): Promise<PackResult> => {
      const fn = deps.activities[input.activity];
      if (typeof fn !== 'function' || input.activity === PACKED_ACTIVITY) {
        throw ApplicationFailure.create({
          type: FailureType.InvalidInput,
          nonRetryable: true,
          message: `pack: activity ${JSON.stringify(input.activity)} is not registered on this worker`,
        });
      }
      const run = fn as (arg: unknown) => Promise<unknown>;
      const ctx = Context.current();
      const prior = isProgress(ctx.info.heartbeatDetails) ? ctx.info.heartbeatDetails : undefined;
      const outcomes: PackOutcome[] = prior ? prior.packed.slice(0, input.inputs.length) : [];
      const typeBudget = deps.retry.budgetOf(input.activity);
      const budget = Math.max(1, Math.min(input.maxAttempts, typeBudget ?? Infinity));
      // The interrupted sub-job (if any) resumes after the attempts it made, with its own last heartbeat.
      let resumed = prior;
      // A copy: the worker may encode the details later (async codec), after more sub-jobs finished.
      const checkpoint = (current: unknown, attempts: number) =>
        ctx.heartbeat({ packed: outcomes.slice(), current, attempts } satisfies PackProgress);

      for (let i = outcomes.length; i < input.inputs.length; i++) {
        let attempts = resumed?.attempts ?? 0;
        let details = resumed?.current;
        resumed = undefined;
        if (attempts >= budget) {
          // Every attempt so far ended with the pack lost mid-run (a crash, a timeout): give up on
          // this sub-job rather than take the whole pack down with it again.
          outcomes.push({
            ok: false,
            type: FailureType.Timeout,
            message: `${input.activity}: the pack was lost during each of its ${attempts} attempts`,
            attempts,
          });
          checkpoint(undefined, 0);
          continue;
        }
        for (;;) {
          attempts++;
          const attempt = attempts;
          // The sub-job sees its own attempt and heartbeat; its heartbeats checkpoint the pack.
          const itemCtx = Object.create(ctx, {
            info: { value: { ...ctx.info, attempt, heartbeatDetails: details } },
            heartbeat: {
              value: (d?: unknown) => {
                details = d;
                checkpoint(d, attempt);
              },
            },
          }) as Context;
          try {
            const value = await asyncLocalStorage.run(itemCtx, () => run(input.inputs[i]));
            outcomes.push({ ok: true, value, attempts });
            break;
          } catch (err) {
            if (err instanceof CancelledFailure || ctx.cancellationSignal.aborted) throw err;
            if (!isRetryableFailure(err) || attempts >= budget) {
              outcomes.push(failedOutcome(err, attempts, deps.retry, input.activity));
              break;
            }
            checkpoint(details, attempts);
            await waitHeartbeating(ctx, deps.retry.nextDelayMs(err, attempts, input.activity), () =>
              checkpoint(details, attempts),
            );
          }
        }
        checkpoint(undefined, 0);
      }
      return { outcomes };
    },
  };
}

export type PackActivities = ReturnType<typeof createPackActivities>;
