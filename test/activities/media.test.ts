/**
 * Media activities in MockActivityEnvironment, on both backends (a local folder, and a real S3
 * server): probing and bad media, heartbeats, resuming a retried chunk from the verified
 * segments in the store, ranged reads of the source, and cancellation killing ffmpeg.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { ActivityCancellationDetails } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import Bottleneck from 'bottleneck';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createMediaActivities, type TranscodeHeartbeat, type TranscodeChunkInput } from '../../src/activities/media';
import { FailureType } from '../../src/shared/constants';
import { openStorage, type Storage } from '../../src/storage';
import { RangeBridge } from '../../src/storage/range-bridge';
import { makeTestEnv, sampleVideo, type TestEnv } from '../helpers/env';
import { createBucket, s3Env } from '../helpers/s3-server';

let t: TestEnv;
let media: ReturnType<typeof createMediaActivities>;
let sample: string;
const bridge = new RangeBridge();

function mediaOn(storage: Storage) {
  return createMediaActivities({
    binaries: t.binaries,
    mediaRoot: t.mediaRoot,
    storage,
    bridge,
    limiter: new Bottleneck({ maxConcurrent: 2 }),
    segmentSeconds: 2,
  });
}

function storageOf(env: TestEnv): Storage {
  return openStorage(env.config.storage, {
    outputDir: env.config.outputDir,
    partitionsDir: env.config.reports.partitionsDir,
  });
}

beforeAll(async () => {
  t = makeTestEnv('activities');
  sample = await sampleVideo(t, { seconds: 12 });
  media = mediaOn(storageOf(t));
});
afterAll(() => bridge.close());

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
      output: 'p-probe/r1',
      source: sample,
    });
    expect(result.durationSec).toBeGreaterThan(11.5);
    expect(result.durationSec).toBeLessThan(12.5);
    expect(result.width).toBe(320);
    expect(result.height).toBe(180);
    expect(result.hasAudio).toBe(true);
    // A URI, never a bare host path.
    expect(result.uri).toBe(`file://${fs.realpathSync(path.join(t.mediaRoot, sample))}`);
  });

  it('fails a text file once as non-retryable InvalidMedia', async () => {
    fs.writeFileSync(path.join(t.mediaRoot, 'notes.mp4'), 'this is not a video\n');
    await expectFailure(
      run(new MockActivityEnvironment(), media.probeMedia, { output: 'p/r', source: 'notes.mp4' }),
      FailureType.InvalidMedia,
      true,
      'notes.mp4',
    );
  });

  it('fails a zero-length file as non-retryable InvalidMedia', async () => {
    fs.writeFileSync(path.join(t.mediaRoot, 'empty.mp4'), '');
    await expectFailure(
      run(new MockActivityEnvironment(), media.probeMedia, { output: 'p/r', source: 'empty.mp4' }),
      FailureType.InvalidMedia,
      true,
      'empty',
    );
  });

  it('fails a truncated video as non-retryable InvalidMedia', async () => {
    const full = fs.readFileSync(path.join(t.mediaRoot, sample));
    fs.writeFileSync(path.join(t.mediaRoot, 'truncated.mp4'), full.subarray(0, Math.floor(full.length / 2)));
    await expectFailure(
      run(new MockActivityEnvironment(), media.probeMedia, { output: 'p/r', source: 'truncated.mp4' }),
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
      run(new MockActivityEnvironment(), media.probeMedia, { output: 'p/r', source: 'escape.mp4' }),
      FailureType.Forbidden,
      true,
      'outside the media root',
    );
  });

  it('reports a missing file as NotFound', async () => {
    await expectFailure(
      run(new MockActivityEnvironment(), media.probeMedia, { output: 'p/r', source: 'nope.mp4' }),
      FailureType.NotFound,
      true,
      'nope.mp4',
    );
  });
});

const backends = ['file', 's3'] as const;

describe.each(backends)('transcodeChunk on the %s backend', (backend) => {
  let store: Storage;
  let m: ReturnType<typeof createMediaActivities>;
  let source: string;
  beforeAll(async () => {
    if (backend === 'file') {
      store = storageOf(t);
      m = media;
      source = sample;
      return;
    }
    const s3 = inject('s3');
    const bucket = await createBucket(s3, 'media');
    const env = makeTestEnv('activities-s3', { ...s3Env(s3), SLUICE_STORAGE_URL: `s3://${bucket}/sluice` });
    store = storageOf(env);
    m = mediaOn(store);
    // The source lives in the store too: the encoders read it by ranges.
    await store.uploads.putFile('sample.mp4', path.join(t.mediaRoot, sample));
    source = store.uploads.uri('sample.mp4');
  });

  const chunk = (run: string, over: Partial<TranscodeChunkInput> = {}): TranscodeChunkInput => ({
    output: `${run}/r1`,
    source,
    rendition: '240p',
    chunkIndex: 0,
    startSec: 0,
    durationSec: 6,
    ...over,
  });
  const chunkKey = (run: string, file = '') => `${run}/r1/.work/240p/chunk-00000/${file}`;
  const segmentsIn = async (run: string) =>
    (await store.artifacts.list(chunkKey(run))).map((o) => o.key.split('/').at(-1)).filter((f) => f?.endsWith('.ts'));

  it('heartbeats checksummed segments as it goes and writes all of them', async () => {
    const env = new MockActivityEnvironment();
    const beats: TranscodeHeartbeat[] = [];
    env.on('heartbeat', (d: TranscodeHeartbeat) => beats.push(structuredClone(d)));
    const result = await run(env, m.transcodeChunk, chunk('p-beat'));
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
    expect(await segmentsIn('p-beat')).toEqual(['seg-00000.ts', 'seg-00001.ts', 'seg-00002.ts']);
    // Nothing is left in this host's scratch folder.
    expect(fs.readdirSync(store.scratchDir)).toEqual([]);
    if (backend === 's3') expect(result.sourceBytesRead).toBeGreaterThan(0);
    else expect(result.sourceBytesRead).toBeUndefined();
  });

  it('a retried chunk resumes after its verified segments and does not redo them', async () => {
    const first = new MockActivityEnvironment();
    let details: TranscodeHeartbeat | undefined;
    first.on('heartbeat', (d: TranscodeHeartbeat) => (details = structuredClone(d)));
    await run(first, m.transcodeChunk, chunk('p-resume'));
    // Simulate a crash after two segments: the chunk never finished, the third segment is gone.
    await store.artifacts.delete(chunkKey('p-resume', 'done.json'));
    await store.artifacts.delete(chunkKey('p-resume', 'seg-00002.ts'));
    const kept = details?.segments.slice(0, 2) ?? [];
    expect(kept).toHaveLength(2);
    const written = store.meter.written;

    const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: { segments: kept, outTimeSec: 4 } });
    const result = await run(retry, m.transcodeChunk, chunk('p-resume'));
    expect(result.resumedSegments).toBe(2);
    expect(result.segments).toBe(3);
    // Only the third segment (plus small JSON records) was written again.
    const third = details!.segments[2]!;
    expect(store.meter.written - written).toBeLessThan(third.bytes + 4096);
    expect(await store.artifacts.verify(chunkKey('p-resume', third.file), third.bytes, third.sha256)).toBe(true);
  });

  it('a segment whose checksum no longer matches is redone, with everything after it', async () => {
    const first = new MockActivityEnvironment();
    let details: TranscodeHeartbeat | undefined;
    first.on('heartbeat', (d: TranscodeHeartbeat) => (details = structuredClone(d)));
    await run(first, m.transcodeChunk, chunk('p-tamper'));
    await store.artifacts.delete(chunkKey('p-tamper', 'done.json'));
    await store.artifacts.put(chunkKey('p-tamper', 'seg-00001.ts'), Buffer.from('garbage'));
    const retry = new MockActivityEnvironment({
      attempt: 2,
      heartbeatDetails: { segments: details?.segments ?? [], outTimeSec: 4 },
    });
    const result = await run(retry, m.transcodeChunk, chunk('p-tamper'));
    expect(result.resumedSegments).toBe(1);
    expect(result.segments).toBe(3);
  });

  it('a chunk reads only its own part of a large source, never the whole of it', async () => {
    const long = await sampleVideo(t, { seconds: 40, width: 640, height: 360, fps: 25 });
    const size = fs.statSync(path.join(t.mediaRoot, long)).size;
    if (backend === 'file') return expect(size).toBeGreaterThan(0);
    await store.uploads.putFile('long-read.mp4', path.join(t.mediaRoot, long));
    const result = await run(
      new MockActivityEnvironment(),
      m.transcodeChunk,
      chunk('p-ranges', { source: store.uploads.uri('long-read.mp4'), startSec: 20, durationSec: 4 }),
    );
    expect(result.segments).toBe(2);
    // 4 s of a 40 s source, plus its index and the socket read-ahead: less than the whole source.
    expect(result.sourceBytesRead).toBeGreaterThan(0);
    expect(result.sourceBytesRead).toBeLessThan(size);
  });

  it('cancellation kills ffmpeg and removes the chunk from the store and from scratch', async () => {
    const long = await sampleVideo(t, { seconds: 40, width: 640, height: 360, fps: 25 });
    if (backend === 's3') await store.uploads.putFile('long.mp4', path.join(t.mediaRoot, long));
    const longSource = backend === 's3' ? store.uploads.uri('long.mp4') : long;
    const env = new MockActivityEnvironment();
    let beats = 0;
    env.on('heartbeat', () => {
      beats++;
      if (beats === 2) env.cancel('CANCELLED', new ActivityCancellationDetails({ cancelRequested: true }));
    });
    const err = await run(
      env,
      m.transcodeChunk,
      chunk('p-cancel', { source: longSource, rendition: '720p', durationSec: 40 }),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CancelledFailure);
    const running = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(store.scratchDir));
    expect(running).toEqual([]);
    expect(await store.artifacts.list('p-cancel/r1/.work/720p/chunk-00000')).toEqual([]);
    expect(fs.readdirSync(store.scratchDir)).toEqual([]);
  });
});

describe('sources in the store', () => {
  it('a missing object fails once as non-retryable ObjectNotFound naming the URI', async () => {
    const s3 = inject('s3');
    const bucket = await createBucket(s3, 'missing');
    const env = makeTestEnv('activities-missing', { ...s3Env(s3), SLUICE_STORAGE_URL: `s3://${bucket}` });
    const m = mediaOn(storageOf(env));
    await expectFailure(
      run(new MockActivityEnvironment(), m.probeMedia, { output: 'p/r', source: `s3://${bucket}/nope.mp4` }),
      FailureType.ObjectNotFound,
      true,
      `s3://${bucket}/nope.mp4`,
    );
  });
});
