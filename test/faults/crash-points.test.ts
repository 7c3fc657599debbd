/**
 * Fault: the crash-point matrix. For every crash point of every pipeline (CRASH_POINTS in
 * src/shared/constants.ts: each activity's start and end, and each write or delete in the
 * artifacts store), a real `sluice worker` process started with SLUICE_TEST_CRASH_HOOKS=1 and
 * SLUICE_CRASH_AT=<point> SIGKILLs itself the first time it gets there; a second worker with the
 * same environment takes over once the server has timed the lost attempt out. Every run must
 * complete, with artifacts identical (SHA-256) to a clean run of the same input, nothing but the
 * artifacts left in its output folder, and no cleanup that removed artifacts.
 *
 * Each point runs in its own lane (task-queue suffix, data dir, worker processes), several
 * lanes at a time. A clean run per pipeline, with the hooks only recording, must reach exactly
 * the listed points: a new activity or a new write that the list lacks fails here.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { crashMarker } from '../../src/crash-point';
import { generateOrders } from '../../src/data/generate';
import type { ReportPipelineResult } from '../../src/shared/report';
import type { VideoPipelineResult } from '../../src/shared/video';
import type { JobsPipelineResult } from '../../src/workflows/jobs-pipeline';
import { CRASH_POINTS } from '../../src/shared/constants';
import { MEDIA_CACHE, connectClient, listFiles, makeTestEnv, sampleVideo, type TestEnv } from '../helpers/env';
import { spawnWorker, type WorkerProcess } from '../helpers/processes';

type Pipeline = keyof typeof CRASH_POINTS;
const PIPELINES = Object.keys(CRASH_POINTS) as Pipeline[];

/** Lanes running at once: each holds one worker process at a time, mostly waiting for a timeout. */
const CONCURRENT_LANES = 20;
/**
 * Lanes of these pipelines start first: their activities have the longest timeouts (cleanupReport
 * 2 min start-to-close, listPartitions 1 min, mergeReport 60 s heartbeat), so they end the matrix.
 */
const LONGEST_FIRST: Pipeline[] = ['report', 'video', 'hls', 'jobs'];
/** Longest a lane waits for its worker to kill itself. */
const CRASH_WAIT_MS = 120_000;

const PARTITIONS = path.join(MEDIA_CACHE, 'crash-points-orders');
const MONTHS = { from: '2025-01', to: '2025-02' };

/** What a run must reproduce: each artifact's SHA-256 (the manifest without its run-specific fields). */
type Fingerprint = Record<string, string>;

interface Lane {
  t: TestEnv;
  client: SluiceClient;
  workers: WorkerProcess[];
  source?: string;
}

const lanes: Lane[] = [];

async function openLane(name: string, pipeline: Pipeline, crashAt?: string): Promise<Lane> {
  const t = makeTestEnv(name, {
    SLUICE_TEST_CRASH_HOOKS: '1',
    ...(crashAt ? { SLUICE_CRASH_AT: crashAt } : {}),
    SLUICE_LOG_LEVEL: 'error',
    SLUICE_FFMPEG_CONCURRENCY: '1',
    SLUICE_DUCKDB_THREADS: '1',
    // No backlog exporter: dozens of workers polling describeTaskQueue would only load the server.
    SLUICE_SCALE_POLL_MS: '0',
  });
  const lane: Lane = { t, client: await connectClient(t), workers: [] };
  lanes.push(lane);
  if (pipeline === 'video') lane.source = await sampleVideo(t, { seconds: 3 });
  // The streaming package never upscales: a 240p rendition needs a source at least 240 tall.
  if (pipeline === 'hls') lane.source = await sampleVideo(t, { seconds: 3, width: 426, height: 240 });
  if (pipeline === 'report') {
    await fsp.mkdir(t.config.reports.partitionsDir, { recursive: true });
    for (const f of await fsp.readdir(PARTITIONS)) {
      if (f.endsWith('.parquet'))
        await fsp.copyFile(path.join(PARTITIONS, f), path.join(t.config.reports.partitionsDir, f));
    }
  }
  return lane;
}

