/**
 * Worker Deployment Versioning of the worker processes: each tier's workers form the deployment
 * `sluice-<tier>`, all with one build ID (SLUICE_BUILD_ID, else a hash of the workflow bundle, so
 * the same workflow code always gets the same ID and any change gets a new one). Which workflows
 * are PINNED and which AUTO_UPGRADE is declared next to them in src/workflows/index.ts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { WorkerDeploymentOptions, WorkflowBundleOption } from '@temporalio/worker';
import type { temporal } from '@temporalio/proto';
import type { SluiceConfig } from '../config';
import type { Logger } from '../logger';
import { BUNDLE_BUILD_ID_PREFIX, deploymentNameFor, type Tier } from '../shared/constants';

type WorkflowService = temporal.api.workflowservice.v1.WorkflowService;

/** Build ID from the bundle's code: `bundle-` and the first 12 hex digits of its SHA-256. */
export function bundleBuildId(bundle: WorkflowBundleOption): string {
  const code = 'code' in bundle ? bundle.code : fs.readFileSync(bundle.codePath, 'utf8');
  return `${BUNDLE_BUILD_ID_PREFIX}${crypto.createHash('sha256').update(code).digest('hex').slice(0, 12)}`;
}

/** This process's build ID and where it came from. */
export interface BuildIdentity {
  buildId: string;
  source: 'SLUICE_BUILD_ID' | 'bundle';
  /** The bundle-derived ID, also when SLUICE_BUILD_ID overrides it (for the mismatch check). */
  bundleBuildId: string;
}

export function buildIdentity(config: SluiceConfig, bundle: WorkflowBundleOption): BuildIdentity {
  const fromBundle = bundleBuildId(bundle);
  return config.versioning.buildId
    ? { buildId: config.versioning.buildId, source: 'SLUICE_BUILD_ID', bundleBuildId: fromBundle }
    : { buildId: fromBundle, source: 'bundle', bundleBuildId: fromBundle };
}

/** `workerDeploymentOptions` of a tier's Worker; PINNED unless the workflow declares otherwise. */
export function workerDeploymentOptionsFor(
  tier: Tier,
  config: SluiceConfig,
  buildId: string,
): WorkerDeploymentOptions | undefined {
  if (!config.versioning.enabled) return undefined;
  return {
    version: { deploymentName: deploymentNameFor(tier, config.taskQueueSuffix), buildId },
    useWorkerVersioning: true,
    // A workflow without its own declaration finishes on the code it started with.
    defaultVersioningBehavior: 'PINNED',
  };
}

type DeploymentInfo = temporal.api.deployment.v1.IWorkerDeploymentInfo;

/** The deployment's routing: current and ramping build IDs (undefined = unversioned / none). */
export function routingOf(info: DeploymentInfo | null | undefined): {
  current: string | undefined;
  ramping: string | undefined;
  rampPercentage: number;
} {
  const r = info?.routingConfig;
  return {
    current: r?.currentDeploymentVersion?.buildId || undefined,
    ramping: r?.rampingDeploymentVersion?.buildId || undefined,
    rampPercentage: r?.rampingVersionPercentage ?? 0,
  };
}

async function describe(service: WorkflowService, namespace: string, deploymentName: string) {
  try {
    return await service.describeWorkerDeployment({ namespace, deploymentName });
  } catch (err) {
    if ((err as { code?: number }).code === 5) return undefined; // NOT_FOUND: no poller seen yet
    throw err;
  }
}

/**
 * A worker whose build ID source differs from the deployment's current or ramping version's
 * (SLUICE_BUILD_ID set on some workers of the tier and not on others): the same code would run
 * as two versions, and pinned runs would wait on whichever set of workers they did not start on.
 */
export function buildIdMismatch(
  self: BuildIdentity,
  others: (string | undefined)[],
  deploymentName: string,
): string | undefined {
  for (const other of others) {
    if (!other || other === self.buildId) continue;
    const otherFromBundle = other.startsWith(BUNDLE_BUILD_ID_PREFIX);
    const selfFromBundle = self.source === 'bundle';
    if (otherFromBundle !== selfFromBundle) {
      return selfFromBundle
        ? `SLUICE_BUILD_ID mismatch in ${deploymentName}: this worker has no SLUICE_BUILD_ID (build ${self.buildId}) but the deployment's version ${other} was set through SLUICE_BUILD_ID; set SLUICE_BUILD_ID on every worker of the tier or on none`
        : `SLUICE_BUILD_ID mismatch in ${deploymentName}: this worker has SLUICE_BUILD_ID=${self.buildId} but the deployment's version ${other} comes from workers without it (bundle hash${other === self.bundleBuildId ? ', the same code as this worker' : ''}); set SLUICE_BUILD_ID on every worker of the tier or on none`;
    }
  }
  return undefined;
}

/**
 * Once this version's pollers have reached the server, makes it current per
 * SLUICE_SET_CURRENT_VERSION (`if-unset`: only when the deployment has no current version yet;
 * `always`: `sluice up`), and logs a build-ID-source mismatch with the tier's other version.
 * Returns what the routing is afterwards.
 */
export async function registerVersion(opts: {
  service: WorkflowService;
  namespace: string;
  deploymentName: string;
  self: BuildIdentity;
  setCurrent: SluiceConfig['versioning']['setCurrent'];
  log: Logger;
  timeoutMs?: number;
}): Promise<{ current: string | undefined; ramping: string | undefined; mismatch: string | undefined }> {
  const { service, namespace, deploymentName, self, log } = opts;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let info: DeploymentInfo | null | undefined;
  // The version exists once a poll of ours has reached the server: wait for it.
  for (;;) {
    info = (await describe(service, namespace, deploymentName))?.workerDeploymentInfo;
    if (info?.versionSummaries?.some((v) => v.deploymentVersion?.buildId === self.buildId)) break;
    if (Date.now() > deadline) {
      throw new Error(
        `version ${self.buildId} of ${deploymentName} did not register in time ` +
          '(a server at its limit of Worker Deployments per namespace, matching.maxDeployments, registers no new one)',
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  let routing = routingOf(info);
  const mismatch = buildIdMismatch(self, [routing.current, routing.ramping], deploymentName);
  if (mismatch) {
    log.error({ deployment: deploymentName, buildId: self.buildId, field: 'SLUICE_BUILD_ID' }, mismatch);
    return { ...routing, mismatch };
  }
  const wanted = opts.setCurrent === 'always' || (opts.setCurrent === 'if-unset' && !routing.current);
  if (wanted && routing.current !== self.buildId) {
    try {
      await service.setWorkerDeploymentCurrentVersion({
        namespace,
        deploymentName,
        buildId: self.buildId,
        identity: `sluice-worker@${self.buildId}`,
      });
      log.info({ deployment: deploymentName, buildId: self.buildId, previous: routing.current }, 'version set current');
    } catch (err) {
      // Two workers of a fresh tier starting at once: the second's request may lose the race.
      log.warn({ deployment: deploymentName, err: (err as Error).message }, 'could not set the current version');
    }
    routing = routingOf((await describe(service, namespace, deploymentName))?.workerDeploymentInfo);
  } else if (routing.current !== self.buildId && routing.ramping !== self.buildId) {
    log.info(
      { deployment: deploymentName, buildId: self.buildId, current: routing.current },
      `version ${self.buildId} registered and idle: \`sluice deploy ramp ${self.buildId} <percent> --tier <tier>\` or \`sluice deploy set-current ${self.buildId}\` routes work to it`,
    );
  }
  return { ...routing, mismatch: undefined };
}
