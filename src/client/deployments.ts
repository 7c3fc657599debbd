/**
 * Worker Deployment Versioning for operators: the versions of each tier's deployment
 * (`sluice-<tier>`), their pollers, drainage and open pinned runs, and the two routing changes of
 * a rollout (ramp a build to a percentage, make it current). `sluice deploy` prints these.
 *
 * Every change is checked before anything is sent: the build ID's form, the percentage, and that
 * the version exists in every tier it is applied to, so a bad request changes nothing.
 */
import { temporal } from '@temporalio/proto';
import { BUILD_ID_PATTERN, TIERS, deploymentNameFor, taskQueueFor, type Tier } from '../shared/constants';
import { describeDeploymentInfo } from '../scaling/versions';
import { InvalidInputError } from './index';

type WorkflowService = temporal.api.workflowservice.v1.WorkflowService;
const { WorkerDeploymentVersionStatus, VersionDrainageStatus, TaskQueueKind, TaskQueueType } = temporal.api.enums.v1;

/** One version of a tier's deployment. */
export interface VersionStatus {
  buildId: string;
  /** current | ramping | draining | drained | inactive. */
  status: string;
  /** Ramp percentage while ramping. */
  rampPercentage: number | undefined;
  /** Pollers of this build on the tier's queues (workflow and activity pollers together). */
  pollers: number;
  /** PINNED runs of this version still open. */
  openPinnedRuns: number;
  /** When the server last checked drainage (draining/drained versions). */
  drainageCheckedAt: string | undefined;
  createdAt: string | undefined;
}

/** One tier's deployment. */
export interface DeploymentStatus {
  tier: Tier;
  deploymentName: string;
  current: string | undefined;
  ramping: string | undefined;
  rampPercentage: number;
  versions: VersionStatus[];
}

export interface DeploymentTarget {
  service: WorkflowService;
  namespace: string;
  /** SLUICE_TASK_QUEUE_SUFFIX of the deployment. */
  suffix: string;
  /** Who changes the routing (recorded by the server). @default 'sluice-cli' */
  identity?: string;
}

function iso(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): string | undefined {
  if (!ts?.seconds) return undefined;
  return new Date(Number(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6)).toISOString();
}

function statusName(s: number | null | undefined): string {
  const name = WorkerDeploymentVersionStatus[s ?? 0] ?? 'UNSPECIFIED';
  return name.replace('WORKER_DEPLOYMENT_VERSION_STATUS_', '').toLowerCase();
}

function describeDeployment(t: DeploymentTarget, deploymentName: string) {
  return describeDeploymentInfo(t.service, t.namespace, deploymentName);
}