/** Worker starts that had to be tried again, with why: printed with the matrix. */
const restarts: string[] = [];

/** Worker processes starting at once: a start is CPU-heavy (modules, workflow bundle, version registration). */
const CONCURRENT_STARTS = 4;
let starting = 0;
const startQueue: (() => void)[] = [];

async function startSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (starting >= CONCURRENT_STARTS) await new Promise<void>((r) => startQueue.push(r));
  starting++;
  try {
    return await fn();
  } finally {
    starting--;
    startQueue.shift()?.();
  }
}

async function startWorker(lane: Lane): Promise<WorkerProcess> {
  // Many lanes start workers at once on a shared machine: allow a slow start, and one more try
  // (the harness's retry, not the product's: the worker under test is the one that got ready).
  let w: WorkerProcess;
  try {
    w = await startSlot(() => spawnWorker(lane.t, ['default'], {}, 150_000));
  } catch (err) {
    restarts.push(`${lane.t.suffix}: ${(err as Error).message.slice(0, 300)}`);
    w = await startSlot(() => spawnWorker(lane.t, ['default'], {}, 150_000));
  }
  lane.workers.push(w);
  return w;
}

/**
 * Waits for `work` while keeping a worker of the lane alive: a rescuer that exits before the run
 * is done is replaced, at most twice (printed with the matrix). With 20 lanes starting workers at
 * once, `freePort` can hand two of them the same metrics port: the second exits at once
 * (EADDRINUSE), but the first one's /readyz answered its readiness check, and the run then waited
 * for a worker that was gone.
 */
async function withLiveWorker<T>(lane: Lane, work: Promise<T>): Promise<T> {
  let done = false;
  const settled = work.then(
    () => undefined,
    () => undefined,
  );
  const watch = (async () => {
    for (let replaced = 0; replaced < 2; replaced++) {
      const w = lane.workers.at(-1);
      if (!w) return;
      await Promise.race([w.exited, settled]);
      if (done || (w.child.exitCode === null && w.child.signalCode === null)) return;
      restarts.push(
        `${lane.t.suffix}: a rescuer exited (${w.child.exitCode ?? w.child.signalCode}) before the run was done: ${w.stderr().slice(-300)}`,
      );
      await startWorker(lane);
    }
  })();
  try {
    return await work;
  } finally {
    done = true;
    await watch.catch(() => undefined);
  }
}

async function start(lane: Lane, pipeline: Pipeline, key: string): Promise<{ workflowId: string; runId: string }> {
  const common = { tenant: 'crash', idempotencyKey: key };
  const started =
    pipeline === 'video'
      ? await lane.client.startVideoPipeline({
          source: lane.source!,
          renditions: ['240p'],
          package: 'mp4',
          thumbnails: 1,
          ...common,
        })
      : pipeline === 'hls'
        ? await lane.client.startVideoPipeline({
            source: lane.source!,
            renditions: ['240p'],
            package: 'hls',
            // Two chunks of two 1 s segments (the second chunk one): a resumed chunk and a
            // package joined from several chunks, in a few seconds of encoding.
            chunkSeconds: 2,
            segmentSeconds: 1,
            thumbnails: 1,
            ...common,
          })
        : pipeline === 'report'
          ? await lane.client.startReportPipeline({
              ...MONTHS,
              measures: ['orders', 'revenue'],
              groupBy: ['month', 'region'],
              format: 'csv',
              ...common,
            })
          : await lane.client.startJobsPipeline({
              jobs: [0, 1].map((index) => ({ activity: 'burstSleep', input: { index, ms: 200 } })),
              ...common,
            });
  return { workflowId: started.workflowId, runId: started.runId! };
}

const sha256 = (data: Buffer | string) => crypto.createHash('sha256').update(data).digest('hex');
const fileSha = async (file: string) => sha256(await fsp.readFile(file));

/** A finished run's artifacts, and what else its output folder holds. */
interface Checked {
  fp: Fingerprint;
  /** Files in the run's output folder that are not its artifacts (`.work/`, temp files). */
  leftovers: string[];
}

