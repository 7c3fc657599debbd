/**
 * A rollout's per-build overlay (`npm run gen:deploy -- --build <id>`): rendered by kustomize
 * beside each environment overlay, every object validates against its schema; the build's
 * Deployments, PDBs and ScaledObjects carry its suffix and label; each ScaledObject scales its own
 * Deployment on this version's backlog (`workerDeploymentName` / `workerDeploymentBuildId`); the
 * objects shared by every build stay with the environment; and no selector of one build's objects
 * matches the other's pods.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap } from 'kubernetes-models/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { afterAll, describe, expect, it } from 'vitest';
import { buildOverlay, buildSuffix, writeBuildOverlay } from '../../scripts/gen-deploy';
import { REPO_ROOT } from '../helpers/env';
import { DEPLOY, findTool, parseDocs } from './helpers';

const run = promisify(execFile);

type Doc = Record<string, unknown> & { kind: string; metadata: { name: string } };
interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Whether a label selector (matchLabels, and In/NotIn/Exists/DoesNotExist) selects these labels. */
function selects(sel: Selector, labels: Record<string, string>): boolean {
  if (Object.entries(sel.matchLabels ?? {}).some(([k, v]) => labels[k] !== v)) return false;
  return (sel.matchExpressions ?? []).every((e) => {
    const has = e.key in labels;
    if (e.operator === 'Exists') return has;
    if (e.operator === 'DoesNotExist') return !has;
    if (e.operator === 'In') return has && (e.values ?? []).includes(labels[e.key]!);
    return !has || !(e.values ?? []).includes(labels[e.key]!);
  });
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Deployment: Deployment as never,
  PodDisruptionBudget: PodDisruptionBudget as never,
  ScaledObject: ScaledObject as never,
  ConfigMap: ConfigMap as never,
};

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function kustomize(dir: string): Doc[] {
  return parseDocs(execFileSync(findTool('kustomize'), ['build', dir], { encoding: 'utf8' }), dir) as Doc[];
}

