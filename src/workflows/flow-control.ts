/**
 * Workflow-side flow control (runs in the sandbox): priority and fairness passed explicitly to
 * every activity, age-based promotion of waiting sub-jobs to the next tier up, and dead-letter
 * records of what exhausted its retries. Helpers only; not re-exported from the bundle entry.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxySinks,
  scheduleActivity,
  workflowInfo,
  type ActivityOptions,
  type RetryPolicy,
  type Sinks,
} from '@temporalio/workflow';
import type { Priority } from '@temporalio/common';
import type { DeadLetterInput, FailureLink } from '../dlq/store';
import {
  FLOW_MEMO_KEY,
  FailureType,
  NON_RETRYABLE_FAILURE_TYPES,
  PRIORITY_KEY_BY_TIER,
  nextTierUp,
  parseTaskQueue,
  taskQueueFor,
  type FlowMemo,
  type Tier,
} from '../shared/constants';
import type { DeadLetterStatus, SubJob } from '../shared/fan-out';

/** Sinks the worker host implements (metrics the sandbox cannot touch itself). */
export interface FlowSinks extends Sinks {
  flow: {
    /** A sub-job waited past its promotion age and was dispatched on `to`. */
    promoted(event: { from: Tier; to: Tier; activityType: string }): void;
    /** A dead letter could not be written after its retries: the record is lost. */
    deadLetterLost(event: { kind: DeadLetterInput['kind']; workflowType: string }): void;
  };
}

const sinks = proxySinks<FlowSinks>();

/** Patch ID guarding the dead-letter activity calls (histories recorded before it replay unchanged). */
export const DLQ_PATCH = 'sluice-dlq-v1';

/**
 * The pipelines' retry budget for their activities (sub-jobs, and dead letters since
 * {@link DLQ_LOUD_PATCH}). The worker applies the per-type budget from SLUICE_RETRY_POLICIES under it.
 */
export const PIPELINE_RETRY: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  maximumAttempts: 5,
  nonRetryableErrorTypes: [...NON_RETRYABLE_FAILURE_TYPES],
};

/** Patch ID of loud dead letters: the pipeline's retry budget, then a lost record is reported, never dropped. */
export const DLQ_LOUD_PATCH = 'sluice-dlq-loud-v1';

type DlqActivities = { recordDeadLetter(entry: DeadLetterInput): Promise<{ id: string }> };

/** Runs started before {@link DLQ_LOUD_PATCH} keep the budget they were recorded with. */
const dlqBefore = proxyActivities<DlqActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
  summary: 'dead-letter',
});

/**
 * Priority and flow settings a pipeline took from its own input at its first workflow task
 * (see ./contract.ts). Module state is per workflow run in the sandbox. Unset in runs whose
 * history predates that (replays) and in batch children, which read their start instead.
 */
let owned: { priority: Priority; flow: FlowMemo } | undefined;

/** Called once by a pipeline, before any activity or child starts. */
export function adoptRunFlow(settings: { priority: Priority; flow: FlowMemo }): void {
  owned = settings;
}

/** True once the pipeline set its own priority and flow settings ({@link adoptRunFlow}). */
export function ownsRunFlow(): boolean {
  return owned !== undefined;
}

/** `options` with the run's own priority once the pipeline owns it; unchanged before (replays). */
export function withRunPriority<T extends ActivityOptions>(options: T): T {
  return owned ? { ...options, priority: runPriority() } : options;
}

const dlq = proxyActivities<DlqActivities>({
  startToCloseTimeout: '30 seconds',
  retry: PIPELINE_RETRY,
  summary: 'dead-letter',
});

/** Dead letters of this run that could not be written (module state is per run in the sandbox). */
let lost: DeadLetterStatus | undefined;

/** Adds lost dead letters (this run's, or a batch child's) to what the run's result reports. */
export function noteLostDeadLetters(status: DeadLetterStatus | undefined): void {
  if (!status) return;
  lost = lost ? { ...lost, lost: lost.lost + status.lost } : { ...status };
}

/** Lost dead letters of this run so far; undefined when every record was written. */
export function lostDeadLetters(): DeadLetterStatus | undefined {
  return lost ? { ...lost } : undefined;
}

/** `result` with `deadLetter: { written: false, error, lost }` when any dead letter of the run was lost. */
export function withDeadLetterStatus<T extends { deadLetter?: DeadLetterStatus }>(result: T): T {
  const status = lostDeadLetters();
  return status ? { ...result, deadLetter: status } : result;
}

/** The flow memo the client set at start (promotion ages); empty when started some other way. */
export function flowMemo(): FlowMemo {
  if (owned) return owned.flow;
  const memo = workflowInfo().memo?.[FLOW_MEMO_KEY];
  return memo && typeof memo === 'object' ? memo : {};
}

/**
 * The run's priority, explicitly, for activities and children. Temporal inherits the workflow's
 * priority when an activity sets none; Sluice sets it anyway so a promoted sub-job can change its
 * key while keeping the tenant's fairness key and weight.
 */
export function runPriority(overrideKey?: number): Priority | undefined {
  const p = owned?.priority ?? workflowInfo().priority;
  if (!p && overrideKey === undefined) return undefined;
  return { ...(p ?? {}), ...(overrideKey !== undefined ? { priorityKey: overrideKey } : {}) };
}

