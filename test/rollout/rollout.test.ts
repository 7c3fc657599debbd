/**
 * A rollout on the real server. Build A (a `sluice worker` process from dist/) runs a long video
 * pipeline and a batched report pipeline; build B (this process, workflow code that cannot
 * replay A's histories) is deployed beside it, ramped to 50 %, then made current. A's pinned runs
 * finish on A with no nondeterminism error and no failed activity; new runs go to B (to both
 * during the ramp); A reports drained once its runs close; SIGTERM to A then loses nothing.
 * Prints the figures (runs per build during the ramp, time to drained, failures).
 */
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { deploymentStatus, drainStatus, rampVersion, setCurrentVersion } from '../../src/client/deployments';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { bundleWorkflows } from '../../src/workers/bundle';
import { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, sampleVideo, type TestEnv } from '../helpers/env';
import { spawnWorker, until, type WorkerProcess } from '../helpers/processes';
import { smallPartitions } from '../report/helpers';

const { EventType, WorkflowTaskFailedCause } = temporal.api.enums.v1;
const A = 'build-a';
const B = 'build-b';

let t: TestEnv;
let client: SluiceClient;
let workerA: WorkerProcess | undefined;
let hostB: WorkerHost | undefined;
let bundleB: { code: string };
let video: string;

beforeAll(async () => {
  t = makeTestEnv('rollout', { SLUICE_SLOTS_DEFAULT: '6', SLUICE_FFMPEG_CONCURRENCY: '2' });
  video = await sampleVideo(t, { seconds: 24 });
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 6, 200);
  // Building B's code is not deploying it: bundle it now so the deploy step itself is quick.
  bundleB = await bundleWorkflows(path.join(__dirname, 'workflows-b.ts'));
  client = await connectClient(t);
});

afterAll(async () => {
  workerA?.child.kill('SIGKILL');
  await hostB?.shutdown();
  await client?.close();
});

const target = () => ({
  service: client.temporal.workflowService,
  namespace: t.config.temporal.namespace,
  suffix: t.suffix,
});

/** The build whose worker last completed a workflow task of the run. */
async function buildOf(workflowId: string): Promise<string | undefined> {
  const d = await client.temporal.workflow.getHandle(workflowId).describe();
  return d.raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId ?? undefined;
}

/** Failed or timed-out activity attempts and nondeterminism errors in a run's history. */
async function failuresIn(workflowId: string): Promise<{ activities: number; nondeterminism: number }> {
  const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
  let activities = 0;
  let nondeterminism = 0;
  for (const e of history.events ?? []) {
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED) activities++;
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT) activities++;
    if (
      e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED &&
      e.workflowTaskFailedEventAttributes?.cause ===
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR
    )
      nondeterminism++;
  }
  return { activities, nondeterminism };
}

async function startJobs(key: string): Promise<string> {
  const { workflowId } = await client.startJobsPipeline({
    tenant: 'rollout',
    idempotencyKey: key,
    jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 50 } }],
  });
  return workflowId;
}

