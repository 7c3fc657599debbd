/**
 * Every manifest under deploy/ parses and validates against its kind's schema (Kubernetes core
 * kinds from kubernetes-models, KEDA's ScaledObject from its published CRD via
 * @kubernetes-models/keda, the Prometheus Operator's CRDs), both as written and as rendered by
 * `kustomize build` for each overlay.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigMap, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { PodMonitor, PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { DEPLOY, findTool, manifestFiles, parseDocs, readDocs } from './helpers';

type Validator = new (data: never) => { validate(): void };

/** apiVersion/kind → model with the kind's JSON schema. */
const MODELS: Record<string, Validator> = {
  'v1/ConfigMap': ConfigMap as unknown as Validator,
  'v1/ServiceAccount': ServiceAccount as unknown as Validator,
  'apps/v1/Deployment': Deployment as unknown as Validator,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as Validator,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler as unknown as Validator,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject as unknown as Validator,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication as unknown as Validator,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor as unknown as Validator,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule as unknown as Validator,
};

function validate(doc: Record<string, unknown>, where: string): string {
  const key = `${String(doc.apiVersion)}/${String(doc.kind)}`;
  const Model = MODELS[key];
  if (!Model) throw new Error(`${where}: no schema for ${key}`);
  try {
    new Model(doc as never).validate();
  } catch (err) {
    throw new Error(`${where} (${key}): ${(err as Error).message}`);
  }
  return key;
}

