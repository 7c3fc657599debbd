/**
 * Operations on many runs at once, chosen by a visibility query: cancel and terminate run as
 * Temporal batch operations (the server walks the query and acts, at its own paced rate, and
 * reports progress); replay starts a fresh run with the same input for each match, linked to the
 * original like a dead-letter replay.
 */
import crypto from 'node:crypto';
import { ServiceError, WorkflowExecutionAlreadyStartedError, isGrpcServiceError } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import { temporal } from '@temporalio/proto';
import { PipelineKind, Tier, isTier } from '../shared/constants';
import { PipelineKindKey, TenantKey, TierKey } from '../shared/search-attributes';
import { InvalidInputError, type SluiceClient } from './index';
import { pipelineStartOptions } from './start-options';

const { BatchOperationState } = temporal.api.enums.v1;
const GRPC_INVALID_ARGUMENT = 3;

/** A batch operation the server runs. */
export type BatchKind = 'cancel' | 'terminate';

/** Progress of a batch operation. */
export interface BatchProgress {
  jobId: string;
  state: 'running' | 'completed' | 'failed';
  total: number;
  done: number;
  failed: number;
}

function isInvalidArgument(err: unknown): boolean {
  const cause = err instanceof ServiceError ? err.cause : err;
  return isGrpcServiceError(cause) && Number(cause.code) === GRPC_INVALID_ARGUMENT;
}

function invalidQuery(query: string, err: unknown): InvalidInputError {
  const detail = (err instanceof ServiceError && err.cause instanceof Error ? err.cause : (err as Error)).message;
  return new InvalidInputError([
    {
      path: 'query',
      message: `malformed visibility query ${JSON.stringify(query)} (${detail.replace(/^\d+ \w+: /, '')})`,
    },
  ]);
}

/** Runs of `query` that a cancel or terminate would act on: the running ones. */
export function runningOnly(query: string): string {
  return `(${query}) AND ExecutionStatus = "Running"`;
}

/** How many runs match; a malformed query throws {@link InvalidInputError} naming `query`. */
export async function countByQuery(client: SluiceClient, query: string): Promise<number> {
  if (query.trim() === '') throw new InvalidInputError([{ path: 'query', message: 'must not be empty' }]);
  try {
    return (await client.temporal.workflow.count(query)).count;
  } catch (err) {
    if (isInvalidArgument(err)) throw invalidQuery(query, err);
    throw err;
  }
}

/** Starts a server-side batch cancel or terminate of the runs matching `query`; returns its job ID. */
export async function startBatch(
  client: SluiceClient,
  kind: BatchKind,
  query: string,
  opts: { reason: string; identity: string; maxOperationsPerSecond?: number },
): Promise<string> {
  const jobId = `sluice-${kind}-${new Date().toISOString().replace(/[:.]/g, '')}-${crypto.randomBytes(3).toString('hex')}`;
  try {
    await client.temporal.workflowService.startBatchOperation({
      namespace: client.temporal.options.namespace,
      jobId,
      visibilityQuery: query,
      reason: opts.reason,
      maxOperationsPerSecond: opts.maxOperationsPerSecond ?? 0,
      ...(kind === 'cancel'
        ? { cancellationOperation: { identity: opts.identity } }
        : { terminationOperation: { identity: opts.identity } }),
    });
  } catch (err) {
    if (isInvalidArgument(err)) throw invalidQuery(query, err);
    throw err;
  }
  return jobId;
}

/** Where a batch operation stands. */
export async function batchProgress(client: SluiceClient, jobId: string): Promise<BatchProgress> {
  const d = await client.temporal.workflowService.describeBatchOperation({
    namespace: client.temporal.options.namespace,
    jobId,
  });
  const state =
    d.state === BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
      ? 'completed'
      : d.state === BatchOperationState.BATCH_OPERATION_STATE_FAILED
        ? 'failed'
        : 'running';
  return {
    jobId,
    state,
    total: Number(d.totalOperationCount ?? 0),
    done: Number(d.completeOperationCount ?? 0),
    failed: Number(d.failureOperationCount ?? 0),
  };
}

