/**
 * Reads task-queue backlog stats from Temporal: `describeTaskQueue` with `reportStats` for the
 * workflow and the activity queue of every tier.
 */
import { temporal } from '@temporalio/proto';
import { TIERS, taskQueueFor, type Tier } from '../shared/constants';
import type { TierLoad } from './planner';

/** The part of the WorkflowService the stats reader uses (a client's or a NativeConnection's). */
export interface DescribeTaskQueueService {
  describeTaskQueue(
    request: temporal.api.workflowservice.v1.IDescribeTaskQueueRequest,
  ): Promise<temporal.api.workflowservice.v1.IDescribeTaskQueueResponse>;
}

/** Queue types a tier's queue has; both are polled. */
export const QUEUE_TYPES = ['workflow', 'activity'] as const;
/** `workflow` or `activity`. */
export type QueueType = (typeof QUEUE_TYPES)[number];

/** Stats of one (tier, queue type). */
export interface QueueStats {
  tier: Tier;
  taskQueue: string;
  queueType: QueueType;
  backlog: number;
  backlogAgeSeconds: number;
  addRate: number;
  dispatchRate: number;
}

const TYPE_ENUM: Record<QueueType, temporal.api.enums.v1.TaskQueueType> = {
  workflow: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  activity: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
};

function toNumber(value: number | { toNumber(): number } | null | undefined): number {
  if (value == null) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

/** Stats of one queue (zeros when the queue has never been used). */
export async function describeQueue(
  service: DescribeTaskQueueService,
  namespace: string,
  tier: Tier,
  queueType: QueueType,
  suffix: string,
): Promise<QueueStats> {
  const taskQueue = taskQueueFor(tier, suffix);
  const res = await service.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: TYPE_ENUM[queueType],
    reportStats: true,
  });
  const stats = res.stats;
  const age = stats?.approximateBacklogAge;
  return {
    tier,
    taskQueue,
    queueType,
    backlog: toNumber(stats?.approximateBacklogCount),
    backlogAgeSeconds: age ? toNumber(age.seconds) + (age.nanos ?? 0) / 1e9 : 0,
    addRate: stats?.tasksAddRate ?? 0,
    dispatchRate: stats?.tasksDispatchRate ?? 0,
  };
}

/** Stats of every tier × {workflow, activity} queue, fetched in parallel. */
export async function describeAllQueues(
  service: DescribeTaskQueueService,
  namespace: string,
  suffix: string,
  tiers: readonly Tier[] = TIERS,
): Promise<QueueStats[]> {
  return Promise.all(
    tiers.flatMap((tier) => QUEUE_TYPES.map((type) => describeQueue(service, namespace, tier, type, suffix))),
  );
}

/** Sums a tier's queue stats into what the planner reads; the age is the older of the two. */
export function tierLoad(tier: Tier, stats: readonly QueueStats[]): TierLoad {
  const mine = stats.filter((s) => s.tier === tier);
  return {
    tier,
    backlog: mine.reduce((n, s) => n + s.backlog, 0),
    backlogAgeSeconds: mine.reduce((n, s) => Math.max(n, s.backlogAgeSeconds), 0),
    addRate: mine.reduce((n, s) => n + s.addRate, 0),
    dispatchRate: mine.reduce((n, s) => n + s.dispatchRate, 0),
  };
}
