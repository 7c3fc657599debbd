/**
 * SLUICE_VERSIONING=0: a worker without Worker Deployment options runs the pipelines whose types
 * declare a versioning behavior. The server refuses a workflow task completion that carries a
 * behavior from an unversioned worker, so the declaration must stay off there (issue 18): without
 * that, both runs below would retry their first workflow task forever. A versioned worker still
 * records each type's declared behavior on its runs.
 */
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { deploymentNameFor, taskQueueFor } from '../../src/shared/constants';
import type { VideoPipelineResult } from '../../src/shared/video';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';
import { smallPartitions } from '../report/helpers';

const { VersioningBehavior } = temporal.api.enums.v1;

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let video: string;

beforeAll(async () => {
  t = makeTestEnv('unversioned', { SLUICE_VERSIONING: '0' });
  video = await sampleVideo(t, { seconds: 4 });
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 2);
  host = await startHost(t, ['default', 'high']);
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
});

/** Workflow task failures in a run's history (a refused completion shows up as one on retry). */
async function workflowTaskFailures(workflowId: string): Promise<number> {
  const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes).length;
}

describe('workers with SLUICE_VERSIONING=0', () => {
  it('are unversioned: no Worker Deployment is registered for their tiers', async () => {
    expect(t.config.versioning.enabled).toBe(false);
    for (const tier of ['default', 'high'] as const) {
      const err = await client.temporal.workflowService
        .describeWorkerDeployment({
          namespace: t.config.temporal.namespace,
          deploymentName: deploymentNameFor(tier, t.suffix),
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect((err as { code?: number } | undefined)?.code, `deployment of ${tier}`).toBe(5); // NOT_FOUND
    }
  });

  it('run a video pipeline to completion, unversioned', async () => {
    const { workflowId } = await client.startVideoPipeline({
      source: video,
      renditions: ['240p'],
      package: 'mp4',
      chunkSeconds: 2,
      thumbnails: 1,
      tenant: 'acme',
      idempotencyKey: `unversioned-video-${t.suffix}`,
    });
    const result = await client.getResult<VideoPipelineResult>(workflowId);
    expect(result.renditions.map((r) => r.name)).toEqual(['240p']);
    expect(result.renditions[0]?.bytes).toBeGreaterThan(0);
    expect(result.thumbnails).toHaveLength(1);
    const d = await client.temporal.workflow.getHandle(workflowId).describe();
    expect(d.status.name).toBe('COMPLETED');
    // Run by an unversioned worker: no behavior, no deployment version recorded on the run.
    expect(d.raw.workflowExecutionInfo?.versioningInfo?.behavior ?? 0).toBe(0);
    expect(d.raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId ?? '').toBe('');
    expect(await workflowTaskFailures(workflowId)).toBe(0);
  });

  it('run a report pipeline to completion, unversioned', async () => {
    const { workflowId } = await client.startReportPipeline({
      from: '2024-01',
      to: '2024-02',
      measures: ['orders', 'revenue'],
      groupBy: ['month'],
      format: 'csv',
      tenant: 'acme',
      idempotencyKey: `unversioned-report-${t.suffix}`,
    });
    const result = await client.getReportResult(workflowId);
    expect(result).toMatchObject({ used: ['2024-01', '2024-02'], missing: [], partial: false, subJobs: 2 });
    const d = await client.temporal.workflow.getHandle(workflowId).describe();
    expect(d.status.name).toBe('COMPLETED');
    expect(d.raw.workflowExecutionInfo?.versioningInfo?.behavior ?? 0).toBe(0);
    expect(await workflowTaskFailures(workflowId)).toBe(0);
  });
});

describe('workers with versioning on (the default)', () => {
  let v: TestEnv;
  let vHost: WorkerHost;
  let vClient: SluiceClient;

  beforeAll(async () => {
    v = makeTestEnv('versioned', { SLUICE_BUILD_ID: 'v1' });
    await smallPartitions(v.config.reports.partitionsDir, '2024-01', 1);
    vHost = await startHost(v, ['default']);
    vClient = await connectClient(v);
  });
  afterAll(async () => {
    await vClient?.close();
    await vHost?.shutdown();
  });

  it('record the declared behavior on each run: PINNED for a report, AUTO_UPGRADE for a burst', async () => {
    const { workflowId: report } = await vClient.startReportPipeline({
      from: '2024-01',
      to: '2024-01',
      measures: ['orders'],
      groupBy: ['month'],
      format: 'csv',
      tenant: 'acme',
      idempotencyKey: `versioned-report-${v.suffix}`,
    });
    await vClient.getReportResult(report);
    const burst = await vClient.temporal.workflow.start('burstWorkflow', {
      workflowId: `burst:versioned:${v.suffix}`,
      taskQueue: taskQueueFor('default', v.suffix),
      args: [{ jobs: 1, ms: 1 }],
    });
    await burst.result();
    const info = async (id: string) =>
      (await vClient.temporal.workflow.getHandle(id).describe()).raw.workflowExecutionInfo?.versioningInfo;
    const deploymentVersion = { deploymentName: deploymentNameFor('default', v.suffix), buildId: 'v1' };
    expect(await info(report)).toMatchObject({
      behavior: VersioningBehavior.VERSIONING_BEHAVIOR_PINNED,
      deploymentVersion,
    });
    expect(await info(burst.workflowId)).toMatchObject({
      behavior: VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE,
      deploymentVersion,
    });
  });
});
