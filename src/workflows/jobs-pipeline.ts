/**
 * A generic pipeline of sub-jobs: fan out any registered activities under a failure policy, then
 * tell the caller through the completion webhook. What the flow-control tests, the priority
 * benchmark and DLQ replays of single sub-jobs run.
 */
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { DeliverWebhookInput, DeliverWebhookResult } from '../activities/notify';
import type { DeadLetterStatus, FanOutOutcome } from '../shared/fan-out';
import { JobsPipelineInputSchema, type JobsPipelineInput } from '../shared/jobs';
import { activityOptionsFor, runSubJobs } from './fan-out';
import { parseWorkflowInput } from './input';
import { recordDeadLetter, withDeadLetterStatus } from './flow-control';
import { inTenantGate } from './tenant-gate';

export type { JobsPipelineInput };

/** Result of {@link jobsPipelineWorkflow}. */
export interface JobsPipelineResult {
  workflowId: string;
  succeeded: number;
  failed: FanOutOutcome<unknown>['failed'];
  results: unknown[];
  webhook?: DeliverWebhookResult;
  /** Set when a dead letter of this run could not be written (the record is lost). */
  deadLetter?: DeadLetterStatus;
}

const notify = proxyActivities<{ deliverWebhook(input: DeliverWebhookInput): Promise<DeliverWebhookResult> }>({
  ...activityOptionsFor('deliverWebhook'),
  summary: 'completion webhook',
});

/**
 * Runs `jobs` under `policy`, then delivers the completion webhook. A failure that exhausts
 * retries (here or in the webhook) is dead-lettered with the input, so `sluice dlq replay` can
 * start the same work again.
 */
export async function jobsPipelineWorkflow(rawInput: JobsPipelineInput): Promise<JobsPipelineResult> {
  // Bad input fails once, naming each field: no retry can fix it, and nothing ran to dead-letter.
  const input = parseWorkflowInput(JobsPipelineInputSchema, rawInput) as JobsPipelineInput;
  // One of the tenant's running places first, when its limits cap them (Stage="queued" meanwhile).
  return inTenantGate(() => runJobs(input), { takesRunPlace: true });
}

async function runJobs(input: JobsPipelineInput): Promise<JobsPipelineResult> {
  const workflowId = workflowInfo().workflowId;
  try {
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
    if (input.webhook) {
      result.webhook = await notify.deliverWebhook({
        url: input.webhook.url,
        tenant: input.tenant,
        event: 'pipeline.completed',
        data: { workflowId, succeeded: outcome.succeeded, failed: outcome.failed.length },
      });
    }
    return withDeadLetterStatus(result);
  } catch (err) {
    await recordDeadLetter(err, {
      kind: 'pipeline',
      input,
      tenant: input.tenant,
      maximumAttempts: activityOptionsFor('deliverWebhook').retry?.maximumAttempts,
    });
    throw err;
  }
}
