/**
 * Backlog per Worker Deployment version: with versioning on, each build of a tier's deployment
 * (`sluice-<tier>`) has its own backlog on the tier's queues. `sluice capacity` prints these and
 * the backlog exporter publishes them, so each version can scale on its own backlog.
 *
 * Where the figures come from (measured on the embedded server 1.29.1, 2026-12): the versions'
 * own stats, `DescribeWorkerDeploymentVersion` with `reportTaskQueueStats`, read 0 for tasks of
 * runs pinned to a version (7 activities waiting on two pinned versions: 0 and 0) and report the
 * unversioned queue's backlog against every version, current or not. `DescribeTaskQueue` in
 * ENHANCED mode with the versions selected by `<deployment>:<build>` returns each version's own
 * queue exactly (5 and 2 of those 7), plus the unversioned queue under the empty key. So the
 * versions come from the deployment and the numbers from the enhanced describe; tasks on the
 * unversioned queue (runs not yet pinned, AUTO_UPGRADE runs) go to whichever build the routing
 * sends them: the current version, and the ramping one its percentage.
 */
import { temporal } from '@temporalio/proto';
import { TIERS, deploymentNameFor, taskQueueFor, type Tier } from '../shared/constants';
import { QUEUE_TYPES, type DescribeTaskQueueService, type QueueType } from './stats';

import Api = temporal.api.workflowservice.v1;
const { TaskQueueType, TaskQueueKind, DescribeTaskQueueMode } = temporal.api.enums.v1;

/** The part of the WorkflowService the per-version reader uses (a client's or a NativeConnection's). */
export interface VersionStatsService extends DescribeTaskQueueService {
  describeWorkerDeployment(
    request: Api.IDescribeWorkerDeploymentRequest,
  ): Promise<Api.IDescribeWorkerDeploymentResponse>;
}

/** Backlog of one version on one of its task queues. */
export interface VersionBacklog {
  tier: Tier;
  deploymentName: string;
  buildId: string;
  taskQueue: string;
  queueType: QueueType;
  backlog: number;
  backlogAgeSeconds: number;
}

/** A deployment's info, or undefined when the server has seen no poller of it yet (NOT_FOUND). */
export async function describeDeploymentInfo(
  service: Pick<VersionStatsService, 'describeWorkerDeployment'>,
  namespace: string,
  deploymentName: string,
): Promise<temporal.api.deployment.v1.IWorkerDeploymentInfo | undefined> {
  try {
    return (await service.describeWorkerDeployment({ namespace, deploymentName })).workerDeploymentInfo ?? undefined;
  } catch (err) {
    if ((err as { code?: number }).code === 5) return undefined;
    throw err;
  }
}

const TYPE_ENUM: Record<QueueType, temporal.api.enums.v1.TaskQueueType> = {
  workflow: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  activity: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
};

/** `<deployment>:<build>`, the server's key of a version in task-queue version selections. */
function versionKey(deploymentName: string, buildId: string): string {
  return `${deploymentName}:${buildId}`;
}

function backlogOf(info: temporal.api.taskqueue.v1.ITaskQueueVersionInfo | undefined, type: QueueType) {
  const stats = info?.typesInfo?.[TYPE_ENUM[type]]?.stats;
  const age = stats?.approximateBacklogAge;
  return {
    backlog: Number(stats?.approximateBacklogCount ?? 0),
    backlogAgeSeconds: Number(age?.seconds ?? 0) + (age?.nanos ?? 0) / 1e9,
  };
}

/** Per version of every tier's deployment, its backlog on the tier's workflow and activity queues. */
export async function versionBacklogs(
  t: { service: VersionStatsService; namespace: string; suffix: string },
  tiers: readonly Tier[] = TIERS,
): Promise<VersionBacklog[]> {
  const out: VersionBacklog[] = [];
  for (const tier of tiers) {
    const deploymentName = deploymentNameFor(tier, t.suffix);
    const info = await describeDeploymentInfo(t.service, t.namespace, deploymentName);
    const buildIds = (info?.versionSummaries ?? []).map((v) => v.deploymentVersion?.buildId ?? '').filter(Boolean);
    if (buildIds.length === 0) continue;
    const taskQueue = taskQueueFor(tier, t.suffix);
    const res = await t.service.describeTaskQueue({
      namespace: t.namespace,
      taskQueue: { name: taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      apiMode: DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
      versions: { buildIds: buildIds.map((b) => versionKey(deploymentName, b)), unversioned: true },
      taskQueueTypes: QUEUE_TYPES.map((q) => TYPE_ENUM[q]),
      reportStats: true,
    });
    const routing = info?.routingConfig;
    const current = routing?.currentDeploymentVersion?.buildId || undefined;
    const ramping = routing?.rampingDeploymentVersion?.buildId || undefined;
    const rampShare = ramping ? (routing?.rampingVersionPercentage ?? 0) / 100 : 0;
    for (const buildId of buildIds) {
      // The unversioned queue's share this build will be handed (current and ramping only).
      const share = buildId === ramping ? rampShare : buildId === current ? 1 - rampShare : 0;
      for (const queueType of QUEUE_TYPES) {
        const own = backlogOf(res.versionsInfo?.[versionKey(deploymentName, buildId)], queueType);
        const unversioned = backlogOf(res.versionsInfo?.[''], queueType);
        const routed = Math.round(unversioned.backlog * share);
        out.push({
          tier,
          deploymentName,
          buildId,
          taskQueue,
          queueType,
          backlog: own.backlog + routed,
          backlogAgeSeconds: Math.max(own.backlogAgeSeconds, routed > 0 ? unversioned.backlogAgeSeconds : 0),
        });
      }
    }
  }
  return out;
}
