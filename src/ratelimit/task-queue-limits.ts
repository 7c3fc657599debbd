/**
 * Live, server-side rate limits of a tier's task queues through Temporal's task-queue config
 * (`UpdateTaskQueueConfig`): the queue-wide dispatch rate and the default rate of each fairness
 * key (= tenant). They take effect on the server at once, for every worker, with no restart;
 * `describeTaskQueue({ reportConfig })` reads them back.
 */
import type { WorkflowService } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { taskQueueFor, type Tier } from '../shared/constants';

const { TaskQueueType, TaskQueueKind } = temporal.api.enums.v1;

/** Which task queues of a tier a limit applies to. */
export const LIMIT_QUEUE_TYPES = ['activity', 'workflow'] as const;
export type LimitQueueType = (typeof LIMIT_QUEUE_TYPES)[number];

const TYPE_ENUM: Record<LimitQueueType, temporal.api.enums.v1.TaskQueueType> = {
  activity: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  workflow: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
};

/** A rate change: a number sets it, `null` removes it, undefined leaves it as it is. */
export interface TaskQueueLimitChange {
  tier: Tier;
  type: LimitQueueType;
  /** Tasks per second dispatched from the whole queue. */
  queueRps?: number | null;
  /** Tasks per second of each fairness key (tenant), scaled by its weight. */
  tenantRps?: number | null;
  /** Why: stored by the server with the change. */
  reason?: string;
}

/** The limits in force on one task queue. */
export interface TaskQueueLimits {
  tier: Tier;
  type: LimitQueueType;
  taskQueue: string;
  queueRps: number | null;
  tenantRps: number | null;
  /** Per-key weight overrides the server holds (newer servers only). */
  weightOverrides: Record<string, number>;
  updatedBy?: string;
  updatedAt?: string;
}

interface Target {
  service: WorkflowService;
  namespace: string;
  identity: string;
  /** SLUICE_TASK_QUEUE_SUFFIX. */
  suffix: string;
}

function rateUpdate(value: number | null | undefined, reason: string) {
  if (value === undefined) return undefined;
  // Guard against '' or NaN reaching the wire: protobuf would encode them as 0 (a full stop).
  if (value !== null && !(typeof value === 'number' && Number.isFinite(value) && value >= 0))
    throw new RangeError(`rate must be a number ≥ 0, got ${JSON.stringify(value)}`);
  // A RateLimitUpdate without `rateLimit` removes the limit.
  return value === null ? { reason } : { rateLimit: { requestsPerSecond: value }, reason };
}

function toIso(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): string | undefined {
  if (!ts?.seconds) return undefined;
  return new Date(Number(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6)).toISOString();
}

/** Reads the limits in force on a tier's queue of `type`. */
export async function describeTaskQueueLimits(t: Target, tier: Tier, type: LimitQueueType): Promise<TaskQueueLimits> {
  const taskQueue = taskQueueFor(tier, t.suffix);
  const res = await t.service.describeTaskQueue({
    namespace: t.namespace,
    taskQueue: { name: taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: TYPE_ENUM[type],
    reportConfig: true,
  });
  const c = res.config;
  const q = c?.queueRateLimit;
  const f = c?.fairnessKeysRateLimitDefault;
  const meta = [q?.metadata, f?.metadata]
    .filter(Boolean)
    .sort((a, b) => Number(b?.updateTime?.seconds ?? 0) - Number(a?.updateTime?.seconds ?? 0))[0];
  return {
    tier,
    type,
    taskQueue,
    queueRps: q?.rateLimit ? (q.rateLimit.requestsPerSecond ?? 0) : null,
    tenantRps: f?.rateLimit ? (f.rateLimit.requestsPerSecond ?? 0) : null,
    weightOverrides: { ...(c?.fairnessWeightOverrides ?? {}) },
    ...(meta?.updateIdentity ? { updatedBy: meta.updateIdentity } : {}),
    ...(toIso(meta?.updateTime) ? { updatedAt: toIso(meta?.updateTime) } : {}),
  };
}

/** Applies a change and returns what is in force afterwards. */
export async function setTaskQueueLimits(t: Target, change: TaskQueueLimitChange): Promise<TaskQueueLimits> {
  const reason = change.reason ?? 'sluice limits set';
  await t.service.updateTaskQueueConfig({
    namespace: t.namespace,
    identity: t.identity,
    taskQueue: taskQueueFor(change.tier, t.suffix),
    taskQueueType: TYPE_ENUM[change.type],
    updateQueueRateLimit: rateUpdate(change.queueRps, reason),
    updateFairnessKeyRateLimitDefault: rateUpdate(change.tenantRps, reason),
  });
  return describeTaskQueueLimits(t, change.tier, change.type);
}
