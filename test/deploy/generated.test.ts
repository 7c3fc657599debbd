/**
 * deploy/ is generated from the constants: the committed files equal a fresh render, and the
 * task queues, SLAs and grace periods in the manifests equal the code's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderDeployFormatted, terminationGraceSeconds } from '../../scripts/gen-deploy';
import { kedaTargetQueueSize, DEPLOY_SHUTDOWN_GRACE_MS } from '../../src/scaling/targets';
import { TASK_QUEUES, TIERS, TIER_SLA_SECONDS, taskQueueFor } from '../../src/shared/constants';
import { DEPLOY, manifestFiles, readDocs } from './helpers';

interface Container {
  args: string[];
  env: { name: string; value: string }[];
}
interface DeploymentDoc {
  kind: 'Deployment';
  metadata: { name: string };
  spec: { template: { spec: { terminationGracePeriodSeconds: number; containers: Container[] } } };
}
interface ScaledObjectDoc {
  kind: 'ScaledObject';
  metadata: { name: string };
  spec: {
    scaleTargetRef: { name: string };
    cooldownPeriod: number;
    minReplicaCount: number;
    maxReplicaCount: number;
    advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: number } } } };
    triggers: { type: string; metadata: Record<string, string> }[];
  };
}

const allDocs = () => manifestFiles().flatMap((f) => readDocs(f));

describe('deploy/ is generated from the constants', () => {
  it('the committed files equal a fresh `npm run gen:deploy`', async () => {
    const stale = Object.entries(await renderDeployFormatted()).filter(([rel, text]) => {
      const file = path.join(DEPLOY, rel);
      return !fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text;
    });
    expect(
      stale.map(([rel]) => rel),
      'run `npm run gen:deploy` and commit deploy/',
    ).toEqual([]);
  });

  it('every task queue named in deploy/ is a constant, and every tier has its ScaledObject', () => {
    const scaled = allDocs().filter((d): d is ScaledObjectDoc & Record<string, unknown> => d.kind === 'ScaledObject');
    const queues = scaled.flatMap((s) =>
      s.spec.triggers.filter((t) => t.type === 'temporal').map((t) => t.metadata.taskQueue),
    );
    expect(queues.sort()).toEqual(Object.values(TASK_QUEUES).sort());
    // The same strings the workers poll with no suffix (what `sluice worker` uses in a pod).
    expect(TIERS.map((t) => taskQueueFor(t))).toEqual(TIERS.map((t) => TASK_QUEUES[t]));
    const text = manifestFiles()
      .map((f) => fs.readFileSync(path.join(DEPLOY, f), 'utf8'))
      .join('\n');
    for (const m of text.matchAll(/\bsluice-(critical|high|default|low)\b/g)) {
      expect(Object.values(TASK_QUEUES)).toContain(m[0]);
    }
  });

  it('each tier’s temporal trigger scales on both queue types with a target derived from its SLA', () => {
    for (const tier of TIERS) {
      const [so] = readDocs(`components/keda/scaledobject-${tier}.yaml`) as unknown as ScaledObjectDoc[];
      const trigger = so?.spec.triggers.find((t) => t.type === 'temporal');
      expect(trigger?.metadata).toMatchObject({
        endpointFromEnv: 'TEMPORAL_ADDRESS',
        taskQueue: TASK_QUEUES[tier],
        queueTypes: 'workflow,activity',
        targetQueueSize: String(kedaTargetQueueSize(tier)),
        activationTargetQueueSize: '0',
      });
      expect(so?.spec.scaleTargetRef.name).toBe(`sluice-worker-${tier}`);
      expect(so?.spec.minReplicaCount).toBeLessThanOrEqual(so?.spec.maxReplicaCount ?? 0);
      expect(so?.spec.cooldownPeriod).toBeGreaterThan(0);
      expect(
        so?.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds,
      ).toBeGreaterThan(0);
    }
    // A longer SLA lets one pod hold a deeper backlog, for the same slots and task length.
    expect(kedaTargetQueueSize('critical')).toBeGreaterThan(0);
    expect(TIER_SLA_SECONDS.low).toBeGreaterThan(TIER_SLA_SECONDS.critical);
    const crons = allDocs()
      .filter((d): d is ScaledObjectDoc & Record<string, unknown> => d.kind === 'ScaledObject')
      .flatMap((s) => s.spec.triggers.filter((t) => t.type === 'cron'));
    expect(crons.length).toBeGreaterThan(0);
    for (const c of crons)
      expect(Object.keys(c.metadata).sort()).toEqual(['desiredReplicas', 'end', 'start', 'timezone']);
  });

  it('each tier’s Deployment runs its tier, and its pod outlives the worker’s shutdown grace', () => {
    for (const tier of TIERS) {
      const docs = readDocs(`base/worker-${tier}.yaml`);
      const dep = docs.find((d) => d.kind === 'Deployment') as unknown as DeploymentDoc;
      expect(docs.some((d) => d.kind === 'PodDisruptionBudget')).toBe(true);
      const pod = dep.spec.template.spec;
      const container = pod.containers[0] as Container;
      expect(container.args).toEqual(['worker', '--tiers', tier]);
      const graceMs = Number(container.env.find((e) => e.name === 'SLUICE_SHUTDOWN_GRACE_MS')?.value);
      expect(graceMs).toBe(DEPLOY_SHUTDOWN_GRACE_MS[tier]);
      expect(pod.terminationGracePeriodSeconds).toBe(terminationGraceSeconds(tier));
      expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(graceMs);
      expect(JSON.stringify(container)).toMatch(/"path":"\/healthz"/);
      expect(JSON.stringify(container)).toMatch(/"path":"\/readyz"/);
    }
  });

  it('the Dockerfile is multi-stage, non-root, ships the prebuilt bundle and production dependencies only', () => {
    const text = fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8');
    expect(text.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(3);
    expect(text).toMatch(/npm ci --omit=dev/);
    expect(text).toMatch(/RUN npm run build/);
    expect(text).toMatch(/COPY --from=build .*\/app\/dist \.\/dist/);
    const user = /^USER (\S+)/m.exec(text)?.[1] ?? '';
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(user).not.toBe('');
    // The build stage's script must keep writing the bundle the runtime loads.
    const pkg = JSON.parse(fs.readFileSync(path.join(DEPLOY, '..', 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.build).toMatch(/workers\/bundle\.js/);
  });
});
