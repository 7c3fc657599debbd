/**
 * A generic pipeline of sub-jobs: fan out any registered activities under a failure policy, then
 * tell the caller through the completion webhook. It has no stages and no outputs of its own;
 * otherwise it ends as every pipeline does (./pipeline.ts). What the flow-control tests, the priority
 * benchmark and DLQ replays of single sub-jobs run.
 */
import { patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { DeliverWebhookInput, DeliverWebhookResult } from '../activities/notify';
import type { DeadLetterStatus, FanOutOutcome } from '../shared/fan-out';
import type { WebhookOutcome } from '../shared/webhook';
import { JobsPipelineInputSchema, type JobsPipelineInput } from '../shared/jobs';
import { activityOptionsFor, runSubJobs } from './fan-out';
import { parseWorkflowInput } from './input';
import { JOBS_COMPLETION_PATCH, runPipeline, type Finished } from './pipeline';
import { inTenantGate } from './tenant-gate';

export type { JobsPipelineInput };

/** Result of {@link jobsPipelineWorkflow}. */
export interface JobsPipelineResult {
  workflowId: string;
  succeeded: number;
  failed: FanOutOutcome<unknown>['failed'];
  results: unknown[];
  /** What became of the completion webhook. */
  webhook?: WebhookOutcome;
  /** Set when a dead letter of this run could not be written (the record is lost). */
  deadLetter?: DeadLetterStatus;
}

const notify = proxyActivities<{ deliverWebhook(input: DeliverWebhookInput): Promise<DeliverWebhookResult> }>({
  ...activityOptionsFor('deliverWebhook'),
  summary: 'completion webhook',
});

/**
 * Runs `jobs` under `policy`, then delivers the completion webhook on the critical tier. A failure
 * that exhausts retries in the sub-jobs is dead-lettered with the input, so `sluice dlq replay`
 * can start the same work again; a webhook that cannot be delivered is dead-lettered on its own and
 * reported in `result.webhook`, and the run still completes (./pipeline.ts). Runs recorded before
 * {@link JOBS_COMPLETION_PATCH} delivered it on their own tier, where its failure failed the run.
 */
export async function jobsPipelineWorkflow(rawInput: JobsPipelineInput): Promise<JobsPipelineResult> {
  // Bad input fails once, naming each field: no retry can fix it, and nothing ran to dead-letter.
  const input = parseWorkflowInput(JobsPipelineInputSchema, rawInput) as JobsPipelineInput;
  // One of the tenant's running places first, when its limits cap them (Stage="queued" meanwhile).
  return inTenantGate(() => runJobs(input), { takesRunPlace: true });
}

async function runJobs(input: JobsPipelineInput): Promise<JobsPipelineResult> {
  const workflowId = workflowInfo().workflowId;
  // Whether the completion goes on the critical tier (asked once the sub-jobs are done).
  let onCritical = false;
  const work = async (): Promise<Finished<JobsPipelineResult>> => {
    const outcome = await runSubJobs<unknown>(input.jobs, {
      parentId: workflowId,
      window: input.window ?? 16,
      policy: input.policy ?? { kind: 'fail-fast' },
      ...(input.pack !== undefined ? { pack: input.pack } : {}),
    });
    const result: JobsPipelineResult = {
      workflowId,
      succeeded: outcome.succeeded,
      failed: outcome.failed,
      results: outcome.results,
    };
    onCritical = input.webhook !== undefined && patched(JOBS_COMPLETION_PATCH);
    if (input.webhook && !onCritical) {
      // Recorded runs: on the run's own tier, inside the work, so its failure fails the run.
      const r = await notify.deliverWebhook({
        url: input.webhook.url,
        tenant: input.tenant,
        event: 'pipeline.completed',
        data: { workflowId, succeeded: outcome.succeeded, failed: outcome.failed.length },
      });
      result.webhook = { delivered: true, status: r.status, attempt: r.attempt, idempotencyKey: r.idempotencyKey };
    }
    return { result, cleanupAfter: false };
  };
  return runPipeline(work, {
    rawInput: input,
    tenant: input.tenant,
    deadLetter: () => true,
    maximumAttempts: activityOptionsFor('deliverWebhook').retry?.maximumAttempts,
    ...(input.webhook ? { webhook: input.webhook } : {}),
    completion: (r) =>
      onCritical ? { kind: 'jobs', workflowId, succeeded: r.succeeded, failed: r.failed.length } : undefined,
  });
}