describe('per-build overlay of a rollout', () => {
  it.each(['prod', 'cloud', 'dev'] as const)(
    'beside overlays/%s: the build runs under its own names, scales on its own backlog and shares nothing else',
    async (from) => {
      const buildId = 'Release_0.2.0';
      const suffix = buildSuffix(buildId);
      expect(suffix).toBe('release-0-2-0');
      const dir = await writeBuildOverlay(buildId, from, fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-build-')));
      dirs.push(dir);
      const docs = kustomize(dir);
      const env = kustomize(path.join(DEPLOY, 'overlays', from));

      // Only the build's own objects, each valid against its schema.
      expect(docs.map((d) => d.kind).sort()).toEqual([
        'ConfigMap',
        ...Array<string>(4).fill('Deployment'),
        ...Array<string>(4).fill('PodDisruptionBudget'),
        ...Array<string>(4).fill('ScaledObject'),
      ]);
      for (const d of docs) {
        const Model = MODELS[d.kind]!;
        expect(() => new Model(d as never).validate(), `${d.kind} ${d.metadata.name}`).not.toThrow();
        expect(d.metadata.name.endsWith(`-${suffix}`), d.metadata.name).toBe(true);
        expect((d.metadata as { namespace?: string }).namespace, d.metadata.name).toBe(
          (env[0]!.metadata as { namespace?: string }).namespace,
        );
      }
      const config = docs.find((d) => d.kind === 'ConfigMap') as Doc & { data: Record<string, string> };
      expect(config.data.SLUICE_BUILD_ID).toBe(buildId);

      const deployments = docs.filter((d) => d.kind === 'Deployment') as (Doc & {
        spec: {
          selector: Selector;
          template: {
            metadata: { labels: Record<string, string> };
            spec: {
              serviceAccountName: string;
              containers: { image: string; envFrom: { configMapRef?: { name: string } }[] }[];
            };
          };
        };
      })[];
      for (const dep of deployments) {
        const pod = dep.spec.template;
        expect(pod.metadata.labels['sluice.dev/build']).toBe(suffix);
        expect(pod.spec.containers[0]?.image).toMatch(new RegExp(`:${buildId.replace(/\./g, '\\.')}$`));
        expect(pod.spec.containers[0]?.envFrom.map((e) => e.configMapRef?.name)).toContain(config.metadata.name);
        // The ServiceAccount stays the environment's.
        expect(env.some((d) => d.kind === 'ServiceAccount' && d.metadata.name === pod.spec.serviceAccountName)).toBe(
          true,
        );
      }

      // Each ScaledObject scales its own build's Deployment, on this version's backlog.
      const scaled = docs.filter((d) => d.kind === 'ScaledObject') as (Doc & {
        spec: {
          minReplicaCount: number;
          scaleTargetRef: { name: string };
          triggers: { type: string; metadata: Record<string, string>; authenticationRef?: { name: string } }[];
        };
      })[];
      for (const so of scaled) {
        const target = deployments.find((d) => d.metadata.name === so.spec.scaleTargetRef.name);
        expect(target, so.metadata.name).toBeDefined();
        const tier = target!.spec.template.metadata.labels['sluice.dev/tier'];
        const trigger = so.spec.triggers.find((t) => t.type === 'temporal')!;
        expect(trigger.metadata).toMatchObject({
          workerDeploymentName: `sluice-${tier}`,
          workerDeploymentBuildId: buildId,
        });
        expect(trigger.metadata.workerDeploymentBuildIdFromEnv).toBeUndefined();
        expect(so.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
        // Cloud: the environment's TriggerAuthentication, not a copy.
        if (trigger.authenticationRef)
          expect(
            env.some((d) => d.kind === 'TriggerAuthentication' && d.metadata.name === trigger.authenticationRef!.name),
          ).toBe(true);
        else expect(from).not.toBe('cloud');
      }

      // No selector of one build matches the other's pods (Deployments and PDBs).
      const selectorsOf = (ds: Doc[]) =>
        ds
          .filter((d) => d.kind === 'Deployment' || d.kind === 'PodDisruptionBudget')
          .map((d) => ({ name: `${d.kind} ${d.metadata.name}`, sel: (d.spec as { selector: Selector }).selector }));
      const podsOf = (ds: Doc[]) =>
        (ds.filter((d) => d.kind === 'Deployment') as typeof deployments).map((d) => d.spec.template.metadata.labels);
      for (const [sels, pods, own] of [
        [selectorsOf(docs), podsOf(env), podsOf(docs)],
        [selectorsOf(env), podsOf(docs), podsOf(env)],
      ] as const) {
        for (const { name, sel } of sels) {
          for (const labels of pods)
            expect(selects(sel, labels), `${name} selects ${JSON.stringify(labels)}`).toBe(false);
          expect(
            own.filter((labels) => selects(sel, labels)),
            name,
          ).toHaveLength(1);
        }
      }
    },
  );

  it('a build ID the server would refuse is refused, naming --build, exit 2, nothing written', async () => {
    expect(() => buildOverlay('bad id!', { from: 'prod', dir: DEPLOY })).toThrow(
      /--build: "bad id!" is not a build ID/,
    );
    const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
    const wouldWrite = path.join(DEPLOY, 'builds', '0-2-0');
    const existedBefore = fs.existsSync(wouldWrite);
    const err = await run(tsx, ['scripts/gen-deploy.ts', '--build', '-oops-'], { cwd: REPO_ROOT }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/--build: "-oops-" is not a build ID/);
    const from = await run(tsx, ['scripts/gen-deploy.ts', '--build', '0.2.0', '--from', 'staging'], {
      cwd: REPO_ROOT,
    }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(from?.code).toBe(2);
    expect(from?.stderr).toMatch(/--from: "staging" is not one of dev, prod, cloud/);
    expect(fs.existsSync(wouldWrite)).toBe(existedBefore);
  });
});
