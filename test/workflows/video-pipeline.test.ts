/**
 * The video pipeline end to end on the real dev server with real activities (real ffmpeg on
 * short generated media): outputs, idempotent starts, inspection, cancellation and bad files.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { resolveFfmpeg, runProcess } from '../../src/activities/media/ffmpeg';
import { FailureType, taskQueueFor } from '../../src/shared/constants';
import type { VideoPipelineResult } from '../../src/shared/video';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, listFiles, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let short: string;

beforeAll(async () => {
  t = makeTestEnv('video');
  short = await sampleVideo(t, { seconds: 8 });
  host = await startHost(t, ['default', 'high']);
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
});

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

async function probeDuration(file: string): Promise<number> {
  const { stdout } = await runProcess(resolveFfmpeg().ffprobe, [
    '-v',
    'error',
    '-show_entries',
    'format=duration',
    '-of',
    'csv=p=0',
    file,
  ]);
  return Number(stdout.trim());
}

async function failureOf(workflowId: string): Promise<unknown> {
  const err = await client.getResult(workflowId).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause;
}

/** The innermost ApplicationFailure of a failure chain. */
function rootApplicationFailure(err: unknown): ApplicationFailure | undefined {
  let found: ApplicationFailure | undefined;
  let cur: unknown = err;
  while (cur instanceof Error) {
    if (cur instanceof ApplicationFailure) found = cur;
    cur = (cur as { cause?: unknown }).cause;
  }
  return found;
}

