/**
 * What makes a pipeline start consistent, whoever started it (Sluice's client, a Go or Python
 * backend, the `temporal` CLI, a schedule): the task queue is its tier's, and the workflow ID is
 * `<kind>:<tenant>:<idempotencyKey>` of its own input. Pure checks, sandbox-safe; the pipelines
 * run them at their first workflow task and fail with a non-retryable InvalidInput.
 */
import { parseTaskQueue, pipelineWorkflowId, taskQueueFor, type PipelineKind, type Tier } from './constants';
import type { InputIssue } from './video';

/**
 * What may follow `<kind>:<tenant>:<key>` in a pipeline's workflow ID: the time a schedule appends
 * to each run's ID (`-2026-12-02T00:00:00Z`), then any number of dead-letter replays
 * (`.replay-<dead letter id>`).
 */
const ALLOWED_ID_TAIL = /^(-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)?(\.replay-[A-Za-z0-9_-]+)*$/;

/** The fields of a pipeline input the contract checks. */
export interface ContractInput {
  tier: Tier;
  tenant: string;
  idempotencyKey: string;
}

/** Problems with where and under which ID a pipeline was started; empty when consistent. */
export function startContractIssues(
  kind: PipelineKind,
  input: ContractInput,
  start: { workflowId: string; taskQueue: string },
): InputIssue[] {
  const issues: InputIssue[] = [];
  const queue = parseTaskQueue(start.taskQueue);
  if (queue?.tier !== input.tier) {
    const want = taskQueueFor(input.tier, queue?.suffix ?? '');
    issues.push({
      path: 'tier',
      message:
        `tier is ${input.tier} but the run was started on task queue ${start.taskQueue}: ` +
        `start it on ${want}${queue ? `, or set tier to ${queue.tier}` : ''}`,
    });
  }
  const id = pipelineWorkflowId(kind, input.tenant, input.idempotencyKey);
  if (!(start.workflowId.startsWith(id) && ALLOWED_ID_TAIL.test(start.workflowId.slice(id.length)))) {
    issues.push({
      path: 'workflowId',
      message:
        `workflow ID ${start.workflowId} does not match its input: ` +
        `a ${kind} pipeline for tenant ${input.tenant} with idempotencyKey ${input.idempotencyKey} must be started as ${id}`,
    });
  }
  return issues;
}