/** Waits for the run's result, checks each artifact on disk against its record, and lists leftovers. */
async function finished(lane: Lane, pipeline: Pipeline, run: { workflowId: string; runId: string }): Promise<Checked> {
  const dir = path.join(lane.t.outputDir, run.workflowId, run.runId);
  const fp: Fingerprint = {};
  let artifacts: { name: string; path?: string; sha256: string }[] = [];
  if (pipeline === 'video') {
    const result = await lane.client.getResult<VideoPipelineResult>(run.workflowId);
    expect(result.afterFinal).toBeUndefined();
    artifacts = [
      ...result.renditions.map((r) => ({ ...r })),
      ...result.thumbnails.map((th, i) => ({ ...th, name: `thumb-${i + 1}` })),
      { ...result.manifest, name: 'manifest' },
    ];
    // The manifest names its run (IDs, URIs, paths, time): compare what it says about the media.
    const manifest = JSON.parse(await fsp.readFile(result.manifest.path!, 'utf8')) as Record<string, unknown>;
    const strip = (a: Record<string, unknown>) => ({ ...a, uri: undefined, path: undefined });
    fp['manifest (media)'] = sha256(
      JSON.stringify({
        renditions: (manifest.renditions as Record<string, unknown>[]).map(strip),
        thumbnails: (manifest.thumbnails as Record<string, unknown>[]).map(strip),
        sourceDurationSec: manifest.sourceDurationSec,
      }),
    );
  } else if (pipeline === 'hls') {
    const result = await lane.client.getResult<VideoPipelineResult>(run.workflowId);
    expect(result.afterFinal).toBeUndefined();
    const stream = result.stream!;
    const manifest = JSON.parse(await fsp.readFile(result.manifest.path!, 'utf8')) as StreamManifest;
    // Every object the package consists of: playlists, init segments, each media segment (the
    // manifest lists them with their checksums), the previews and the manifest itself.
    const inDir = (name: string, prefix: string, seg: { file: string; sha256: string }) => ({
      name: `${name}/${seg.file}`,
      path: path.join(dir, prefix, seg.file),
      sha256: seg.sha256,
    });
    artifacts = [
      { ...stream.master, name: 'master.m3u8' },
      ...stream.renditions.flatMap((r) => [
        { ...r, name: `${r.name} playlist` },
        { ...r.init, name: `${r.name} init` },
      ]),
      ...manifest.renditions.flatMap((r) => r.segmentList.map((seg) => inDir(r.name, `hls/${r.name}`, seg))),
      ...(stream.audio
        ? [
            { ...stream.audio, name: 'audio playlist' },
            { ...stream.audio.init, name: 'audio init' },
          ]
        : []),
      ...(manifest.audio?.segmentList ?? []).map((seg) => inDir('audio', 'hls/audio', seg)),
      ...(stream.sprite
        ? [
            { ...stream.sprite.image, name: 'sprite.jpg' },
            { ...stream.sprite.vtt, name: 'sprite.vtt' },
          ]
        : []),
      ...result.thumbnails.map((th, i) => ({ ...th, name: `thumb-${i + 1}` })),
      { ...result.manifest, name: 'manifest' },
    ];
    expect(
      manifest.renditions.every((r) => r.segmentList.length > 0),
      'every rendition lists its segments',
    ).toBe(true);
    // The manifest names its run (IDs, URIs, time): compare what it says about the media.
    fp['manifest (media)'] = sha256(JSON.stringify(withoutRunFields(manifest)));
  } else if (pipeline === 'report') {
    const result = await lane.client.getResult<ReportPipelineResult>(run.workflowId);
    expect(result.partial).toBe(false);
    expect(result.afterFinal).toBeUndefined();
    artifacts = [
      { ...result.csv, name: 'report.csv' },
      { ...result.json, name: 'report.json' },
      { ...result.html, name: 'report.html' },
    ];
  } else {
    const result = await lane.client.getResult<JobsPipelineResult>(run.workflowId);
    expect(result.failed).toEqual([]);
    fp.results = sha256(JSON.stringify((result.results as { index: number }[]).map((r) => r.index)));
    fp.succeeded = String(result.succeeded);
    return { fp, leftovers: [] };
  }
  for (const r of artifacts) {
    expect(r.path, `${r.name} has a path`).toBeDefined();
    const onDisk = await fileSha(r.path!);
    expect(onDisk, `${r.name} on disk matches its record`).toBe(r.sha256);
    if (r.name !== 'manifest') fp[r.name] = onDisk;
  }
  const expected = new Set(artifacts.map((r) => path.relative(dir, r.path!)));
  return { fp, leftovers: listFiles(dir).filter((f) => !expected.has(f)) };
}

