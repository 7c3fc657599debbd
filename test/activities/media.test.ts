/**
 * Media activities in MockActivityEnvironment: probing and bad media, heartbeats, resuming a
 * retried chunk from its verified segments, and cancellation killing ffmpeg.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { ActivityCancellationDetails } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import Bottleneck from 'bottleneck';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMediaActivities, type TranscodeHeartbeat, type TranscodeChunkInput } from '../../src/activities/media';
import { FailureType } from '../../src/shared/constants';
import { makeTestEnv, sampleVideo, type TestEnv } from '../helpers/env';

let t: TestEnv;
let media: ReturnType<typeof createMediaActivities>;
let sample: string;

beforeAll(async () => {
  t = makeTestEnv('activities');
  sample = await sampleVideo(t, { seconds: 12 });
  media = createMediaActivities({
    binaries: t.binaries,
    mediaRoot: t.mediaRoot,
    outputRoot: t.outputDir,
    limiter: new Bottleneck({ maxConcurrent: 2 }),
    segmentSeconds: 2,
  });
});

/** MockActivityEnvironment.run with the activity's own return type. */
function run<A, R>(env: MockActivityEnvironment, fn: (input: A) => Promise<R>, input: A): Promise<R> {
  return env.run<[A], R, typeof fn>(fn, input);
}

async function expectFailure(
  p: Promise<unknown>,
  type: string,
  nonRetryable: boolean,
  messagePart: string,
): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  const failure = err as ApplicationFailure;
  expect(failure.type).toBe(type);
  expect(failure.nonRetryable).toBe(nonRetryable);
  expect(failure.message).toContain(messagePart);
}

describe('probeMedia', () => {
  it('reports duration, size and streams of a generated video', async () => {
    const result = await run(new MockActivityEnvironment(), media.probeMedia, {
      pipelineId: 'p-probe',
      source: sample,
    });
    expect(result.durationSec).toBeGreaterThan(11.5);
    expect(result.durationSec).toBeLessThan(12.5);
    expect(result.width).toBe(320);
    expect(result.height).toBe(180);
    expect(result.hasAudio).toBe(true);
    expect(result.path).toBe(fs.realpathSync(path.join(t.mediaRoot, sample)));
  });

  it('fails a text file once as non-retryable InvalidMedia', async () => {
    fs.writeFileSync(path.join(t.mediaRoot, 'notes.mp4'), 'this is not a video\n');
    await expectFailure(
      run(new MockActivityEnvironment(), media.probeMedia, { pipelineId: 'p', source: 'notes.mp4' }),
      FailureType.InvalidMedia,
      true,
      'notes.mp4',
    );
  });

  it('fails a zero-length file as non-retryable InvalidMedia', async () => {
    fs.writeFileSync(path.join(t.mediaRoot, 'empty.mp4'), '');
    await expectFailure(
      run(new MockActivityEnvironment(), media.probeMedia, { pipelineId: 'p', source: 'empty.mp4' }),
      FailureType.InvalidMedia,
      true,
      'empty',
    );
  });

  it('fails a truncated video as non-retryable InvalidMedia', async () => {
    const full = fs.readFileSync(path.join(t.mediaRoot, sample));
    fs.writeFileSync(path.join(t.mediaRoot, 'truncated.mp4'), full.subarray(0, Math.floor(full.length / 2)));
    await expectFailure(
      run(new MockActivityEnvironment(), media.probeMedia, { pipelineId: 'p', source: 'truncated.mp4' }),
      FailureType.InvalidMedia,
      true,
      'truncated.mp4',
    );
  });

  it('refuses a symlink that leads outside the media root as Forbidden', async () => {
    const outside = path.join(t.dir, 'outside.mp4');
    fs.copyFileSync(path.join(t.mediaRoot, sample), outside);
    fs.symlinkSync(outside, path.join(t.mediaRoot, 'escape.mp4'));
    await expectFailure(
      run(new MockActivityEnvironment(), media.probeMedia, { pipelineId: 'p', source: 'escape.mp4' }),
      FailureType.Forbidden,
      true,
      'outside the media root',
    );
  });

  it('reports a missing file as NotFound', async () => {
    await expectFailure(
      run(new MockActivityEnvironment(), media.probeMedia, { pipelineId: 'p', source: 'nope.mp4' }),
      FailureType.NotFound,
      true,
      'nope.mp4',
    );
  });
});