describe('rollout from build A to build B', () => {
  it('ramps and switches to B while A finishes its pinned runs, drains, and stops without losing anything', async () => {
    // 1. Build A's workers (a separate process, the compiled code); the first build becomes current.
    workerA = await spawnWorker(t, ['default'], { SLUICE_BUILD_ID: A });
    await until(
      'build A to be current',
      async () => (await deploymentStatus(target(), ['default']))[0]?.current,
      (c) => c === A,
      30_000,
    );

    // 2. A long video pipeline and a batched report pipeline (540 sub-jobs > 500) start on A.
    const { workflowId: videoId } = await client.startVideoPipeline({
      source: video,
      renditions: ['240p', '360p'],
      chunkSeconds: 2,
      thumbnails: 1,
      tier: 'default',
      tenant: 'rollout',
      package: 'mp4',
      idempotencyKey: 'long-video',
    });
    const { workflowId: reportId } = await client.startReportPipeline({
      from: '2024-01',
      to: '2024-06',
      shards: 90,
      window: 24,
      tier: 'default',
      tenant: 'rollout',
      idempotencyKey: 'batched-report',
    });
    for (const id of [videoId, reportId])
      await until(
        `${id} to start on A`,
        () => buildOf(id),
        (b) => b === A,
        30_000,
      );

    // 3. Build B deployed beside A: registered, idle until routed to.
    hostB = await WorkerHost.start({
      config: loadConfig({ ...t.env, SLUICE_BUILD_ID: B, SLUICE_SET_CURRENT_VERSION: 'never' }, t.dir),
      tiers: ['default'],
      log: createLogger('warn'),
      workflowBundle: bundleB,
    });
    const both = (await deploymentStatus(target(), ['default']))[0];
    expect(both?.current).toBe(A);
    expect(both?.versions.map((v) => v.buildId).sort()).toEqual([A, B]);

    // 4a. Ramp B to 50 %: new runs split between the builds by workflow ID. The server refuses
    // until it has seen B's pollers on every task queue A has (workflow and activity): under
    // load that takes a moment after the host starts, so the ramp is retried for a bounded time.
    const rampDeadline = Date.now() + 60_000;
    for (;;) {
      try {
        await rampVersion(target(), B, 50, ['default']);
        break;
      } catch (err) {
        if (!/missing active task queues/.test((err as Error).message) || Date.now() > rampDeadline) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const pinnedOpenAtRamp = (await deploymentStatus(target(), ['default']))[0]?.versions.find(
      (v) => v.buildId === A,
    )?.openPinnedRuns;
    const rampIds: string[] = [];
    for (let i = 0; i < 20; i++) rampIds.push(await startJobs(`ramp-${i}`));
    for (const id of rampIds) await client.getResult(id);
    const rampBuilds = await Promise.all(rampIds.map(buildOf));
    const perBuild = { [A]: rampBuilds.filter((b) => b === A).length, [B]: rampBuilds.filter((b) => b === B).length };

    // 4b. B current: every new run goes to B.
    await setCurrentVersion(target(), B, ['default']);
    const switchedAt = Date.now();
    const afterIds: string[] = [];
    for (let i = 0; i < 5; i++) afterIds.push(await startJobs(`after-${i}`));
    for (const id of afterIds) await client.getResult(id);
    const afterBuilds = await Promise.all(afterIds.map(buildOf));

    // A's pinned runs finish on A.
    const videoResult = await client.getResult(videoId);
    const report = await client.getReportResult(reportId);
    const lastAClosedAt = Date.now();
    expect(videoResult).toBeTruthy();
    expect(report.subJobs).toBe(540);
    expect(report.partial).toBe(false);
    const children = Array.from({ length: 3 }, (_, b) => `${reportId}/batch-${String(b).padStart(4, '0')}`);
    const aRuns = [videoId, reportId, ...children];
    const aBuilds = await Promise.all(aRuns.map(buildOf));
    const failures = await Promise.all([...aRuns, ...rampIds, ...afterIds].map(failuresIn));
    const failedActivities = failures.reduce((n, f) => n + f.activities, 0);
    const nondeterminism = failures.reduce((n, f) => n + f.nondeterminism, 0);

    // A reports drained once its pinned runs are closed.
    const drained = await until(
      'build A to report drained',
      async () => (await drainStatus(target(), ['default'])).find((v) => v.buildId === A),
      (v) => v?.drainage === 'drained',
      120_000,
    );
    const drainedAt = Date.now();

    // SIGTERM to A's worker: it exits cleanly, and work started afterwards completes on B.
    workerA.child.kill('SIGTERM');
    const exitCode = await workerA.exited;
    workerA = undefined;
    const lastId = await startJobs('after-sigterm');
    await client.getResult(lastId);

    process.stderr.write(
      `rollout figures: during the 50 % ramp ${perBuild[A]} runs on A, ${perBuild[B]} on B (of 20); ` +
        `after set-current ${afterBuilds.filter((b) => b === B).length}/5 on B; A's pinned runs open at the ramp: ${pinnedOpenAtRamp}; ` +
        `A drained ${((drainedAt - lastAClosedAt) / 1000).toFixed(1)} s after its last run closed ` +
        `(${((drainedAt - switchedAt) / 1000).toFixed(1)} s after set-current); ` +
        `failed activities ${failedActivities}; nondeterminism errors ${nondeterminism}\n`,
    );

    expect(pinnedOpenAtRamp).toBeGreaterThan(0);
    expect(aBuilds).toEqual(aRuns.map(() => A));
    expect(failedActivities).toBe(0);
    expect(nondeterminism).toBe(0);
    // 20 runs at 50 %: all on one side has a chance of 2 in a million.
    expect(perBuild[A]).toBeGreaterThan(0);
    expect(perBuild[B]).toBeGreaterThan(0);
    expect(perBuild[A] + perBuild[B]).toBe(20);
    expect(afterBuilds).toEqual(afterIds.map(() => B));
    expect(drained?.openPinnedRuns).toBe(0);
    expect(exitCode).toBe(0);
    expect(await buildOf(lastId)).toBe(B);
  });
});