describe('deploy/ manifests', () => {
  const files = manifestFiles();

  it('finds the manifests of every part', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'base/configmap.yaml',
        'base/worker-critical.yaml',
        'components/keda/scaledobject-low.yaml',
        'components/hpa-external/hpa-high.yaml',
        'components/monitoring/podmonitor.yaml',
        'components/monitoring/prometheusrule.yaml',
      ]),
    );
  });

  it.each(files)('%s validates against its kind’s schema', (file) => {
    const docs = readDocs(file);
    expect(docs.length).toBeGreaterThan(0);
    for (const [i, doc] of docs.entries()) validate(doc, `${file}#${i}`);
  });

  it('a schema violation is caught (the validator is not a no-op)', () => {
    const [scaledObject] = readDocs('components/keda/scaledobject-critical.yaml');
    const broken = structuredClone(scaledObject) as { spec: { minReplicaCount: unknown } };
    broken.spec.minReplicaCount = 'two';
    expect(() => validate(broken as never, 'broken')).toThrow(/minReplicaCount/);
    const [deployment] = readDocs('base/worker-critical.yaml');
    const noContainers = structuredClone(deployment) as { spec: { template: { spec: { containers?: unknown } } } };
    delete noContainers.spec.template.spec.containers;
    expect(() => validate(noContainers as never, 'broken')).toThrow(/containers/);
  });

  it.each(['base', 'overlays/dev', 'overlays/prod', 'overlays/cloud'])(
    'kustomize build %s renders valid manifests',
    (dir) => {
      const out = execFileSync(findTool('kustomize'), ['build', path.join(DEPLOY, dir)], { encoding: 'utf8' });
      const docs = parseDocs(out, dir);
      const kinds = docs.map((d, i) => validate(d, `${dir}#${i}`));
      expect(kinds.filter((k) => k === 'apps/v1/Deployment')).toHaveLength(4);
      if (dir !== 'base') {
        expect(kinds.filter((k) => k === 'keda.sh/v1alpha1/ScaledObject')).toHaveLength(4);
        expect(kinds).toContain('monitoring.coreos.com/v1/PrometheusRule');
        expect(docs.every((d) => (d.metadata as { namespace?: string }).namespace)).toBe(true);
      }
    },
  );

  it('every overlay scales each version on its own backlog, never to 0, and cloud authenticates the trigger', () => {
    for (const dir of ['overlays/dev', 'overlays/prod', 'overlays/cloud']) {
      const out = execFileSync(findTool('kustomize'), ['build', path.join(DEPLOY, dir)], { encoding: 'utf8' });
      const docs = parseDocs(out, dir);
      const config = docs.find((d) => d.kind === 'ConfigMap') as { data: Record<string, string> };
      expect(config.data.SLUICE_BUILD_ID, dir).toMatch(/\S/);
      expect(config.data.TEMPORAL_NAMESPACE, dir).toMatch(/\S/);
      const scaled = docs.filter((d) => d.kind === 'ScaledObject') as {
        spec: {
          minReplicaCount: number;
          scaleTargetRef: { name: string };
          triggers: { type: string; metadata: Record<string, string>; authenticationRef?: { name: string } }[];
        };
      }[];
      for (const so of scaled) {
        expect(so.spec.minReplicaCount, `${dir} ${so.spec.scaleTargetRef.name}`).toBeGreaterThanOrEqual(1);
        const trigger = so.spec.triggers.find((x) => x.type === 'temporal');
        expect(trigger?.metadata).toMatchObject({
          workerDeploymentName: expect.stringMatching(/^sluice-(critical|high|default|low)$/) as unknown,
          workerDeploymentBuildIdFromEnv: 'SLUICE_BUILD_ID',
          namespaceFromEnv: 'TEMPORAL_NAMESPACE',
        });
        if (dir === 'overlays/cloud') {
          const auth = docs.find(
            (d) =>
              d.kind === 'TriggerAuthentication' &&
              (d.metadata as { name: string }).name === trigger?.authenticationRef?.name,
          );
          expect(auth, `${so.spec.scaleTargetRef.name} authenticationRef`).toBeDefined();
        } else expect(trigger?.authenticationRef).toBeUndefined();
      }
    }
  });

  it('workers share nothing but the object store: no emptyDir for inputs or outputs, bounded scratch, storage from config and a Secret', () => {
    for (const dir of ['overlays/dev', 'overlays/prod', 'overlays/cloud']) {
      const out = execFileSync(findTool('kustomize'), ['build', path.join(DEPLOY, dir)], { encoding: 'utf8' });
      const docs = parseDocs(out, dir);
      const config = docs.find((d) => d.kind === 'ConfigMap') as { data: Record<string, string> };
      expect(config.data.SLUICE_STORAGE_URL, dir).toMatch(/^s3:\/\/[a-z0-9.-]+\//);
      expect(config.data.SLUICE_OUTPUT_DIR, dir).toBeUndefined();
      const workers = docs.filter((d) => d.kind === 'Deployment') as {
        metadata: { name: string };
        spec: {
          template: {
            spec: {
              volumes: { name: string; emptyDir?: { sizeLimit?: string } }[];
              containers: { envFrom: { secretRef?: { name: string } }[]; volumeMounts: { mountPath: string }[] }[];
            };
          };
        };
      }[];
      expect(workers).toHaveLength(4);
      for (const w of workers) {
        const pod = w.spec.template.spec;
        // Only scratch and /tmp, each with a size limit; nothing mounted at /data or /media.
        expect(pod.volumes.map((v) => v.name).sort(), w.metadata.name).toEqual(['scratch', 'tmp']);
        for (const v of pod.volumes)
          expect(v.emptyDir?.sizeLimit, `${w.metadata.name} ${v.name}`).toMatch(/^\d+(Mi|Gi)$/);
        const c = pod.containers[0]!;
        expect(c.volumeMounts.map((m) => m.mountPath).sort()).toEqual(['/scratch', '/tmp']);
        expect(c.envFrom.map((e) => e.secretRef?.name)).toContain('sluice-storage');
      }
    }
  });

  it('prod places critical on on-demand nodes and low on spot nodes', () => {
    const out = execFileSync(findTool('kustomize'), ['build', path.join(DEPLOY, 'overlays/prod')], {
      encoding: 'utf8',
    });
    const deployments = parseDocs(out, 'prod').filter((d) => d.kind === 'Deployment');
    const capacityOf = (name: string) => {
      const d = deployments.find((x) => (x.metadata as { name: string }).name === name) as {
        spec: { template: { spec: { affinity?: unknown } } };
      };
      return JSON.stringify(d.spec.template.spec.affinity ?? null);
    };
    expect(capacityOf('sluice-worker-critical')).toMatch(/"karpenter.sh\/capacity-type".*"on-demand"/);
    expect(capacityOf('sluice-worker-low')).toMatch(/"karpenter.sh\/capacity-type".*"spot"/);
    expect(capacityOf('sluice-worker-high')).toBe('null');
  });
});
