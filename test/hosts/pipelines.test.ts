/**
 * Issue 14, "several hosts, proven": the video and report pipelines on three hosts that share
 * nothing but the Temporal server and the S3 server on the bridge. Every artifact is compared
 * byte for byte (sha256) with a run of the same input on one host with the `file` backend, also
 * after a SIGKILLed host, a cut link and a 20 s store outage.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveFfmpeg } from '../../src/activities/media/ffmpeg';
import type { TranscodeChunkResult, TranscodeHeartbeat } from '../../src/activities/media';
import { generateSampleVideo } from '../../src/cli/samples';
import type { SluiceClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import { listPartitionFiles } from '../../src/data/generate';
import type { ReportPipelineResult } from '../../src/shared/report';
import type { VideoPipelineResult } from '../../src/shared/video';
import { openStorage, type Storage } from '../../src/storage';
import { spawnWorker, type WorkerProcess } from '../helpers/processes';
import { hostOf, labClient, listStore, startedAttempts, type StoreListing } from './helpers';
import { REPO_ROOT, createLab, type Host, type HostWorker, type Lab } from './netns';

const SUFFIX = `hosts-pipe-${process.pid}`;
const VIDEO = {
  renditions: ['360p', '720p'],
  chunkSeconds: 40,
  thumbnails: 1,
  tenant: 'hosts',
  package: 'mp4' as const,
};
const REPORT = {
  from: '2024-01',
  to: '2024-03',
  measures: ['orders', 'revenue', 'avg_amount'],
  groupBy: ['month', 'region'],
  format: 'csv' as const,
  tenant: 'hosts',
};
const DATA_ARGS = [
  'data',
  'generate',
  '--start',
  '2024-01',
  '--months',
  '3',
  '--rows-per-month',
  '2000',
  '--seed',
  '7',
];

let lab: Lab;
let client: SluiceClient;
let storage: Storage;
let sourceUri: string;
const workers = new Map<string, HostWorker>();
/** sha256 of each artifact of the one-host `file` run, by artifact name. */
let videoBaseline: Record<string, string>;
let reportBaseline: Record<string, string>;

/** Runs `sluice <args>` in the root namespace with `env`; resolves on exit 0. */
function sluice(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'sluice'), ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`sluice ${args.join(' ')} exited ${code}: ${stderr}`)),
    ),
  );
}

/** sha256 of an artifact named by a URI (`s3://`, `file://`) or a host path. */
async function digest(ref: string): Promise<string> {
  const object = storage.objectAt(ref.startsWith('/') ? `file://${ref}` : ref);
  if (!object) throw new Error(`not an artifact reference: ${ref}`);
  return crypto
    .createHash('sha256')
    .update(await object.store.getBuffer(object.key))
    .digest('hex');
}

/** An artifact field of a result: a path or URI string, or an object with `uri`/`path` and maybe `sha256`. */
type ArtifactField = string | { uri?: string; path?: string; sha256?: string };

async function artifactDigest(field: ArtifactField): Promise<string> {
  if (typeof field === 'string') return digest(field);
  if (field.sha256) return field.sha256;
  const ref = field.uri ?? field.path;
  if (!ref) throw new Error(`artifact without uri or path: ${JSON.stringify(field)}`);
  return digest(ref);
}

async function videoDigests(result: VideoPipelineResult): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const r of result.renditions) out[`rendition ${r.name}`] = await artifactDigest(r);
  for (const [i, t] of result.thumbnails.entries()) out[`thumbnail ${i}`] = await artifactDigest(t);
  return out;
}

async function reportDigests(result: ReportPipelineResult): Promise<Record<string, string>> {
  const fields = result as unknown as Record<'csv' | 'json' | 'html', ArtifactField>;
  return {
    csv: await artifactDigest(fields.csv),
    json: await artifactDigest(fields.json),
    html: await artifactDigest(fields.html),
  };
}