/** Waits for a batch operation to finish, reporting progress every `pollMs`. */
export async function waitForBatch(
  client: SluiceClient,
  jobId: string,
  onProgress: (p: BatchProgress) => void,
  pollMs = 500,
): Promise<BatchProgress> {
  for (;;) {
    const p = await batchProgress(client, jobId);
    onProgress(p);
    if (p.state !== 'running') return p;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Workflow ID of the replay of run `runId` of `workflowId`. */
export function queryReplayWorkflowId(workflowId: string, runId: string): string {
  return `${workflowId}.replay-${runId}`;
}

/** What {@link replayByQuery} did. */
export interface ReplaySummary {
  matched: number;
  started: number;
  /** Replayed before: the earlier replay stands. */
  existing: number;
  failed: { workflowId: string; runId: string; error: string }[];
  replays: { workflowId: string; runId: string; replayedAs: string }[];
}

/**
 * For every run matching `query`, starts a fresh run of the same workflow type with the same input
 * on the same queue, tenant and tier, with ID `<workflowId>.replay-<runId>` (so replaying twice
 * starts nothing new) and a memo linking back to the original.
 */
export async function replayByQuery(
  client: SluiceClient,
  query: string,
  opts: { concurrency?: number; onProgress?: (done: number) => void } = {},
): Promise<ReplaySummary> {
  await countByQuery(client, query);
  const runs: { workflowId: string; runId: string; type: string; taskQueue: string; attrs: Map<string, unknown> }[] =
    [];
  for await (const w of client.temporal.workflow.list({ query })) {
    const attrs = new Map<string, unknown>();
    for (const key of [PipelineKindKey, TierKey, TenantKey]) attrs.set(key.name, w.typedSearchAttributes.get(key));
    runs.push({ workflowId: w.workflowId, runId: w.runId, type: w.type, taskQueue: w.taskQueue, attrs });
  }
  const summary: ReplaySummary = { matched: runs.length, started: 0, existing: 0, failed: [], replays: [] };
  const converter = client.temporal.options.loadedDataConverter;
  let next = 0;
  let done = 0;
  const one = async (run: (typeof runs)[number]) => {
    const replayedAs = queryReplayWorkflowId(run.workflowId, run.runId);
    try {
      const page = await client.temporal.workflowService.getWorkflowExecutionHistory({
        namespace: client.temporal.options.namespace,
        execution: { workflowId: run.workflowId, runId: run.runId },
        maximumPageSize: 1,
      });
      const started = page.history?.events?.[0]?.workflowExecutionStartedEventAttributes;
      const input = await decodeFromPayloadsAtIndex<unknown>(converter, 0, started?.input?.payloads);
      const tierAttr = run.attrs.get(TierKey.name);
      const tier = typeof tierAttr === 'string' && isTier(tierAttr) ? tierAttr : Tier.default;
      const tenantAttr = run.attrs.get(TenantKey.name);
      const tenant = typeof tenantAttr === 'string' ? tenantAttr : 'default';
      const kind = run.attrs.get(PipelineKindKey.name);
      const start = pipelineStartOptions(client.config, {
        ...(typeof kind === 'string' && Object.values<string>(PipelineKind).includes(kind)
          ? { kind: kind as PipelineKind }
          : {}),
        tier,
        tenant,
        summary: `replay of ${run.workflowId} (run ${run.runId})`,
      });
      try {
        await client.temporal.workflow.start(run.type, {
          workflowId: replayedAs,
          taskQueue: run.taskQueue,
          args: [input],
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          typedSearchAttributes: start.typedSearchAttributes,
          priority: start.priority,
          memo: { ...start.memo, replayOf: { workflowId: run.workflowId, runId: run.runId } },
          staticSummary: start.staticSummary,
        });
        summary.started++;
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        summary.existing++;
      }
      summary.replays.push({ workflowId: run.workflowId, runId: run.runId, replayedAs });
    } catch (err) {
      summary.failed.push({ workflowId: run.workflowId, runId: run.runId, error: (err as Error).message });
    }
    opts.onProgress?.(++done);
  };
  const workers = Array.from({ length: Math.max(1, opts.concurrency ?? 8) }, async () => {
    while (next < runs.length) await one(runs[next++]!);
  });
  await Promise.all(workers);
  return summary;
}
