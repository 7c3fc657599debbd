/**
 * The one fan-out helper for pipelines: a sliding window over sub-jobs, a fan-in failure
 * policy, and batched child workflows when the fan-out is large. Runs in the workflow sandbox.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  executeChild,
  isCancellation,
  patched,
  sleep,
  workflowInfo,
  type ActivityOptions,
  type RetryPolicy,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import { durationMs } from '../shared/duration';
import { FLOW_MEMO_KEY, MAX_PACK, NON_RETRYABLE_FAILURE_TYPES, VIDEO_LIMITS } from '../shared/constants';
import type { DeadLetterStatus, FailurePolicy, FanOutOutcome, SubJob } from '../shared/fan-out';
import type { SluiceActivities } from '../activities';
import type { PackActivities } from '../activities/pack';
import {
  PIPELINE_RETRY,
  dispatchSubJob,
  flowMemo,
  lostDeadLetters,
  noteLostDeadLetters,
  ownsRunFlow,
  recordDeadLetter,
  runPriority,
} from './flow-control';
import { inTenantGate, isGated, withSubJobPermit } from './tenant-gate';
import { packedRunner } from './pack-runner';
import { rulesOf, subJobsFailed } from './failure-policy';

/** Names of the activities a worker registers: options keyed by these fail the typecheck on a typo. */
export type ActivityName = keyof SluiceActivities | keyof PackActivities;

/** Workflow type of the batch child (exported by the bundle entry; start-options.ts checks it is). */
export const BATCH_WORKFLOW_TYPE = 'subJobBatchWorkflow';

/** Per-activity options: long activities heartbeat, short ones just time out. */
const ACTIVITY_OPTIONS: Partial<Record<ActivityName, ActivityOptions>> = {
  transcodeChunk: {
    startToCloseTimeout: '30 minutes',
    // Short enough that a killed worker's chunk moves on quickly; heartbeats go out every ~8 s.
    heartbeatTimeout: '10 seconds',
    // Wait for ffmpeg to be stopped and its files removed before the workflow goes on.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  },
  encodeAudio: {
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '20 seconds',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  },
  extractThumbnail: { startToCloseTimeout: '2 minutes', heartbeatTimeout: '30 seconds' },
  extractSprite: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds' },
  concatRendition: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds' },
  packageRendition: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds' },
  publishChunk: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds' },
  finishRendition: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds' },
  packageAudio: {
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '20 seconds',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  },
  // Report sub-jobs heartbeat every 2 s while their query runs; a cancelled one is left to stop on
  // its own (TRY_CANCEL) so that deadline and quorum policies move on at once.
  aggregatePartition: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '10 seconds' },
  listPartitions: { startToCloseTimeout: '1 minute' },
  mergeReport: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '60 seconds' },
  cleanupReport: { startToCloseTimeout: '2 minutes' },
};
// Webhooks wait in the rate limiters (heartbeating) and may be told to come back later.
ACTIVITY_OPTIONS.deliverWebhook = { startToCloseTimeout: '2 minutes', heartbeatTimeout: '10 seconds' };
const DEFAULT_ACTIVITY_OPTIONS: ActivityOptions = { startToCloseTimeout: '5 minutes', heartbeatTimeout: '30 seconds' };
const RETRY: RetryPolicy = PIPELINE_RETRY;

/**
 * Retry overrides by activity type. These are the workflow-side ceilings; the worker applies the
 * per-type policy from config (SLUICE_RETRY_POLICIES: attempt budget, jittered delays) under them.
 */
const RETRY_OVERRIDES: Partial<Record<ActivityName, Partial<RetryPolicy>>> = {
  // Receivers answer 429/503 with Retry-After under load: allow more, later attempts.
  deliverWebhook: { maximumAttempts: 12, maximumInterval: '5 minutes' },
};

/** Durations in milliseconds: the SDK then skips parsing '30 minutes' for every activity it schedules. */
function inMs<T extends object>(options: T, keys: readonly (keyof T)[]): T {
  const out = { ...options };
  for (const key of keys) {
    const value = out[key];
    if (value !== undefined) out[key] = durationMs(value as Duration) as T[keyof T];
  }
  return out;
}

/** Built once per activity type and run (module state is per run in the sandbox); callers copy, never mutate. */
const optionsByActivity = new Map<string, ActivityOptions>();

