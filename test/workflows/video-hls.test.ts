/**
 * The video pipeline's streaming package (`hls`) end to end on the real dev server with real
 * activities: a source-aware ladder (a rendition above the source is dropped, with the reason),
 * CMAF renditions and a shared audio group under a master playlist that ffprobe's HLS demuxer
 * reads back, `dash` (an MPD that ffprobe's DASH demuxer reads back), bad packaging input
 * refused at the edge (CLI exit 2, nothing started), an audio-only source streamed as audio only,
 * and a source with neither video nor audio failing once as InvalidMedia.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, type SluiceClient } from '../../src/client';
import { runProcess } from '../../src/activities/media/ffmpeg';
import { vmafAvailability } from '../../src/activities/media/package';
import { FailureType } from '../../src/shared/constants';
import type { VideoPipelineResult } from '../../src/shared/video';
import type { WorkerHost } from '../../src/workers/host';
import { runSluice } from '../helpers/cli';
import { connectClient, listFiles, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: string;

beforeAll(async () => {
  t = makeTestEnv('video-hls');
  source = await sampleVideo(t, { seconds: 10, width: 640, height: 360, fps: 15 });
  host = await startHost(t, ['default']);
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
});

async function failureOf(workflowId: string): Promise<ApplicationFailure | undefined> {
  const err = await client.getResult(workflowId).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  let found: ApplicationFailure | undefined;
  let cur: unknown = (err as WorkflowFailedError).cause;
  while (cur instanceof Error) {
    if (cur instanceof ApplicationFailure) found = cur;
    cur = (cur as { cause?: unknown }).cause;
  }
  return found;
}

/** A 6 s 440 Hz tone (AAC, no video) in the media root, generated once. */
function tone(): string {
  const file = path.join(t.mediaRoot, 'tone.m4a');
  if (!fs.existsSync(file)) {
    execFileSync(t.binaries.ffmpeg, [
      ...['-hide_banner', '-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
      ...['-t', '6', '-c:a', 'aac', file],
    ]);
  }
  return 'tone.m4a';
}

async function refusal(p: Promise<unknown>): Promise<InvalidInputError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InvalidInputError);
  return err as InvalidInputError;
}