/** Waits until a host runs a chunk that has checkpointed at least one segment; returns the host and the chunk's activity ID. */
async function hostWithCheckpointedChunk(
  workflowId: string,
  timeoutMs: number,
): Promise<{ host: Host; activityId: string }> {
  const handle = client.temporal.workflow.getHandle(workflowId);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pending = (await handle.describe()).raw.pendingActivities ?? [];
    for (const a of pending) {
      if (a.activityType?.name !== 'transcodeChunk') continue;
      const data = a.heartbeatDetails?.payloads?.[0]?.data;
      if (!(data instanceof Uint8Array)) continue;
      const beat = JSON.parse(Buffer.from(data).toString()) as Partial<TranscodeHeartbeat>;
      const host = lab.hosts.find((h) => (a.lastWorkerIdentity ?? '').endsWith(`@${h.hostname}`));
      if (host && (beat.segments?.length ?? 0) >= 1) return { host, activityId: a.activityId ?? '' };
    }
    if (Date.now() > deadline) throw new Error(`no chunk checkpointed a segment within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The attempt that completed one chunk: on which host, which attempt, how many segments it reused. */
async function chunkRun(workflowId: string, activityId: string) {
  const run = (await startedAttempts(client, workflowId)).find((a) => a.activityId === activityId);
  if (!run) throw new Error(`chunk ${activityId} never completed`);
  return {
    host: hostOf(run.identity),
    attempt: run.attempt,
    resumed: (run.result as Partial<TranscodeChunkResult> | undefined)?.resumedSegments ?? 0,
  };
}

/** One activity slot per host: activities that run at the same time run on different hosts. */
async function startWorkers(hosts: Host[]): Promise<void> {
  for (const host of hosts) {
    workers.set(
      host.name,
      await host.startWorker(
        ['default'],
        lab.workerEnv({ SLUICE_TASK_QUEUE_SUFFIX: SUFFIX, SLUICE_SLOTS_DEFAULT: '1' }),
      ),
    );
  }
}

beforeAll(async () => {
  // Each host capped at half a CPU, as a pod with a CPU limit: a chunk then encodes for longer
  // than the SDK's heartbeat throttle (8 s at a 10 s heartbeat timeout), so the tests see it
  // checkpointed mid-chunk. Uncapped on a quiet machine a chunk could finish before its first
  // checkpoint reached the server, and the SIGKILL, cut-link and outage tests waited in vain.
  lab = await createLab({ hosts: 3, cpus: 0.5 });
  client = await labClient(lab, SUFFIX);
  const rootEnv = lab.workerEnv({ SLUICE_TASK_QUEUE_SUFFIX: SUFFIX, SLUICE_DATA_DIR: path.join(lab.dir, 'root') });
  storage = openStorage(loadConfig(rootEnv, lab.dir).storage, {
    outputDir: path.join(lab.dir, 'root', 'outputs'),
    partitionsDir: path.join(lab.dir, 'root', 'orders'),
  });

  // The input: a generated 40 s 720p video, uploaded to the store; report partitions in the store.
  const cached = path.join(REPO_ROOT, '.data', 'test-media', 'sample-1280x720-15fps-40s.mp4');
  await generateSampleVideo({ ffmpeg: resolveFfmpeg().ffmpeg, out: cached, seconds: 40, fps: 15 });
  sourceUri = `s3://${lab.bucket}/media/source.mp4`;
  const object = storage.objectAt(sourceUri);
  if (!object) throw new Error('the source URI does not resolve');
  await object.store.putFile(object.key, cached);
  // `sluice data generate` writes the partitions; they go to the store's datasets (orders/) for
  // the hosts (the same bytes again, should generate already write to the store itself).
  await sluice(DATA_ARGS, rootEnv);
  const partitionsDir = loadConfig(rootEnv, lab.dir).reports.partitionsDir;
  for (const month of listPartitionFiles(partitionsDir)) {
    await storage.datasets.putFile(`${month}.parquet`, path.join(partitionsDir, `${month}.parquet`));
  }

  // The one-host baseline: a worker in the root namespace on the `file` backend, its own queues.
  const base = path.join(lab.dir, 'baseline');
  const media = path.join(base, 'media');
  fs.mkdirSync(media, { recursive: true });
  fs.copyFileSync(cached, path.join(media, 'source.mp4'));
  const baseEnv = {
    TEMPORAL_ADDRESS: lab.temporalAddress,
    SLUICE_TASK_QUEUE_SUFFIX: `${SUFFIX}-file`,
    SLUICE_DATA_DIR: path.join(base, 'data'),
    SLUICE_MEDIA_ROOT: media,
    SLUICE_OUTPUT_DIR: path.join(base, 'out'),
    SLUICE_STORAGE_URL: `file://${path.join(base, 'store')}`,
    SLUICE_SCRATCH_DIR: path.join(base, 'scratch'),
    SLUICE_LOG_LEVEL: 'warn',
    SLUICE_METRICS_PORT: '0',
  };
  await sluice(DATA_ARGS, baseEnv);
  let baseline: WorkerProcess | undefined;
  const baseClient = await labClient(lab, `${SUFFIX}-file`, baseEnv);
  try {
    baseline = await spawnWorker({ dir: base, env: baseEnv }, ['default']);
    const video = await baseClient.startVideoPipeline({ source: 'source.mp4', ...VIDEO, idempotencyKey: 'baseline' });
    videoBaseline = await videoDigests(await baseClient.getResult<VideoPipelineResult>(video.workflowId));
    const report = await baseClient.startReportPipeline({ ...REPORT, idempotencyKey: 'baseline' });
    reportBaseline = await reportDigests(await baseClient.getReportResult(report.workflowId));
  } finally {
    baseline?.child.kill('SIGKILL');
    await baseClient.close();
  }
  await startWorkers(lab.hosts);
}, 300_000);

