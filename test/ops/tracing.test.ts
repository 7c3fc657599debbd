/**
 * End-to-end tracing (issue 20, item 5) with real processes: Jaeger v2 as the OTLP receiver, a
 * `sluice worker` process and a `sluice api` process exporting to it, the run's dev server and S3
 * (versitygw). One POST /v1/videos, sent with a W3C `traceparent`, must come back from Jaeger as
 * one trace: the API's server span, the client's StartWorkflow, the workflow's run, and under it
 * each transcodeChunk activity with its ffmpeg process, plus the S3 calls. And with no OTLP
 * endpoint set, nothing is installed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { trace } from '@opentelemetry/api';
import { Client, Connection } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SluiceClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import { TIERS } from '../../src/shared/constants';
import { startTracing, tracingPipeline, withSpan } from '../../src/tracing';
import { REPO_ROOT, makeTestEnv, sampleVideo, type TestEnv } from '../helpers/env';
import { startJaeger, type Jaeger, type JaegerSpan, type JaegerTrace } from '../helpers/jaeger';
import { spawnWorker, until, type WorkerProcess } from '../helpers/processes';
import { createBucket, s3Env } from '../helpers/s3-server';

describe('tracing off by default', () => {
  it('installs nothing without OTEL_EXPORTER_OTLP_ENDPOINT, and OTEL_SDK_DISABLED wins over an endpoint', async () => {
    const off = loadConfig({}, REPO_ROOT).tracing;
    expect(off.enabled).toBe(false);
    expect(startTracing(off, 'sluice-test')).toBeUndefined();
    expect(tracingPipeline()).toBeUndefined();
    // The global API is still the no-op: its spans record nothing.
    expect(trace.getTracer('sluice').startSpan('probe').isRecording()).toBe(false);
    await expect(withSpan('probe', {}, (span) => Promise.resolve(span))).resolves.toBeUndefined();

    // A client connected without an endpoint has no tracing interceptor.
    const client = await SluiceClient.connect({ config: makeTestEnv('trace-off').config });
    try {
      expect(client.temporal.options.interceptors.workflow ?? []).toEqual([]);
      expect(tracingPipeline()).toBeUndefined();
    } finally {
      await client.close();
    }

    const endpoint = 'http://127.0.0.1:4318';
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, REPO_ROOT).tracing.enabled).toBe(true);
    expect(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${endpoint}/v1/traces` }, REPO_ROOT).tracing.enabled).toBe(
      true,
    );
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: 'true' }, REPO_ROOT).tracing.enabled,
    ).toBe(false);
  });
});

/** `sluice api --port 0 --json` as a process; resolves with its URL once it listens. */
async function spawnApi(t: TestEnv): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'sluice'), 'api', '--port', '0', '--json'], {
    cwd: t.dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...t.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const line = await until(
    'sluice api to print its address',
    () => (child.exitCode !== null ? 'exited' : stdout.split('\n')[0]),
    (l) => l === 'exited' || (l !== undefined && l.endsWith('}')),
    60_000,
  ).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}; stderr: ${stderr}`);
  });
  if (line === 'exited') throw new Error(`sluice api exited (${child.exitCode}): ${stderr}`);
  return { child, url: (JSON.parse(line as string) as { url: string }).url, stderr: () => stderr };
}

/** Stops a process with SIGTERM (a drain that flushes its spans) and waits, SIGKILL after 20 s. */
async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

/** The bundle the spawned worker runs (`npm test` builds it first). */
const BUNDLE = path.join(REPO_ROOT, 'dist', 'workflow-bundle.js');
const CHUNK_SECONDS = 4;
const SECONDS = 8;
const RENDITIONS = ['240p', '360p'];

describe('one video pipeline, one trace', () => {
  let t: TestEnv;
  let jaeger: Jaeger | undefined;
  let worker: WorkerProcess | undefined;
  let api: Awaited<ReturnType<typeof spawnApi>> | undefined;
  let sample: string;

  beforeAll(async () => {
    jaeger = await startJaeger();
    const s3 = inject('s3');
    const bucket = await createBucket(s3, 'trace');
    t = makeTestEnv('trace', {
      ...s3Env(s3),
      SLUICE_STORAGE_URL: `s3://${bucket}/sluice`,
      OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpEndpoint,
      // Export within 200 ms of a span's end (the default waits 5 s).
      OTEL_BSP_SCHEDULE_DELAY: '200',
    });
    sample = await sampleVideo(t, { seconds: SECONDS });
    worker = await spawnWorker(t, [...TIERS]);
    api = await spawnApi(t);
  }, 120_000);

  afterAll(async () => {
    await stopProcess(api?.child);
    await stopProcess(worker?.child);
    await jaeger?.stop();
  });

  it('links the HTTP request, the start, the workflow run and every transcodeChunk with its ffmpeg and S3 calls', async () => {
    // The caller's own trace context: the API must continue it.
    const traceId = crypto.randomBytes(16).toString('hex');
    const callerSpanId = crypto.randomBytes(8).toString('hex');
    const res = await fetch(`${api!.url}/v1/videos`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'idempotency-key': `trace-${t.suffix}`,
        traceparent: `00-${traceId}-${callerSpanId}-01`,
      },
      body: JSON.stringify({ source: sample, renditions: RENDITIONS, chunkSeconds: CHUNK_SECONDS, package: 'mp4' }),
    });
    expect(res.status, await res.clone().text()).toBe(202);
    const { workflowId } = (await res.json()) as { workflowId: string };
    const status = await until(
      'the pipeline to close',
      async () =>
        (
          (await (await fetch(`${api!.url}/v1/pipelines/${encodeURIComponent(workflowId)}`)).json()) as {
            status: string;
          }
        ).status,
      (s) => s !== 'RUNNING',
      90_000,
    );
    expect(status).toBe('COMPLETED');

    const chunks = RENDITIONS.length * Math.ceil(SECONDS / CHUNK_SECONDS);
    const runs = (tr: JaegerTrace | undefined) =>
      tr?.spans.filter((s) => s.operationName === 'RunActivity:transcodeChunk') ?? [];
    // Spans arrive in batches from two processes; the workflow's run span leaves when it ends.
    const found = await until(
      'the whole trace in Jaeger',
      () => jaeger!.trace(traceId),
      (tr) =>
        runs(tr).length >= chunks &&
        (tr?.spans.some((s) => s.operationName === 'RunWorkflow:videoPipelineWorkflow') ?? false),
      30_000,
    );
    const tr = found!;
    const byId = new Map(tr.spans.map((s) => [s.spanID, s]));
    const parentOf = (s: JaegerSpan) => s.references.find((r) => r.refType === 'CHILD_OF')?.spanID;
    const named = (name: string) => tr.spans.filter((s) => s.operationName === name);
    const service = (s: JaegerSpan) => tr.processes[s.processID]?.serviceName;
    /** Operation names from `s` up to the root of what Jaeger holds. */
    const chain = (s: JaegerSpan): string[] => {
      const names = [s.operationName];
      for (let p = byId.get(parentOf(s) ?? ''); p; p = byId.get(parentOf(p) ?? '')) names.push(p.operationName);
      return names;
    };

    // The API's server span continues the caller's trace.
    const [http] = named('POST /v1/videos');
    expect(http, tr.spans.map((s) => s.operationName).join(', ')).toBeDefined();
    expect(service(http!)).toBe('sluice-api');
    expect(parentOf(http!)).toBe(callerSpanId);
    // The client's start is its child, and the workflow run is the start's.
    const [start] = named('StartWorkflow:videoPipelineWorkflow');
    expect(parentOf(start!)).toBe(http!.spanID);
    const [run] = named('RunWorkflow:videoPipelineWorkflow');
    expect(service(run!)).toBe('sluice-worker');
    expect(parentOf(run!)).toBe(start!.spanID);

    // One span per transcodeChunk execution, each under the run, all the way up to the request.
    const transcodes = runs(tr);
    expect(transcodes).toHaveLength(chunks);
    for (const s of transcodes) {
      expect(chain(s)).toEqual([
        'RunActivity:transcodeChunk',
        'StartActivity:transcodeChunk',
        'RunWorkflow:videoPipelineWorkflow',
        'StartWorkflow:videoPipelineWorkflow',
        'POST /v1/videos',
      ]);
    }
    // Each transcodeChunk ran ffmpeg inside its span.
    const ffmpegUnder = new Set(
      named('ffmpeg')
        .map((s) => parentOf(s))
        .filter((id) => transcodes.some((x) => x.spanID === id)),
    );
    expect(ffmpegUnder.size).toBe(chunks);
    // And the store is S3: its calls are in the trace too (the API's upload of the source, the activities' reads and writes).
    const s3Calls = tr.spans.filter((s) => s.operationName.startsWith('S3.'));
    expect(s3Calls.some((s) => service(s) === 'sluice-worker')).toBe(true);
    expect(s3Calls.some((s) => s.operationName === 'S3.PutObject')).toBe(true);

    // A traced run replays on the same bundle (a worker that evicted it rebuilds it so).
    const connection = await Connection.connect({ address: inject('temporalAddress') });
    try {
      const history = await new Client({ connection }).workflow.getHandle(workflowId).fetchHistory();
      // Named after the run's queue, as a worker of that queue replays it (the pipelines check their tier).
      const queue = history.events?.[0]?.workflowExecutionStartedEventAttributes?.taskQueue?.name ?? '';
      await Worker.runReplayHistory(
        {
          workflowBundle: { codePath: BUNDLE },
          replayName: queue,
          // As on a worker: the span sink is registered, and not called for replayed spans.
          sinks: { exporter: { export: { fn: () => undefined, callDuringReplay: false } } },
        },
        history,
        workflowId,
      );
    } finally {
      await connection.close();
    }
  }, 150_000);
});
