/**
 * The packed sub-job runner of the fan-out (runs in the sandbox): up to `pack` sub-jobs of one
 * activity type go to one activity task of the pack runner (src/activities/pack), and each still
 * settles on its own, with its own result or failure.
 */
import { ApplicationFailure, type ActivityOptions } from '@temporalio/workflow';
import { durationMs } from '../shared/duration';
import { PACKED_ACTIVITY } from '../shared/constants';
import type { PackInput, PackOutcome, PackResult, SubJob } from '../shared/fan-out';
import { dispatchSubJob } from './flow-control';
import { withSubJobPermit } from './tenant-gate';

/** A failed packed sub-job, as the fan-out and the dead-letter queue read a failure. */
function packedFailure(outcome: Extract<PackOutcome, { ok: false }> | undefined): ApplicationFailure {
  if (!outcome) return ApplicationFailure.nonRetryable('the pack returned no outcome for this sub-job');
  return ApplicationFailure.create({
    type: outcome.type,
    message: outcome.message,
    nonRetryable: true,
    details: [{ attempts: outcome.attempts }],
  });
}

/**
 * A sub-job runner that packs up to `pack` sub-jobs of one activity type into one activity task
 * (the pack runner, src/activities/pack): sub-jobs launched in the same activation share a pack,
 * and each still settles on its own, with its own result or failure. Costs one extra promise per
 * sub-job; saves the server and the worker k−1 activity tasks per pack.
 */
export function packedRunner<R>(
  pack: number,
  optionsOf: (activity: string) => ActivityOptions,
): (job: SubJob) => Promise<R> {
  interface Waiter {
    job: SubJob;
    resolve: (value: R) => void;
    reject: (err: unknown) => void;
  }
  const open = new Map<string, Waiter[]>();
  let flushQueued = false;
  const send = (activity: string, waiters: Waiter[]) => {
    const base = optionsOf(activity);
    const first = waiters[0]?.job.summary;
    const last = waiters[waiters.length - 1]?.job.summary;
    const options: ActivityOptions = {
      ...base,
      // Sub-jobs run one after another: the pack gets each one's time.
      startToCloseTimeout: durationMs(base.startToCloseTimeout ?? '5 minutes') * waiters.length,
      summary: `${waiters.length} packed${first ? `: ${first}${last && last !== first ? ` … ${last}` : ''}` : ''}`,
    };
    const input: PackInput = {
      activity,
      inputs: waiters.map((w) => w.job.input),
      maxAttempts: base.retry?.maximumAttempts ?? 1,
    };
    // A pack is one activity task running its sub-jobs one after another: one permit of the cap.
    void withSubJobPermit(() => dispatchSubJob<PackResult>({ activity: PACKED_ACTIVITY, input }, options)).then(
      (result) =>
        waiters.forEach((w, i) => {
          const outcome = result.outcomes[i];
          if (outcome?.ok) w.resolve(outcome.value as R);
          else w.reject(packedFailure(outcome));
        }),
      (err: unknown) => waiters.forEach((w) => w.reject(err)),
    );
  };
  // Partly filled packs leave once the launching loop yields (same activation, same scope).
  const flush = () => {
    flushQueued = false;
    for (const [activity, waiters] of open) send(activity, waiters);
    open.clear();
  };
  return (job) =>
    new Promise<R>((resolve, reject) => {
      const waiters = open.get(job.activity) ?? [];
      waiters.push({ job, resolve, reject });
      if (waiters.length >= pack) {
        open.delete(job.activity);
        send(job.activity, waiters);
        return;
      }
      open.set(job.activity, waiters);
      if (!flushQueued) {
        flushQueued = true;
        void Promise.resolve().then(flush);
      }
    });
}