afterAll(async () => {
  await client?.close();
  await lab?.close();
});

describe('pipelines on three hosts sharing only Temporal and S3', () => {
  it('completes a two-rendition video with artifacts byte-identical to one host on `file`', async () => {
    const { workflowId } = await client.startVideoPipeline({ source: sourceUri, ...VIDEO, idempotencyKey: 'plain' });
    const result = await client.getResult<VideoPipelineResult>(workflowId);
    expect(await videoDigests(result)).toEqual(videoBaseline);
    expect(result.renditions.map((r) => (r as { uri?: string }).uri ?? '')).toEqual([
      expect.stringMatching(/^s3:\/\//),
      expect.stringMatching(/^s3:\/\//),
    ]);
    // The work was spread: the run's activities ran on more than one host.
    const hosts = new Set((await startedAttempts(client, workflowId)).map((a) => hostOf(a.identity)));
    expect(hosts.size).toBeGreaterThanOrEqual(2);
  }, 300_000);

  it('completes a report over partitions in the store with artifacts byte-identical to one host on `file`', async () => {
    const { workflowId } = await client.startReportPipeline({ ...REPORT, idempotencyKey: 'plain' });
    expect(await reportDigests(await client.getReportResult(workflowId))).toEqual(reportBaseline);
    const hosts = new Set((await startedAttempts(client, workflowId)).map((a) => hostOf(a.identity)));
    expect(hosts.size).toBeGreaterThanOrEqual(2);
  }, 300_000);

  it('SIGKILL of the host running a chunk: the chunk resumes on another host from the store, output identical', async () => {
    const { workflowId } = await client.startVideoPipeline({ source: sourceUri, ...VIDEO, idempotencyKey: 'sigkill' });
    const { host: victim, activityId } = await hostWithCheckpointedChunk(workflowId, 180_000);
    await victim.kill();
    try {
      const result = await client.getResult<VideoPipelineResult>(workflowId);
      expect(await videoDigests(result)).toEqual(videoBaseline);
      const run = await chunkRun(workflowId, activityId);
      expect(run.resumed).toBeGreaterThanOrEqual(1);
      expect(run.attempt).toBeGreaterThanOrEqual(2);
      expect(run.host).not.toBe(victim.name);
    } finally {
      await startWorkers([victim]);
    }
  }, 300_000);

  it('cut link mid-chunk: the chunk times out and resumes elsewhere; the late host changes nothing in the store', async () => {
    const { workflowId } = await client.startVideoPipeline({ source: sourceUri, ...VIDEO, idempotencyKey: 'cut' });
    const { host: cut, activityId } = await hostWithCheckpointedChunk(workflowId, 180_000);
    cut.linkDown();
    let before: StoreListing;
    let result: VideoPipelineResult;
    try {
      result = await client.getResult<VideoPipelineResult>(workflowId);
      before = await listStore(lab, 'lab/');
    } finally {
      cut.linkUp();
    }
    expect(await videoDigests(result)).toEqual(videoBaseline);
    const run = await chunkRun(workflowId, activityId);
    expect(run.attempt).toBeGreaterThanOrEqual(2);
    expect(run.host).not.toBe(cut.name);
    expect(run.resumed).toBeGreaterThanOrEqual(1);
    // Back on the network, the cut-off host learns its chunk is gone (its heartbeat is refused)
    // and stops; whatever it still had in flight must not add, replace or remove an object.
    const deadline = Date.now() + 90_000;
    while (cut.pids().length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    await new Promise((r) => setTimeout(r, 15_000));
    expect(await listStore(lab, 'lab/')).toEqual(before);
  }, 300_000);

  it('store outage: with the S3 server stopped for 20 s mid-pipeline, the pipeline completes after it returns', async () => {
    const s3 = lab.s3;
    if (!s3) throw new Error('no S3 server');
    const { workflowId } = await client.startVideoPipeline({ source: sourceUri, ...VIDEO, idempotencyKey: 'outage' });
    await hostWithCheckpointedChunk(workflowId, 180_000);
    await s3.stop();
    try {
      await new Promise((r) => setTimeout(r, 20_000));
    } finally {
      await s3.start();
    }
    const result = await client.getResult<VideoPipelineResult>(workflowId);
    expect(await videoDigests(result)).toEqual(videoBaseline);
  }, 300_000);
});
