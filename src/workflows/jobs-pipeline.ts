/**
 * A generic pipeline of sub-jobs: fan out any registered activities under a failure policy, then
 * tell the caller through the completion webhook. What the flow-control tests, the priority
 * benchmark and DLQ replays of single sub-jobs run.
 */
import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { DeliverWebhookInput, DeliverWebhookResult } from '../activities/notify';
import { FailureType } from '../shared/constants';
import type { DeadLetterStatus, FailurePolicy, FanOutOutcome, SubJob } from '../shared/fan-out';
import { activityOptionsFor, runSubJobs } from './fan-out';
import { recordDeadLetter, withDeadLetterStatus } from './flow-control';

/** Input of {@link jobsPipelineWorkflow}. */
export interface JobsPipelineInput {
  tier: string;
  tenant: string;
  idempotencyKey: string;
  jobs: SubJob[];
  /** Sub-jobs in flight. @default 16 */
  window?: number;
  /**
   * Sub-jobs per activity task, 1 to 100, for tiny sub-jobs: up to this many of one activity type
   * run one after another in one task, each with its own result, attempts and failure. @default 1
   */
  pack?: number;
  /** @default fail-fast */
  policy?: FailurePolicy;
  /** Completion callback, POSTed when the pipeline completes. */
  webhook?: { url: string };
  /** 1 (first) to 5 within the tier's queue. @default from the tier */
  priorityKey?: number;
}

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
export async function jobsPipelineWorkflow(input: JobsPipelineInput): Promise<JobsPipelineResult> {
  if (!Array.isArray(input?.jobs) || input.jobs.length === 0) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      nonRetryable: true,
      message: 'jobs: at least one sub-job',
    });
  }
  const workflowId = workflowInfo().workflowId;
  try {
    const outcome = await runSubJobs<unknown>(input.jobs, {
      parentId: workflowId,
      window: input.window ?? 16,
      policy: input.policy ?? { kind: 'fail-fast' },
      batchWorkflowType: 'subJobBatchWorkflow',
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