/** Options for the activity named `name`, with the shared retry policy (and its per-type overrides). */
export function activityOptionsFor(name: ActivityName): ActivityOptions {
  return optionsOf(name);
}

/** {@link activityOptionsFor} for a name known only at run time (a jobs pipeline's sub-jobs): defaults when unknown. */
function optionsOf(name: string): ActivityOptions {
  let options = optionsByActivity.get(name);
  if (!options) {
    const known = name as ActivityName;
    const retry = inMs({ ...RETRY, ...RETRY_OVERRIDES[known] }, ['initialInterval', 'maximumInterval']);
    options = {
      ...inMs(ACTIVITY_OPTIONS[known] ?? DEFAULT_ACTIVITY_OPTIONS, [
        'startToCloseTimeout',
        'scheduleToCloseTimeout',
        'scheduleToStartTimeout',
        'heartbeatTimeout',
      ]),
      retry,
    };
    optionsByActivity.set(name, options);
  }
  return options;
}

/**
 * Runs one sub-job as an activity on the workflow's own task queue (the tier's queue), with the
 * run's priority and fairness key, promoted to the next tier up if it waits past its age.
 */
export function runSubJob<R>(job: SubJob): Promise<R> {
  // Under the tenant's sub-job cap when its limits set one (one permit per activity task).
  return withSubJobPermit(() => dispatchSubJob<R>(job, { ...optionsOf(job.activity), summary: job.summary }));
}

/** The sub-job runner for `pack` sub-jobs per activity task (1 or unset: one each). */
function subJobRunner<R>(pack: number | undefined): (job: SubJob) => Promise<R> {
  return pack !== undefined && pack > 1 ? packedRunner<R>(Math.min(pack, MAX_PACK), optionsOf) : runSubJob;
}

/**
 * Records the dead letter of `jobs[index]` (sub-job `baseIndex + index` of the fan-out) when it
 * failed for good; never throws. The fan-out waits for it before it counts the failure.
 */
function deadLetterOf(jobs: readonly SubJob[], baseIndex: number): (err: unknown, index: number) => Promise<void> {
  return (err, index) => {
    const job = jobs[index] as SubJob;
    return recordDeadLetter(err, {
      kind: 'sub-job',
      activityType: job.activity,
      subJobIndex: baseIndex + index,
      input: job.input,
      maximumAttempts: optionsOf(job.activity).retry?.maximumAttempts,
    });
  };
}

function describeFailure(err: unknown): { message: string; type?: string } {
  let cur: unknown = err;
  // Walk ActivityFailure/ChildWorkflowFailure → cause to the ApplicationFailure that says what happened.
  while (cur && typeof cur === 'object' && 'cause' in cur && (cur as { cause?: unknown }).cause) {
    if (cur instanceof ApplicationFailure) break;
    cur = (cur as { cause?: unknown }).cause;
  }
  if (cur instanceof ApplicationFailure) return { message: cur.message, type: cur.type ?? undefined };
  return { message: err instanceof Error ? err.message : String(err) };
}

export interface FanOutOptions {
  /** Sub-jobs in flight at once. */
  window: number;
  policy: FailurePolicy;
  /** Called as each sub-job settles (drives the progress query). */
  onSettled?: (index: number, ok: boolean) => void;
}

/**
 * Runs `run` over `items`, at most `window` at a time, and applies the failure policy.
 * Throws a non-retryable SubJobsFailed failure when the policy says the pipeline fails.
 */