describe('videoPipelineWorkflow with package hls', () => {
  it('drops renditions above the source and publishes CMAF renditions, a shared audio group and a master playlist', async () => {
    const { workflowId } = await client.startVideoPipeline({
      source,
      renditions: ['240p', '360p', '720p'],
      segmentSeconds: 2,
      chunkSeconds: 5,
      thumbnails: 1,
      tenant: 'acme',
      idempotencyKey: `hls-${t.suffix}`,
    });
    const result = await client.getResult<VideoPipelineResult>(workflowId);
    const stream = result.stream!;
    expect(stream.package).toBe('hls');
    expect(stream.segmentSeconds).toBe(2);
    expect(stream.dropped.map((d) => d.name)).toEqual(['720p']);
    expect(stream.dropped[0]?.reason).toMatch(/640x360.*never upscaled/);
    expect(stream.renditions.map((r) => [r.name, r.width, r.height, r.segments])).toEqual([
      ['240p', 426, 240, 5],
      ['360p', 640, 360, 5],
    ]);
    expect(result.renditions.map((r) => r.name)).toEqual(['240p', '360p']);
    const runDir = path.join(t.outputDir, workflowId, result.runId);
    expect(stream.master.path).toBe(path.join(runDir, 'master.m3u8'));
    // Only finished artifacts: no `.work/` left, nothing half-written.
    const files = listFiles(runDir);
    expect(files.filter((f) => !f.startsWith('hls/'))).toEqual([
      'manifest.json',
      'master.m3u8',
      'sprite.jpg',
      'sprite.vtt',
      'thumb-01.jpg',
    ]);
    // Scrubbing previews: two 5 s tiles for the 10 s source.
    expect(stream.sprite).toMatchObject({ intervalSeconds: 5, tiles: 2 });
    expect(fs.readFileSync(stream.sprite!.vtt.path!, 'utf8')).toContain('sprite.jpg#xywh=160,0,160,90');
    for (const name of ['240p', '360p', 'audio']) {
      expect(files).toContain(`hls/${name}/playlist.m3u8`);
      expect(files).toContain(`hls/${name}/init.mp4`);
      expect(files.filter((f) => f.startsWith(`hls/${name}/seg-`)).length).toBeGreaterThanOrEqual(5);
    }
    // A second reader: ffprobe's HLS demuxer opens the master playlist and finds every variant.
    const { stdout } = await runProcess(t.binaries.ffprobe, [
      '-v',
      'error',
      '-show_entries',
      'stream=codec_type,width,height:format=duration',
      '-of',
      'json',
      stream.master.path!,
    ]);
    const probed = JSON.parse(stdout) as {
      streams: { codec_type: string; width?: number; height?: number }[];
      format: { duration: string };
    };
    const sizes = probed.streams.filter((s) => s.codec_type === 'video').map((s) => `${s.width}x${s.height}`);
    expect(new Set(sizes)).toEqual(new Set(['426x240', '640x360']));
    expect(probed.streams.some((s) => s.codec_type === 'audio')).toBe(true);
    expect(Math.abs(Number(probed.format.duration) - result.sourceDurationSec)).toBeLessThan(0.2);
  });

  it('refuses an unknown packaging, a segment length outside 1-10 and a ladder empty after dropping, naming the field', async () => {
    const base = { source, tenant: 'acme' };
    expect((await refusal(client.startVideoPipeline({ ...base, package: 'dash9' }))).issues[0]?.path).toBe('package');
    const notBoolean = await refusal(client.startVideoPipeline({ ...base, qualityCheck: 'yes' as unknown as boolean }));
    expect(notBoolean.issues.map((i) => i.path)).toEqual(['qualityCheck']);
    for (const kind of ['hls', 'dash', 'both', 'mp4'])
      expect(client.validateVideo({ ...base, package: kind }).package).toBe(kind);
    for (const segmentSeconds of [0, 11, 2.5]) {
      const err = await refusal(client.startVideoPipeline({ ...base, segmentSeconds }));
      expect(err.issues.map((i) => i.path)).toEqual(['segmentSeconds']);
    }
    const empty = await refusal(client.startVideoPipeline({ ...base, renditions: ['720p', '1080p'] }));
    expect(empty.issues[0]?.path).toBe('renditions');
    expect(empty.message).toMatch(/640x360.*never upscales/);
    // The same request as mp4 is not a streaming package: today's behaviour, nothing refused.
    expect(client.validateVideo({ ...base, renditions: ['720p'], package: 'mp4' }).package).toBe('mp4');
  });

  it('the CLI exits 2 on bad packaging input and starts nothing', async () => {
    for (const args of [
      ['--package', 'dash9'],
      ['--segment-seconds', '11'],
      ['--renditions', '720p,1080p'],
    ]) {
      const run = await runSluice(t, ['video', source, '--tenant', 'acme', '--id', `bad-${t.suffix}`, ...args]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/package|segmentSeconds|renditions/);
    }
    // Nothing started: the workflow ID the requests would have used does not exist.
    await expect(client.temporal.workflow.getHandle(`video:acme:bad-${t.suffix}`).describe()).rejects.toBeInstanceOf(
      WorkflowNotFoundError,
    );
  });

  it('package dash writes an MPD over the CMAF segments, and no HLS master playlist', async () => {
    const { workflowId } = await client.startVideoPipeline({
      source,
      renditions: ['240p', '360p'],
      package: 'dash',
      segmentSeconds: 2,
      thumbnails: 0,
      qualityCheck: true,
      tenant: 'acme',
      idempotencyKey: `dash-${t.suffix}`,
    });
    const result = await client.getResult<VideoPipelineResult>(workflowId);
    const stream = result.stream!;
    const runDir = path.join(t.outputDir, workflowId, result.runId);
    expect(stream.package).toBe('dash');
    expect(stream.mpd?.path).toBe(path.join(runDir, 'manifest.mpd'));
    expect(stream.master.path).toBe(stream.mpd?.path);
    expect(listFiles(runDir).filter((f) => !f.startsWith('hls/'))).toEqual([
      'manifest.json',
      'manifest.mpd',
      'sprite.jpg',
      'sprite.vtt',
    ]);
    const { stdout } = await runProcess(t.binaries.ffprobe, [
      ...['-v', 'error', '-show_entries', 'stream=codec_type,width,height:format=duration', '-of', 'json'],
      stream.mpd!.path!,
    ]);
    const probed = JSON.parse(stdout) as {
      streams: { codec_type: string; height?: number }[];
      format: { duration: string };
    };
    expect(new Set(probed.streams.filter((s) => s.codec_type === 'video').map((s) => s.height))).toEqual(
      new Set([240, 360]),
    );
    expect(Math.abs(Number(probed.format.duration) - result.sourceDurationSec)).toBeLessThan(0.2);
    // qualityCheck: scored, or the result and the manifest say why not.
    const support = await vmafAvailability(t.binaries.ffmpeg);
    const manifest = JSON.parse(fs.readFileSync(result.manifest.path!, 'utf8')) as {
      package: string;
      qualityCheck?: unknown;
      renditions: { quality?: unknown }[];
    };
    expect(manifest.package).toBe('dash');
    console.log(`qualityCheck (dash run): ${JSON.stringify(stream.qualityCheck)}`);
    if (support.available) {
      expect(stream.qualityCheck).toEqual({ available: true });
      for (const r of stream.renditions) expect(r.quality).toMatchObject({ available: true });
    } else {
      expect(stream.qualityCheck).toEqual({ available: false, reason: support.reason });
      for (const r of stream.renditions) expect(r.quality).toEqual({ available: false, reason: support.reason });
    }
    expect(manifest.qualityCheck).toEqual(stream.qualityCheck);
    expect(manifest.renditions.map((r) => r.quality)).toEqual(stream.renditions.map((r) => r.quality));
  });

  it('an audio-only source gets an audio-only stream: one variant in the master playlist, one adaptation set in the MPD', async () => {
    const { workflowId } = await client.startVideoPipeline({
      source: tone(),
      package: 'both',
      segmentSeconds: 2,
      tenant: 'acme',
      idempotencyKey: `hls-audio-only-${t.suffix}`,
    });
    const result = await client.getResult<VideoPipelineResult>(workflowId);
    const stream = result.stream!;
    expect(stream.renditions).toEqual([]);
    expect(result.thumbnails).toEqual([]);
    expect(stream.sprite).toBeUndefined();
    expect(stream.dropped.map((d) => d.reason)).toEqual([
      'the source has no video stream (audio only)',
      'the source has no video stream (audio only)',
    ]);
    // 6 s of AAC in 2 s segments (the encoder's priming can add a sliver of a fourth).
    expect(stream.audio?.segments).toBeGreaterThanOrEqual(3);
    expect(Math.abs(stream.audio!.durationSec - 6)).toBeLessThan(0.1);
    const runDir = path.join(t.outputDir, workflowId, result.runId);
    expect(listFiles(runDir).filter((f) => !f.startsWith('hls/audio/'))).toEqual([
      'manifest.json',
      'manifest.mpd',
      'master.m3u8',
    ]);
    const master = fs.readFileSync(stream.master.path!, 'utf8');
    expect(master.split('\n').filter((l) => l.startsWith('#EXT-X-STREAM-INF:'))).toEqual([
      expect.stringContaining('CODECS="mp4a.40.2"'),
    ]);
    expect(master).toContain('\nhls/audio/playlist.m3u8\n');
    const mpd = fs.readFileSync(stream.mpd!.path!, 'utf8');
    expect(mpd).not.toContain('contentType="video"');
    expect(mpd).toContain('contentType="audio"');
    // Both manifests read back by ffprobe (HLS and DASH demuxers): one audio stream, 6 s.
    for (const file of [stream.master.path!, stream.mpd!.path!]) {
      const { stdout } = await runProcess(t.binaries.ffprobe, [
        ...['-v', 'error', '-show_entries', 'stream=codec_type:format=duration', '-of', 'json', file],
      ]);
      const probed = JSON.parse(stdout) as { streams: { codec_type: string }[]; format: { duration: string } };
      expect(probed.streams.map((s) => s.codec_type)).toEqual(['audio']);
      expect(Math.abs(Number(probed.format.duration) - 6)).toBeLessThan(0.1);
    }
  });

  it('a source with no video and no audio stream fails once with non-retryable InvalidMedia', async () => {
    // A file with one subtitle stream: readable media, nothing to stream.
    const srt = path.join(t.mediaRoot, 'subs.srt');
    fs.writeFileSync(srt, '1\n00:00:00,000 --> 00:00:02,000\nhello\n\n');
    execFileSync(t.binaries.ffmpeg, [
      '-hide_banner',
      '-v',
      'error',
      '-y',
      '-i',
      srt,
      '-c:s',
      'copy',
      path.join(t.mediaRoot, 'subs.mkv'),
    ]);
    const { workflowId } = await client.startVideoPipeline({
      source: 'subs.mkv',
      tenant: 'acme',
      idempotencyKey: `hls-no-av-${t.suffix}`,
    });
    const failure = await failureOf(workflowId);
    expect(failure?.type).toBe(FailureType.InvalidMedia);
    expect(failure?.message).toContain('no video stream and no audio stream');
    const events = (await client.temporal.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const attempts = events
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes?.attempt);
    const probes = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'probeMedia');
    // Probed once, never retried; nothing else ran twice either.
    expect(probes).toHaveLength(1);
    expect(attempts.length).toBeGreaterThan(0);
    expect(attempts.every((a) => a === 1)).toBe(true);
  });

  it('mp4 still refuses a source with no video stream, once, as InvalidMedia', async () => {
    const { workflowId } = await client.startVideoPipeline({
      source: tone(),
      package: 'mp4',
      tenant: 'acme',
      idempotencyKey: `mp4-audio-only-${t.suffix}`,
    });
    const failure = await failureOf(workflowId);
    expect(failure?.type).toBe(FailureType.InvalidMedia);
    expect(failure?.message).toContain('no video stream');
  });
});
