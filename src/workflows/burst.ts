/**
 * Burst workflow: fans out `jobs` short sleeps on the workflow's tier queue at once, so the
 * queue's backlog jumps and the autoscaler has something to do. Used by `sluice demo burst`
 * and `npm run bench:autoscale`.
 */
import { workflowInfo } from '@temporalio/workflow';
import type { BurstSleepInput, BurstSleepResult } from '../activities/burst';
import type { SubJob } from '../shared/fan-out';
import { runSubJobs, type ActivityName } from './fan-out';

/** Input of {@link burstWorkflow}. */
export interface BurstInput {
  /** Number of sub-jobs. */
  jobs: number;
  /** Duration of each sub-job, ms. */
  ms: number;
  /** Sub-jobs in flight at once. @default jobs (all at once: a burst) */
  window?: number;
  /** Sub-jobs per activity task (the fan-out's `pack`). @default 1 */
  pack?: number;
}

/** Result of {@link burstWorkflow}. */
export interface BurstResult {
  succeeded: number;
  failed: number;
  /** Attempts that did not succeed but were retried (sum of attempt − 1). */
  retriedAttempts: number;
  /** Sub-jobs per worker process id. */
  byProcess: Record<string, number>;
}

/** Runs a burst of sleeps and counts who ran them and how many attempts failed. */
export async function burstWorkflow(input: BurstInput): Promise<BurstResult> {
  const jobs: SubJob<ActivityName>[] = Array.from({ length: input.jobs }, (_, index) => ({
    activity: 'burstSleep',
    input: { index, ms: input.ms } satisfies BurstSleepInput,
    summary: `burst ${index + 1}/${input.jobs}`,
  }));
  const outcome = await runSubJobs<BurstSleepResult>(jobs, {
    window: input.window ?? input.jobs,
    policy: { kind: 'partial' },
    parentId: workflowInfo().workflowId,
    // A burst of up to 1,000 stays in one history (3 events per sub-job is well under the limits).
    batchThreshold: 1_000,
    ...(input.pack !== undefined ? { pack: input.pack } : {}),
  });
  const byProcess: Record<string, number> = {};
  let retriedAttempts = 0;
  for (const r of outcome.results) {
    if (!r) continue;
    byProcess[String(r.pid)] = (byProcess[String(r.pid)] ?? 0) + 1;
    retriedAttempts += r.attempt - 1;
  }
  return { succeeded: outcome.succeeded, failed: outcome.failed.length, retriedAttempts, byProcess };
}