/** Pollers per build ID on a tier's workflow and activity queues. */
async function pollersByBuild(t: DeploymentTarget, tier: Tier): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const type of [TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY]) {
    const res = await t.service.describeTaskQueue({
      namespace: t.namespace,
      taskQueue: { name: taskQueueFor(tier, t.suffix), kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: type,
    });
    for (const p of res.pollers ?? []) {
      const id = p.deploymentOptions?.buildId;
      if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  }
  return counts;
}

/** PINNED runs of a version still open (visibility; may lag a second behind). */
export async function openPinnedRuns(t: DeploymentTarget, deploymentName: string, buildId: string): Promise<number> {
  const res = await t.service.countWorkflowExecutions({
    namespace: t.namespace,
    query: `TemporalWorkerDeploymentVersion = '${deploymentName}:${buildId}' AND TemporalWorkflowVersioningBehavior = 'Pinned' AND ExecutionStatus = 'Running'`,
  });
  return Number(res.count ?? 0);
}

/** Every tier's deployment: routing, and each version with its pollers, drainage and open pinned runs. */
export async function deploymentStatus(
  t: DeploymentTarget,
  tiers: readonly Tier[] = TIERS,
): Promise<DeploymentStatus[]> {
  return Promise.all(
    tiers.map(async (tier): Promise<DeploymentStatus> => {
      const deploymentName = deploymentNameFor(tier, t.suffix);
      const info = await describeDeployment(t, deploymentName);
      const routing = info?.routingConfig;
      const current = routing?.currentDeploymentVersion?.buildId || undefined;
      const ramping = routing?.rampingDeploymentVersion?.buildId || undefined;
      const pollers = info ? await pollersByBuild(t, tier) : new Map<string, number>();
      const versions = await Promise.all(
        (info?.versionSummaries ?? []).map(async (v): Promise<VersionStatus> => {
          const buildId = v.deploymentVersion?.buildId ?? '';
          return {
            buildId,
            status: statusName(v.status),
            rampPercentage: buildId === ramping ? (routing?.rampingVersionPercentage ?? 0) : undefined,
            pollers: pollers.get(buildId) ?? 0,
            openPinnedRuns: await openPinnedRuns(t, deploymentName, buildId),
            drainageCheckedAt: iso(v.drainageInfo?.lastCheckedTime),
            createdAt: iso(v.createTime),
          };
        }),
      );
      return {
        tier,
        deploymentName,
        current,
        ramping,
        rampPercentage: ramping ? (routing?.rampingVersionPercentage ?? 0) : 0,
        versions,
      };
    }),
  );
}

/** Drainage of the versions that are neither current nor ramping. */
export interface DrainStatus {
  tier: Tier;
  deploymentName: string;
  buildId: string;
  /** draining | drained | unknown (not checked yet). */
  drainage: string;
  openPinnedRuns: number;
  pollers: number;
  checkedAt: string | undefined;
}

export async function drainStatus(t: DeploymentTarget, tiers: readonly Tier[] = TIERS): Promise<DrainStatus[]> {
  const out: DrainStatus[] = [];
  for (const d of await deploymentStatus(t, tiers)) {
    for (const v of d.versions) {
      if (v.buildId === d.current || v.buildId === d.ramping) continue;
      const res = await t.service.describeWorkerDeploymentVersion({
        namespace: t.namespace,
        deploymentVersion: { deploymentName: d.deploymentName, buildId: v.buildId },
      });
      const drainage = res.workerDeploymentVersionInfo?.drainageInfo;
      const name = VersionDrainageStatus[drainage?.status ?? 0] ?? 'UNSPECIFIED';
      out.push({
        tier: d.tier,
        deploymentName: d.deploymentName,
        buildId: v.buildId,
        drainage:
          name === 'VERSION_DRAINAGE_STATUS_UNSPECIFIED'
            ? 'unknown'
            : name.replace('VERSION_DRAINAGE_STATUS_', '').toLowerCase(),
        openPinnedRuns: v.openPinnedRuns,
        pollers: v.pollers,
        checkedAt: iso(drainage?.lastCheckedTime),
      });
    }
  }
  return out;
}

/** Checks a build ID's form (the field is named `build-id`). */
export function assertBuildId(buildId: string): void {
  if (!BUILD_ID_PATTERN.test(buildId)) {
    throw new InvalidInputError([
      {
        path: 'build-id',
        message: `${JSON.stringify(buildId)} is not a build ID: letters, digits, ., _ and - (at most 63, alphanumeric at both ends)`,
      },
    ]);
  }
}

/** Checks that every tier's deployment has the version; returns the deployment names. */
async function assertKnown(t: DeploymentTarget, tiers: readonly Tier[], buildId: string): Promise<string[]> {
  const names: string[] = [];
  for (const tier of tiers) {
    const deploymentName = deploymentNameFor(tier, t.suffix);
    const info = await describeDeployment(t, deploymentName);
    const known = (info?.versionSummaries ?? []).map((v) => v.deploymentVersion?.buildId ?? '');
    if (!known.includes(buildId)) {
      throw new InvalidInputError([
        {
          path: 'build-id',
          message: `unknown build ${JSON.stringify(buildId)} in ${deploymentName}: its workers have not polled yet${known.length ? `; known builds: ${known.join(', ')}` : ' (no versions yet)'}`,
        },
      ]);
    }
    names.push(deploymentName);
  }
  return names;
}

/** Server refusals of a routing change are the operator's input, not a crash. */
function refused(err: unknown, field: string): never {
  const code = (err as { code?: number }).code;
  // INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION
  if (code === 3 || code === 5 || code === 9) {
    throw new InvalidInputError([{ path: field, message: `refused by the server: ${(err as Error).message}` }]);
  }
  throw err;
}

/** Makes `buildId` the current version of each tier's deployment (checked on all tiers first). */
export async function setCurrentVersion(
  t: DeploymentTarget,
  buildId: string,
  tiers: readonly Tier[] = TIERS,
): Promise<{ deploymentName: string; previous: string | undefined }[]> {
  assertBuildId(buildId);
  const names = await assertKnown(t, tiers, buildId);
  const out: { deploymentName: string; previous: string | undefined }[] = [];
  for (const deploymentName of names) {
    try {
      const res = await t.service.setWorkerDeploymentCurrentVersion({
        namespace: t.namespace,
        deploymentName,
        buildId,
        identity: t.identity ?? 'sluice-cli',
      });
      out.push({ deploymentName, previous: res.previousDeploymentVersion?.buildId || undefined });
    } catch (err) {
      refused(err, 'build-id');
    }
  }
  return out;
}

/** Sends `percent` % of new runs of each tier to `buildId` (0 keeps it ramping at 0 %). */
export async function rampVersion(
  t: DeploymentTarget,
  buildId: string,
  percent: number,
  tiers: readonly Tier[] = TIERS,
): Promise<{ deploymentName: string; percent: number }[]> {
  if (!Number.isFinite(percent) || percent < 0 || percent > 100) {
    throw new InvalidInputError([{ path: 'percent', message: `must be a number from 0 to 100, got ${percent}` }]);
  }
  assertBuildId(buildId);
  const names = await assertKnown(t, tiers, buildId);
  for (const deploymentName of names) {
    const info = await describeDeployment(t, deploymentName);
    if (info?.routingConfig?.currentDeploymentVersion?.buildId === buildId) {
      throw new InvalidInputError([
        {
          path: 'build-id',
          message: `${buildId} is already the current version of ${deploymentName}; nothing to ramp`,
        },
      ]);
    }
  }
  for (const deploymentName of names) {
    try {
      await t.service.setWorkerDeploymentRampingVersion({
        namespace: t.namespace,
        deploymentName,
        buildId,
        percentage: percent,
        identity: t.identity ?? 'sluice-cli',
      });
    } catch (err) {
      refused(err, 'build-id');
    }
  }
  return names.map((deploymentName) => ({ deploymentName, percent }));
}

/** Per-version backlog lives with the other backlog readers (the exporter publishes it too). */
export { versionBacklogs, type VersionBacklog } from '../scaling/versions';