describe('videoPipelineWorkflow', () => {
  /** The end-to-end request; started twice to check idempotency. */
  const e2eRequest = () => ({
    source: short,
    renditions: ['240p', '360p'],
    package: 'mp4',
    chunkSeconds: 3,
    thumbnails: 2,
    tenant: 'acme',
    idempotencyKey: 'e2e-1',
  });
  let result: VideoPipelineResult;
  let workflowId: string;

  it('transcodes chunk × rendition in parallel and fans in renditions within 0.5 s of the input', async () => {
    const started = await client.startVideoPipeline(e2eRequest());
    workflowId = started.workflowId;
    expect(workflowId).toBe('video:acme:e2e-1');
    result = await client.getResult<VideoPipelineResult>(workflowId);

    const inputDuration = await probeDuration(path.join(t.mediaRoot, short));
    expect(result.renditions.map((r) => r.name)).toEqual(['240p', '360p']);
    const runDir = path.join(t.outputDir, workflowId, result.runId);
    for (const r of result.renditions) {
      // Every artifact has a URI; on the file backend also its path, under <workflowId>/<runId>/.
      expect(r.uri).toBe(`file://${path.join(runDir, `${r.name}.mp4`)}`);
      expect(r.path).toBe(path.join(runDir, `${r.name}.mp4`));
      expect(r.url).toBeUndefined();
      expect(Math.abs((await probeDuration(r.path!)) - inputDuration)).toBeLessThanOrEqual(0.5);
      expect(Math.abs(r.durationSec - inputDuration)).toBeLessThanOrEqual(0.5);
      expect(r.height).toBe(Number(r.name.replace('p', '')));
      expect(fs.statSync(r.path!).size).toBe(r.bytes);
      expect(sha256(r.path!)).toBe(r.sha256);
    }
    expect(result.thumbnails).toHaveLength(2);
    for (const th of result.thumbnails) expect(fs.statSync(th.path!).size).toBe(th.bytes);
    expect(result.source).toBe(`file://${fs.realpathSync(path.join(t.mediaRoot, short))}`);
    expect(result.sourceBytes).toBe(fs.statSync(path.join(t.mediaRoot, short)).size);
    const manifest = JSON.parse(fs.readFileSync(result.manifest.path!, 'utf8')) as VideoPipelineResult;
    expect(manifest.renditions.map((r) => r.sha256)).toEqual(result.renditions.map((r) => r.sha256));
    expect(sha256(result.manifest.path!)).toBe(result.manifest.sha256);
    // Nothing half-written or left over: only the artifacts remain.
    expect(listFiles(runDir)).toEqual(['240p.mp4', '360p.mp4', 'manifest.json', 'thumb-01.jpg', 'thumb-02.jpg']);
  });

  it('a duplicate start returns the same run, also after it completed', async () => {
    const again = await client.startVideoPipeline(e2eRequest());
    const first = await client.temporal.workflow.getHandle(workflowId).describe();
    expect(again).toEqual({ workflowId, runId: first.runId });
    const { executions } = await client.temporal.workflowService.listWorkflowExecutions({
      namespace: 'default',
      query: `WorkflowId = '${workflowId}'`,
    });
    expect(executions).toHaveLength(1);
  });

  it('a duplicate start while running returns the running run', async () => {
    const opts = {
      source: short,
      renditions: ['240p'],
      chunkSeconds: 4,
      thumbnails: 0,
      tenant: 'acme',
      package: 'mp4',
      idempotencyKey: 'e2e-dup-running',
    };
    const [a, b] = await Promise.all([client.startVideoPipeline(opts), client.startVideoPipeline(opts)]);
    expect(a.runId).toBeDefined();
    expect(b).toEqual(a);
    await client.getResult(a.workflowId);
  });

  it('shows kind, tier, tenant and stage as search attributes, a summary, and a progress query', async () => {
    const d = await client.temporal.workflow.getHandle(workflowId).describe();
    const attrs = Object.fromEntries(d.typedSearchAttributes.getAll().map((p) => [p.key.name, p.value]));
    expect(attrs).toMatchObject({ PipelineKind: 'video', Tier: 'default', Tenant: 'acme', Stage: 'done' });
    expect(d.taskQueue).toBe(taskQueueFor('default', t.suffix));
    const state = await client.getStatus(workflowId);
    expect(state).toMatchObject({ status: 'COMPLETED', stage: 'done', kind: 'video' });
    const progress = await client.getProgress(workflowId);
    expect(progress).toEqual({ stage: 'done', done: 13, total: 13, failed: 0 }); // (3 chunks + audio) × 2 renditions + 2 thumbnails, 2 concats, 1 manifest
    const listed = await client.temporal.workflowService.listWorkflowExecutions({
      namespace: 'default',
      query: `PipelineKind = 'video' AND Tenant = 'acme' AND WorkflowId = '${workflowId}'`,
    });
    expect(listed.executions).toHaveLength(1);
  });

  it('cancel stops ffmpeg and removes partial outputs', async () => {
    const long = await sampleVideo(t, { seconds: 40, width: 640, height: 360, fps: 25 });
    const { workflowId: id } = await client.startVideoPipeline({
      source: long,
      renditions: ['720p'],
      chunkSeconds: 20,
      thumbnails: 0,
      tenant: 'acme',
      package: 'mp4',
      idempotencyKey: 'e2e-cancel',
    });
    const dir = path.join(t.outputDir, id);
    // Wait until transcoding has uploaded segments to the store, then cancel.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !listFiles(dir).some((f) => f.endsWith('.ts')))
      await new Promise((r) => setTimeout(r, 200));
    expect(listFiles(dir).some((f) => f.endsWith('.ts'))).toBe(true);
    await client.cancel(id);
    const cause = await failureOf(id);
    expect(cause).toBeInstanceOf(CancelledFailure);
    expect(listFiles(dir)).toEqual([]);
    const ffmpegs = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(t.config.storage.scratchDir));
    expect(ffmpegs).toEqual([]);
    expect((await client.getStatus(id)).stage).toBe('cancelled');
  });

  it('a file that is not a video fails once with non-retryable InvalidMedia and leaves no outputs', async () => {
    fs.writeFileSync(path.join(t.mediaRoot, 'fake.mp4'), 'just text, no video here\n'.repeat(20));
    const { workflowId: id } = await client.startVideoPipeline({
      source: 'fake.mp4',
      tenant: 'acme',
      package: 'mp4',
      idempotencyKey: 'e2e-fake',
    });
    const cause = await failureOf(id);
    expect(rootApplicationFailure(cause)?.type).toBe(FailureType.InvalidMedia);
    const history = await client.temporal.workflow.getHandle(id).fetchHistory();
    const events = history.events ?? [];
    const attempts = events
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes?.attempt);
    const probes = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'probeMedia');
    // Probed once and never retried; nothing else was attempted twice either.
    expect(probes).toHaveLength(1);
    expect(attempts.length).toBeGreaterThan(0);
    expect(attempts.every((a) => a === 1)).toBe(true);
    expect(listFiles(path.join(t.outputDir, id))).toEqual([]);
  });

  it('a truncated video fails once with non-retryable InvalidMedia', async () => {
    const bytes = fs.readFileSync(path.join(t.mediaRoot, short));
    fs.writeFileSync(path.join(t.mediaRoot, 'cut.mp4'), bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const { workflowId: id } = await client.startVideoPipeline({
      source: 'cut.mp4',
      tenant: 'acme',
      package: 'mp4',
      idempotencyKey: 'e2e-cut',
    });
    expect(rootApplicationFailure(await failureOf(id))?.type).toBe(FailureType.InvalidMedia);
  });

  it('invalid input that bypasses the client fails in the workflow as non-retryable InvalidInput', async () => {
    const handle = await client.temporal.workflow.start('videoPipelineWorkflow', {
      workflowId: `video:acme:raw-bad-${Date.now()}`,
      taskQueue: taskQueueFor('default', t.suffix),
      args: [
        {
          source: short,
          renditions: ['999p'],
          chunkSeconds: -1,
          thumbnails: 2,
          tier: 'default',
          tenant: 'acme',
          idempotencyKey: 'x',
        },
      ],
    });
    const cause = await failureOf(handle.workflowId);
    const failure = rootApplicationFailure(cause);
    expect(failure?.type).toBe(FailureType.InvalidInput);
    expect(failure?.nonRetryable).toBe(true);
    expect(failure?.message).toMatch(/renditions\.0: unknown rendition.*chunkSeconds: must be at least 1/);
  });

  it("a second run with the same workflow ID, cancelled, never touches the first run's artifacts", async () => {
    // Go's default ID reuse policy allows a duplicate after completion: start one directly.
    const first = await client.temporal.workflow.getHandle(workflowId).describe();
    const before = listFiles(path.join(t.outputDir, workflowId, first.runId)).map((f) => [
      f,
      sha256(path.join(t.outputDir, workflowId, first.runId, f)),
    ]);
    expect(before.length).toBe(5);
    const long = await sampleVideo(t, { seconds: 40, width: 640, height: 360, fps: 25 });
    const second = await client.temporal.workflow.start('videoPipelineWorkflow', {
      workflowId,
      taskQueue: taskQueueFor('default', t.suffix),
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      args: [
        {
          source: long,
          renditions: ['720p'],
          package: 'mp4',
          chunkSeconds: 20,
          thumbnails: 0,
          tier: 'default',
          tenant: 'acme',
          idempotencyKey: 'e2e-1',
        },
      ],
    });
    expect(second.firstExecutionRunId).not.toBe(first.runId);
    const secondDir = path.join(t.outputDir, workflowId, second.firstExecutionRunId);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !listFiles(secondDir).some((f) => f.endsWith('.ts')))
      await new Promise((r) => setTimeout(r, 200));
    await second.cancel();
    await expect(second.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    // The second run removed what it wrote, and only that.
    expect(listFiles(secondDir)).toEqual([]);
    const after = listFiles(path.join(t.outputDir, workflowId, first.runId)).map((f) => [
      f,
      sha256(path.join(t.outputDir, workflowId, first.runId, f)),
    ]);
    expect(after).toEqual(before);
  });
});