function isScheduleToStartTimeout(err: unknown): boolean {
  return (
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === 'SCHEDULE_TO_START'
  );
}

/**
 * Runs one sub-job as an activity on `tier`'s queue (default: the workflow's own). If that tier
 * has a promotion age in the flow memo, the attempt carries it as `scheduleToStartTimeout`; when
 * it fires, the sub-job is dispatched again on the next tier up, with that tier's priority key.
 */
export function dispatchSubJob<R>(job: SubJob, base: ActivityOptions, tier?: Tier): Promise<R> {
  const own = parseTaskQueue(workflowInfo().taskQueue);
  const current = tier ?? own?.tier;
  const promoteAfter = current ? flowMemo().promoteAfterSeconds?.[current] : undefined;
  const next = current ? nextTierUp(current) : undefined;
  const onOtherTier = tier !== undefined && own !== undefined && tier !== own.tier;
  const promotable = current !== undefined && next !== undefined && own !== undefined && promoteAfter !== undefined;
  const options: ActivityOptions = {
    ...base,
    priority: runPriority(onOtherTier && current ? PRIORITY_KEY_BY_TIER[current] : undefined),
    ...(onOtherTier && current ? { taskQueue: taskQueueFor(current, own.suffix) } : {}),
    ...(promotable ? { scheduleToStartTimeout: promoteAfter * 1000 } : {}),
  };
  // No async wrapper unless the sub-job can be promoted: every promise costs the sandbox a stack trace.
  const attempt = scheduleActivity<R>(job.activity, [job.input], options);
  if (!promotable) return attempt;
  return attempt.catch((err: unknown) => {
    if (!isScheduleToStartTimeout(err)) throw err;
    sinks.flow.promoted({ from: current, to: next, activityType: job.activity });
    return dispatchSubJob<R>(job, base, next);
  });
}

/** The failure chain of an error, outermost first (ActivityFailure → ApplicationFailure → …). */
export function failureChain(err: unknown): FailureLink[] {
  const chain: FailureLink[] = [];
  let cur: unknown = err;
  while (cur instanceof Error && chain.length < 10) {
    const type = cur instanceof ApplicationFailure ? (cur.type ?? undefined) : cur.name;
    chain.push({ ...(type ? { type } : {}), message: cur.message });
    cur = (cur as { cause?: unknown }).cause;
  }
  return chain;
}

/** Attempts the failed activity made, as far as the failure tells (RetriesExhausted carries it). */
export function attemptsOf(err: unknown, maximumAttempts: number | undefined): number {
  let cur: unknown = err;
  while (cur instanceof Error) {
    if (cur instanceof ApplicationFailure && cur.type === FailureType.RetriesExhausted) {
      const d = cur.details?.[0] as { attempts?: number } | undefined;
      if (typeof d?.attempts === 'number') return d.attempts;
    }
    if (cur instanceof ActivityFailure && cur.retryState === 'MAXIMUM_ATTEMPTS_REACHED' && maximumAttempts) {
      return maximumAttempts;
    }
    cur = (cur as { cause?: unknown }).cause;
  }
  return 1;
}

/**
 * Records a dead letter from the workflow's failure path. Runs in a non-cancellable scope (a
 * cancelled pipeline is not dead-lettered at all) and never throws: losing the record must not
 * change how the pipeline ends. It is never silent either: a record that cannot be written within
 * the pipeline's retry budget is logged, counted (`sluice_dlq_write_failures_total`) and reported
 * in the run's result (`deadLetter`, see {@link withDeadLetterStatus}).
 */
export async function recordDeadLetter(
  err: unknown,
  entry: Omit<DeadLetterInput, 'workflowId' | 'runId' | 'workflowType' | 'taskQueue' | 'failure' | 'attempts'> & {
    maximumAttempts?: number;
  },
): Promise<void> {
  if (isCancellation(err) || !patched(DLQ_PATCH)) return;
  const info = workflowInfo();
  const { maximumAttempts, ...rest } = entry;
  const record: DeadLetterInput = {
    ...rest,
    workflowId: info.workflowId,
    runId: info.runId,
    workflowType: info.workflowType,
    taskQueue: info.taskQueue,
    failure: failureChain(err),
    attempts: attemptsOf(err, maximumAttempts),
  };
  if (!patched(DLQ_LOUD_PATCH)) {
    await CancellationScope.nonCancellable(() => dlqBefore.recordDeadLetter(record)).catch(() => undefined);
    return;
  }
  try {
    await CancellationScope.nonCancellable(() => dlq.recordDeadLetter(record));
  } catch (writeErr) {
    // The activity's own failure says it all (the ActivityFailure around it only says "failed").
    const chain = failureChain(writeErr);
    const error = (chain.find((l) => l.type !== 'ActivityFailure') ?? chain[0])?.message ?? String(writeErr);
    noteLostDeadLetters({ written: false, error, lost: 1 });
    log.error('dead letter not written', { kind: record.kind, subJobIndex: record.subJobIndex, error });
    sinks.flow.deadLetterLost({ kind: record.kind, workflowType: info.workflowType });
  }
}