export async function fanOut<T, R>(
  items: readonly T[],
  run: (item: T, index: number) => Promise<R>,
  opts: FanOutOptions & {
    /** Awaited before a sub-job's failure (or cancellation) counts: the dead letter is written first. */
    beforeFailure?: (err: unknown, index: number) => Promise<void>;
  },
): Promise<FanOutOutcome<R>> {
  const outcome: FanOutOutcome<R> = {
    results: new Array<R | undefined>(items.length),
    succeeded: 0,
    failed: [],
    cancelled: [],
  };
  let pending = items.map((_, i) => i);
  const rules = rulesOf(opts.policy);
  const rounds = rules.rounds;
  const deadline =
    rules.deadlineSeconds !== undefined ? Date.now() + rules.deadlineSeconds * 1000 : Number.POSITIVE_INFINITY;

  for (let round = 0; round < rounds && pending.length > 0; round++) {
    const failedThisRound: FanOutOutcome<R>['failed'] = [];
    // The first failure itself, kept as the cause of SubJobsFailed so callers see the root type.
    let firstError: Error | undefined;
    const scope = new CancellationScope();
    let stop: 'fail-fast' | 'quorum' | 'deadline' | undefined;
    // Set when the pipeline itself is cancelled (not by this policy): rethrown after the window drains.
    let externalCancel: Error | undefined;
    // One waker instead of Promise.race over the window, and one scope.run for the whole loop
    // instead of one per sub-job: the sandbox records a stack trace for every promise it creates,
    // so promises per sub-job are what a fan-out costs the worker.
    let running = 0;
    let wake: (() => void) | undefined;
    const settled = () => {
      running--;
      const w = wake;
      wake = undefined;
      w?.();
    };
    let next = 0;
    const { beforeFailure } = opts;
    const launch = (index: number) => {
      running++;
      let attempt: Promise<R>;
      try {
        attempt = run(items[index] as T, index);
      } catch (err) {
        // A sub-job that throws before it starts still settles (and frees its place in the window).
        attempt = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      const failed = (err: unknown) => {
        settled();
        if (isCancellation(err)) {
          outcome.cancelled.push(index);
          if (!stop) externalCancel ??= err as Error;
          return;
        }
        failedThisRound.push({ index, ...describeFailure(err) });
        firstError ??= err instanceof Error ? err : undefined;
        opts.onSettled?.(index, false);
        if (rules.cancelSiblingsOnFailure && !stop) {
          stop = 'fail-fast';
          scope.cancel();
        }
      };
      void attempt.then(
        (result) => {
          settled();
          outcome.results[index] = result;
          outcome.succeeded++;
          opts.onSettled?.(index, true);
          if (rules.quorum !== undefined && outcome.succeeded >= rules.quorum && !stop) {
            stop = 'quorum';
            scope.cancel();
          }
        },
        beforeFailure
          ? (err: unknown) => {
              const after = () => failed(err);
              return beforeFailure(err, index).then(after, after);
            }
          : failed,
      );
    };

    // The deadline timer lives outside the sub-jobs' scope so cancelling them does not cancel it.
    const timerScope = new CancellationScope();
    if (Number.isFinite(deadline)) {
      void timerScope
        .run(() => sleep(Math.max(1, deadline - Date.now())))
        .then(
          () => {
            if (!stop) {
              stop = 'deadline';
              scope.cancel();
            }
          },
          () => undefined,
        );
    }
    // Sub-jobs launched anywhere in this loop belong to `scope` (the context survives its awaits).
    await scope.run(async () => {
      while (next < pending.length || running > 0) {
        while (!stop && externalCancel === undefined && running < opts.window && next < pending.length) {
          launch(pending[next++] as number);
        }
        if (running === 0) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    });
    timerScope.cancel();
    if (externalCancel !== undefined) throw externalCancel;
    // Sub-jobs never launched because the policy stopped the fan-out count as cancelled.
    for (; next < pending.length; next++) outcome.cancelled.push(pending[next] as number);

    if (stop === 'fail-fast') {
      const first = failedThisRound[0];
      outcome.failed.push(...failedThisRound);
      throw subJobsFailed(`sub-job ${first?.index} failed: ${first?.message}`, {
        failed: outcome.failed,
        ...(firstError ? { cause: firstError } : {}),
      });
    }
    if (stop === 'quorum' || stop === 'deadline') {
      outcome.failed.push(...failedThisRound);
      break;
    }
    pending = failedThisRound.map((f) => f.index).sort((a, b) => a - b);
    // Non-retryable failures (bad input, bad media) are not worth another round.
    const hopeless = failedThisRound.some((f) => f.type && (NON_RETRYABLE_FAILURE_TYPES as string[]).includes(f.type));
    if (round === rounds - 1 || pending.length === 0 || hopeless) {
      outcome.failed.push(...failedThisRound);
      break;
    }
  }

  const failedOut = rules.verdict(outcome, items.length);
  if (failedOut) {
    throw subJobsFailed(`${failedOut}; first: ${outcome.failed[0]?.message ?? 'n/a'}`, { failed: outcome.failed });
  }
  return outcome;
}

/** Input of {@link subJobBatchWorkflow}. */
export interface SubJobBatchInput {
  jobs: SubJob[];
  window: number;
  policy: FailurePolicy;
  /** Record sub-jobs that fail for good in the dead-letter queue (the pipeline's policy is `partial`). */
  deadLetter?: boolean;
  /** Index of this batch's first job in the whole fan-out (dead-letter records name it). */
  baseIndex?: number;
  /** Sub-jobs per activity task (see {@link RunSubJobsOptions.pack}). */
  pack?: number;
  /** Results of jobs done before a continue-as-new, by index (and dead letters lost so far). */
  carried?: {
    results: unknown[];
    failed: FanOutOutcome<unknown>['failed'];
    cancelled: number[];
    offset: number;
    deadLetter?: DeadLetterStatus;
  };
}

/** History length at which a batch continues as new; well under the 10,240-event warning. */
const BATCH_HISTORY_LIMIT = 8_000;
/** Sub-jobs a batch runs before checking whether to continue as new. */
const BATCH_SLICE = 500;

/**
 * Child workflow that runs one batch of sub-jobs as activities. It never fails for a sub-job
 * failure unless its policy is fail-fast; the parent applies the pipeline's policy to the
 * merged outcome. Continues as new before its history grows large.
 */
export function runBatch(
  input: SubJobBatchInput,
  continueAsNew: (next: SubJobBatchInput) => Promise<never>,
): Promise<FanOutOutcome<unknown>> {
  // A batch child asks its tenant's gate for permits under its own ID, and leaves it when done.
  return inTenantGate(() => runBatchSlices(input, continueAsNew), { takesRunPlace: false });
}

async function runBatchSlices(
  input: SubJobBatchInput,
  continueAsNew: (next: SubJobBatchInput) => Promise<never>,
): Promise<FanOutOutcome<unknown>> {
  const carried = input.carried ?? { results: [], failed: [], cancelled: [], offset: 0 };
  noteLostDeadLetters(carried.deadLetter);
  const merged: FanOutOutcome<unknown> = {
    results: carried.results,
    succeeded: carried.results.filter((r) => r !== undefined && r !== null).length,
    failed: carried.failed,
    cancelled: carried.cancelled,
  };
  let offset = carried.offset;
  const run = subJobRunner<unknown>(input.pack);
  while (offset < input.jobs.length) {
    const slice = input.jobs.slice(offset, offset + BATCH_SLICE);
    const base = (input.baseIndex ?? 0) + offset;
    const part = await fanOut(slice, run, {
      window: input.window,
      policy: input.policy,
      ...(input.deadLetter === true ? { beforeFailure: deadLetterOf(slice, base) } : {}),
    });
    part.results.forEach((r, i) => (merged.results[offset + i] = r));
    merged.succeeded += part.succeeded;
    merged.failed.push(...part.failed.map((f) => ({ ...f, index: f.index + offset })));
    merged.cancelled.push(...part.cancelled.map((i) => i + offset));
    offset += slice.length;
    const info = workflowInfo();
    if (
      offset < input.jobs.length &&
      (info.continueAsNewSuggested || info.historyLength > BATCH_HISTORY_LIMIT - 4 * BATCH_SLICE)
    ) {
      const deadLetter = lostDeadLetters();
      return continueAsNew({
        ...input,
        carried: {
          results: merged.results,
          failed: merged.failed,
          cancelled: merged.cancelled,
          offset,
          ...(deadLetter ? { deadLetter } : {}),
        },
      });
    }
  }
  const deadLetter = lostDeadLetters();
  return deadLetter ? { ...merged, deadLetter } : merged;
}

/** Patch ID of the rule that runs at most `VIDEO_LIMITS.childBatchParallelism` batch children at once. */
export const FEW_CHILDREN_PATCH = 'sluice-fanout-few-children-v1';

export interface RunSubJobsOptions extends FanOutOptions {
  /** Parent workflow ID, from which child IDs are built. */
  parentId: string;
  /** Above this many sub-jobs, batches go to child workflows. @default 500 */
  batchThreshold?: number;
  /** Sub-jobs per child. @default 250 */
  batchSize?: number;
  /**
   * Sub-jobs per activity task, for tiny sub-jobs (≤ a second or so): up to this many of one
   * activity type run one after another in one task, each with its own result, attempts and
   * failure. The window still counts sub-jobs. @default 1 (one activity task per sub-job)
   */
  pack?: number;
}

/**
 * Runs sub-jobs as activities, or — above the batch threshold — as batches in child workflows,
 * so that no history outgrows its limits. Applies the failure policy to all of them.
 */
export async function runSubJobs<R>(jobs: readonly SubJob[], opts: RunSubJobsOptions): Promise<FanOutOutcome<R>> {
  const threshold = opts.batchThreshold ?? VIDEO_LIMITS.childBatchThreshold;
  const rules = rulesOf(opts.policy);
  const deadLetter = rules.deadLetter;
  if (jobs.length <= threshold) {
    return fanOut(jobs, subJobRunner<R>(opts.pack), {
      ...opts,
      ...(deadLetter ? { beforeFailure: deadLetterOf(jobs, 0) } : {}),
    });
  }

  const size = opts.batchSize ?? VIDEO_LIMITS.childBatchSize;
  const batches: SubJob[][] = [];
  for (let i = 0; i < jobs.length; i += size) batches.push(jobs.slice(i, i + size));
  // A few children at a time, each with its share of the window: a worker then holds the state of
  // a few batches, not of the whole fan-out. Runs started before this rule keep all children at once.
  const parallelLimit = patched(FEW_CHILDREN_PATCH) ? VIDEO_LIMITS.childBatchParallelism : opts.window;
  const parallelChildren = Math.max(1, Math.min(batches.length, opts.window, parallelLimit));
  const childWindow = Math.max(1, Math.ceil(opts.window / parallelChildren));
  // Children run the batch leniently (partial) unless fail-fast or retry-failed; the parent judges the whole.
  const childPolicy = rules.childPolicy;

  const merged: FanOutOutcome<R> = {
    results: new Array<R | undefined>(jobs.length),
    succeeded: 0,
    failed: [],
    cancelled: [],
  };
  const batchOutcome = await fanOut(
    batches,
    (batch, b) =>
      executeChild(BATCH_WORKFLOW_TYPE, {
        workflowId: `${opts.parentId}/batch-${String(b).padStart(4, '0')}`,
        args: [
          {
            jobs: batch,
            window: childWindow,
            policy: childPolicy,
            deadLetter,
            baseIndex: b * size,
            ...(opts.pack !== undefined && opts.pack > 1 ? { pack: opts.pack } : {}),
          } satisfies SubJobBatchInput,
        ],
        staticSummary: `batch ${b + 1}/${batches.length}: ${batch.length} sub-jobs`,
        parentClosePolicy: 'TERMINATE',
        // Children inherit nothing by accident: same priority key, fairness key and weight as the run.
        priority: runPriority(),
        // A pipeline that set its own flow settings hands them to its batches (they read the memo),
        // and so does one under its tenant's caps: its batches ask the same gate.
        ...(ownsRunFlow() || isGated() ? { memo: { [FLOW_MEMO_KEY]: flowMemo() } } : {}),
      }) as Promise<FanOutOutcome<R>>,
    {
      window: parallelChildren,
      // A failed batch stops the others only where a failure cancels its siblings.
      policy: rules.cancelSiblingsOnFailure ? opts.policy : { kind: 'partial' },
      onSettled: (b, ok) => {
        if (!ok) return;
        const n = batches[b]?.length ?? 0;
        for (let i = 0; i < n; i++) opts.onSettled?.(b * size + i, true);
      },
    },
  );
  batchOutcome.results.forEach((part, b) => {
    const base = b * size;
    // Dead letters a batch child could not write count as this run's (its result reports them).
    noteLostDeadLetters(part?.deadLetter);
    if (!part) {
      const n = batches[b]?.length ?? 0;
      const why = batchOutcome.failed.find((f) => f.index === b);
      for (let i = 0; i < n; i++)
        merged.failed.push({ index: base + i, message: why?.message ?? 'batch cancelled', type: why?.type });
      return;
    }
    part.results.forEach((r, i) => (merged.results[base + i] = r ?? undefined));
    merged.succeeded += part.succeeded;
    merged.failed.push(...part.failed.map((f) => ({ ...f, index: f.index + base })));
    merged.cancelled.push(...part.cancelled.map((i) => i + base));
  });
  // A fail-fast batch that failed has thrown above: the verdict judges the other policies.
  const failedOut = rules.verdict(merged, jobs.length);
  if (failedOut) {
    // The quorum message says all; the others name the first failure.
    throw subJobsFailed(rules.quorum !== undefined ? failedOut : `${failedOut}; first: ${merged.failed[0]?.message}`);
  }
  return merged;
}