/** The parts of an `hls` run's `manifest.json` this test reads. */
interface StreamManifest {
  renditions: { name: string; segmentList: { file: string; sha256: string }[] }[];
  audio?: { segmentList: { file: string; sha256: string }[] };
}

/** A manifest without what names its run: IDs, URIs, paths, the source and the time. */
function withoutRunFields(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutRunFields);
  if (value === null || typeof value !== 'object') return value;
  const run = new Set(['workflowId', 'runId', 'uri', 'path', 'url', 'source', 'createdAt']);
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>)
      .filter(([k]) => !run.has(k))
      .map(([k, v]) => [k, withoutRunFields(v)]),
  );
}

/** Cleanup activities this run scheduled that would remove its artifacts. */
async function artifactRemovals(lane: Lane, workflowId: string): Promise<number> {
  const events = (await lane.client.temporal.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  return events.filter((e) => {
    const a = e.activityTaskScheduledEventAttributes;
    const data = a?.input?.payloads?.[0]?.data;
    return (
      /^cleanup/.test(a?.activityType?.name ?? '') &&
      data instanceof Uint8Array &&
      (JSON.parse(Buffer.from(data).toString()) as { removeArtifacts?: boolean }).removeArtifacts === true
    );
  }).length;
}

async function stop(w: WorkerProcess): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  await w.exited;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

interface Outcome {
  pipeline: Pipeline;
  point: string;
  crashed: boolean;
  completed: boolean;
  identical: boolean;
  /** What the run's output folder holds besides its artifacts. */
  leftovers: string[];
  removals: number;
  seconds: number;
  error?: string;
}

const clean = new Map<Pipeline, Fingerprint>();
const outcomes: Outcome[] = [];
const began = Date.now();

beforeAll(async () => {
  if (!fs.existsSync(path.join(PARTITIONS, `${MONTHS.to}.parquet`))) {
    await generateOrders({ dir: PARTITIONS, start: MONTHS.from, months: 2, rowsPerMonth: 2_000, seed: 7, threads: 1 });
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(lanes.flatMap((l) => l.workers.map((w) => stop(w))));
  await Promise.all(lanes.map((l) => l.client.close()));
  // Each lane's folder under the OS temp dir (media, outputs, data): dozens per run.
  await Promise.all(lanes.map((l) => fsp.rm(l.t.dir, { recursive: true, force: true })));
  if (outcomes.length > 0) {
    const mark = (ok: boolean) => (ok ? 'yes' : '**NO**');
    const rows = outcomes.map(
      (o) =>
        `| ${o.pipeline} | \`${o.point}\` | ${mark(o.crashed)} | ${mark(o.completed)} | ${mark(o.identical)} | ${mark(o.leftovers.length === 0)} | ${mark(o.removals === 0)} | ${o.seconds} |` +
        (o.leftovers.length ? ` left: ${o.leftovers.join(', ')}` : '') +
        (o.error ? ` ${o.error.slice(0, 160)}` : ''),
    );
    console.log(
      [
        `crash-point matrix (${outcomes.length} points, ${Math.round((Date.now() - began) / 1000)} s in all)`,
        '| pipeline | crash point | killed there | completed | identical | only artifacts left | no artifact removed | s |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |',
        ...rows,
        ...(restarts.length ? ['worker starts tried again:', ...restarts] : []),
      ].join('\n'),
    );
  }
});

describe('crash-point matrix', () => {
  it('a clean run of each pipeline reaches exactly its listed crash points', async () => {
    await Promise.all(
      PIPELINES.map(async (pipeline) => {
        const lane = await openLane(`crash-clean-${pipeline}`, pipeline);
        const worker = await startWorker(lane);
        // A key per pipeline: video and hls runs share the workflow ID space (`video:<tenant>:<key>`).
        const run = await start(lane, pipeline, `clean-${pipeline}`);
        const { fp, leftovers } = await finished(lane, pipeline, run);
        expect(leftovers, `a clean ${pipeline} run leaves only its artifacts`).toEqual([]);
        clean.set(pipeline, fp);
        await stop(worker);
        const reached = (await fsp.readFile(path.join(lane.t.config.testCrashHooks!.dir, 'reached.log'), 'utf8'))
          .split('\n')
          .filter(Boolean);
        expect([...new Set(reached)].sort(), `crash points reached by a clean ${pipeline} run`).toEqual(
          [...CRASH_POINTS[pipeline]].sort(),
        );
        expect(await artifactRemovals(lane, run.workflowId)).toBe(0);
      }),
    );
  }, 300_000);

  it('a worker SIGKILLed at any crash point: every run completes with identical artifacts', async () => {
    expect(clean.size, 'the clean runs finished').toBe(PIPELINES.length);
    expect([...LONGEST_FIRST].sort(), 'every pipeline has its lanes').toEqual([...PIPELINES].sort());
    // CRASH_MATRIX_ONLY=<regex over "pipeline point"> narrows the matrix while debugging one point.
    const only = process.env.CRASH_MATRIX_ONLY ? new RegExp(process.env.CRASH_MATRIX_ONLY) : undefined;
    const points = LONGEST_FIRST.flatMap((pipeline) =>
      CRASH_POINTS[pipeline].map((point) => ({ pipeline, point })),
    ).filter((p) => !only || only.test(`${p.pipeline} ${p.point}`));
    await pool(points, CONCURRENT_LANES, async ({ pipeline, point }, i) => {
      const t0 = Date.now();
      const outcome: Outcome = {
        pipeline,
        point,
        crashed: false,
        completed: false,
        identical: false,
        leftovers: [],
        removals: 0,
        seconds: 0,
      };
      outcomes.push(outcome);
      try {
        const lane = await openLane(`crash-${i}`, pipeline, point);
        const victim = await startWorker(lane);
        const run = await start(lane, pipeline, `crash-${i}`);
        const killed = await Promise.race([
          victim.exited.then(() => victim.child.signalCode),
          new Promise<string>((r) => setTimeout(() => r('still running'), CRASH_WAIT_MS)),
        ]);
        outcome.crashed = killed === 'SIGKILL' && fs.existsSync(crashMarker(lane.t.config.testCrashHooks!.dir, point));
        if (!outcome.crashed) throw new Error(`the worker did not kill itself at ${point}: ${killed}`);
        await startWorker(lane);
        const { fp, leftovers } = await withLiveWorker(lane, finished(lane, pipeline, run));
        const rescuer = lane.workers.at(-1)!;
        outcome.completed = true;
        outcome.identical = JSON.stringify(fp) === JSON.stringify(clean.get(pipeline));
        outcome.leftovers = leftovers;
        outcome.removals = await artifactRemovals(lane, run.workflowId);
        await stop(rescuer);
      } catch (err) {
        outcome.error = (err as Error).message.replace(/\s+/g, ' ');
      } finally {
        outcome.seconds = Math.round((Date.now() - t0) / 1000);
      }
    });
    const bad = outcomes.filter(
      (o) => !o.crashed || !o.completed || !o.identical || o.leftovers.length > 0 || o.removals > 0,
    );
    expect(bad, 'crash points whose run did not complete identically').toEqual([]);
    expect(outcomes).toHaveLength(points.length);
  }, 900_000);
});