describe('transcodeChunk', () => {
  const chunk = (pipelineId: string, over: Partial<TranscodeChunkInput> = {}): TranscodeChunkInput => ({
    pipelineId,
    source: sample,
    rendition: '240p',
    chunkIndex: 0,
    startSec: 0,
    durationSec: 6,
    ...over,
  });
  const chunkDir = (pipelineId: string) => path.join(t.outputDir, pipelineId, '.work', '240p', 'chunk-00000');

  it('heartbeats checksummed segments as it goes and writes all of them', async () => {
    const env = new MockActivityEnvironment();
    const beats: TranscodeHeartbeat[] = [];
    env.on('heartbeat', (d: TranscodeHeartbeat) => beats.push(structuredClone(d)));
    const result = await run(env, media.transcodeChunk, chunk('p-beat'));
    expect(result.segments).toBe(3);
    expect(result.resumedSegments).toBe(0);
    expect(beats.length).toBeGreaterThan(0);
    // Segments are recorded in order as ffmpeg finishes them, each with its checksum.
    expect(beats[0]?.segments).toEqual([]);
    const counts = beats.map((b) => b.segments.length);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    const last = beats.at(-1);
    expect(last?.segments.map((s) => s.index)).toEqual([0, 1, 2].slice(0, last?.segments.length));
    expect(last?.segments.length).toBeGreaterThanOrEqual(2);
    expect(last?.segments.every((s) => /^[0-9a-f]{64}$/.test(s.sha256))).toBe(true);
    expect(fs.readdirSync(chunkDir('p-beat')).filter((f) => f.endsWith('.ts'))).toEqual([
      'seg-00000.ts',
      'seg-00001.ts',
      'seg-00002.ts',
    ]);
  });

  it('a retried chunk resumes after its verified segments and does not redo them', async () => {
    const first = new MockActivityEnvironment();
    let details: TranscodeHeartbeat | undefined;
    first.on('heartbeat', (d: TranscodeHeartbeat) => (details = structuredClone(d)));
    await run(first, media.transcodeChunk, chunk('p-resume'));
    const dir = chunkDir('p-resume');
    // Simulate a crash after two segments: the chunk never finished, the third segment is gone.
    fs.rmSync(path.join(dir, 'done.json'));
    fs.rmSync(path.join(dir, 'seg-00002.ts'));
    const kept = details?.segments.slice(0, 2) ?? [];
    expect(kept).toHaveLength(2);
    const mtimes = kept.map((s) => fs.statSync(path.join(dir, s.file)).mtimeMs);

    const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: { segments: kept, outTimeSec: 4 } });
    const result = await run(retry, media.transcodeChunk, chunk('p-resume'));
    expect(result.resumedSegments).toBe(2);
    expect(result.segments).toBe(3);
    expect(kept.map((s) => fs.statSync(path.join(dir, s.file)).mtimeMs)).toEqual(mtimes);
    expect(fs.existsSync(path.join(dir, 'seg-00002.ts'))).toBe(true);
  });

  it('a segment whose checksum no longer matches is redone, with everything after it', async () => {
    const first = new MockActivityEnvironment();
    let details: TranscodeHeartbeat | undefined;
    first.on('heartbeat', (d: TranscodeHeartbeat) => (details = structuredClone(d)));
    await run(first, media.transcodeChunk, chunk('p-tamper'));
    const dir = chunkDir('p-tamper');
    fs.rmSync(path.join(dir, 'done.json'));
    fs.appendFileSync(path.join(dir, 'seg-00001.ts'), Buffer.from('garbage'));
    const retry = new MockActivityEnvironment({
      attempt: 2,
      heartbeatDetails: { segments: details?.segments ?? [], outTimeSec: 4 },
    });
    const result = await run(retry, media.transcodeChunk, chunk('p-tamper'));
    expect(result.resumedSegments).toBe(1);
    expect(result.segments).toBe(3);
  });

  it('cancellation kills ffmpeg and removes the chunk files', async () => {
    const long = await sampleVideo(t, { seconds: 40, width: 640, height: 360, fps: 25 });
    const env = new MockActivityEnvironment();
    const dir = path.join(t.outputDir, 'p-cancel', '.work', '720p', 'chunk-00000');
    let beats = 0;
    env.on('heartbeat', () => {
      beats++;
      if (beats === 2) env.cancel('CANCELLED', new ActivityCancellationDetails({ cancelRequested: true }));
    });
    const err = await run(
      env,
      media.transcodeChunk,
      chunk('p-cancel', { source: long, rendition: '720p', durationSec: 40 }),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CancelledFailure);
    const running = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(dir));
    expect(running).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
