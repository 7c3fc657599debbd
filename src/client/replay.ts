/**
 * Replaying a dead letter: a fresh run with the same input on the same tier's queue, linked from
 * the record (`replayedAs`). A pipeline runs its own workflow type again; a sub-job runs alone in
 * a jobs pipeline. Replaying twice returns the first replay (the replay's workflow ID is derived
 * from the record, and the start uses the existing run).
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { DeadLetter, DlqStore } from '../dlq/store';
import { PipelineKind, Tier, parseTaskQueue } from '../shared/constants';
import type { JobsPipelineInput } from '../shared/jobs';
import type { SluiceClient } from './index';
import { pipelineStartOptions } from './start-options';

/** No dead letter with this ID. */
export class DeadLetterNotFoundError extends Error {
  constructor(readonly id: string) {
    super(`no dead letter with id ${id}`);
    this.name = 'DeadLetterNotFoundError';
  }
}

/** What a replay started. */
export interface ReplayOutcome {
  id: string;
  replayedAs: string;
  runId: string | undefined;
  /** False when the record had been replayed before: the earlier replay is returned. */
  started: boolean;
}

function pipelineKindOf(workflowId: string): PipelineKind {
  const prefix = workflowId.split(':', 1)[0];
  return (Object.values(PipelineKind) as string[]).includes(prefix ?? '')
    ? (prefix as PipelineKind)
    : PipelineKind.jobs;
}

/** Workflow ID of the replay of `rec`. */
export function replayWorkflowId(rec: DeadLetter): string {
  return `${rec.workflowId}.replay-${rec.id}`;
}

/** Starts the replay of dead letter `id` and links it from the record. */
export async function replayDeadLetter(client: SluiceClient, store: DlqStore, id: string): Promise<ReplayOutcome> {
  const rec = await store.get(id);
  if (!rec) throw new DeadLetterNotFoundError(id);
  if (rec.replayedAs) return { id, replayedAs: rec.replayedAs, runId: undefined, started: false };

  const tier = parseTaskQueue(rec.taskQueue)?.tier ?? Tier.default;
  const tenant = rec.tenant ?? 'default';
  const workflowId = replayWorkflowId(rec);
  let workflowType = rec.workflowType;
  let args: unknown[] = [rec.input];
  if (rec.kind === 'sub-job') {
    workflowType = 'jobsPipelineWorkflow';
    const input: JobsPipelineInput = {
      tier,
      tenant,
      idempotencyKey: `replay-${rec.id}`,
      jobs: [{ activity: rec.activityType ?? 'unknown', input: rec.input, summary: `replay of ${rec.id}` }],
    };
    args = [input];
  }
  const kind = rec.kind === 'sub-job' ? PipelineKind.jobs : pipelineKindOf(rec.workflowId);
  let runId: string | undefined;
  let started = true;
  try {
    const handle = await client.temporal.workflow.start(workflowType, {
      workflowId,
      args,
      workflowIdConflictPolicy: 'USE_EXISTING',
      ...pipelineStartOptions(client.config, {
        kind,
        tier,
        tenant,
        summary: `replay of dead letter ${rec.id} (${rec.workflowId})`,
      }),
      // The queue it failed on, suffix included.
      taskQueue: rec.taskQueue,
    });
    runId = handle.firstExecutionRunId;
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    started = false;
  }
  await store.markReplayed(id, workflowId);
  return { id, replayedAs: workflowId, runId, started };
}
