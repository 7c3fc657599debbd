/**
 * Streaming packages (`hls`) in MockActivityEnvironment on the file backend: segments encoded
 * for two renditions have their keyframes at the same timestamps (read back from the CMAF
 * outputs with ffprobe, not taken from the flags), the master playlist carries what was measured,
 * and a rendition whose transcode was interrupted and resumed packages byte-identically.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import Bottleneck from 'bottleneck';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMediaActivities, type TranscodeChunkInput, type TranscodeHeartbeat } from '../../src/activities/media';
import { runProcess } from '../../src/activities/media/ffmpeg';
import {
  createPackagingActivities,
  initTimescale,
  mediaPlaylist,
  mpdFrameRate,
  parseMediaPlaylist,
  spriteVtt,
  vmafAvailability,
  vmafFromLog,
} from '../../src/activities/media/package';
import { planLadder } from '../../src/shared/ladder';
import type { StreamAudioArtifact, StreamRenditionArtifact } from '../../src/shared/video';
import { openStorage, type Storage } from '../../src/storage';
import { RangeBridge } from '../../src/storage/range-bridge';
import { makeTestEnv, sampleVideo, type TestEnv } from '../helpers/env';

let t: TestEnv;
let store: Storage;
let media: ReturnType<typeof createMediaActivities>;
let pack: ReturnType<typeof createPackagingActivities>;
let source: string;
const bridge = new RangeBridge();
const SEGMENT = 2;
const DURATION = 10;
// Two chunks: [0, 6) and [6, 10): each a whole number of segments.
const CHUNKS = [
  { startSec: 0, durationSec: 6 },
  { startSec: 6, durationSec: 4 },
];

function run<A, R>(env: MockActivityEnvironment, fn: (input: A) => Promise<R>, input: A): Promise<R> {
  return env.run<[A], R, typeof fn>(fn, input);
}

beforeAll(async () => {
  t = makeTestEnv('package');
  const name = await sampleVideo(t, { seconds: DURATION, width: 640, height: 360, fps: 15 });
  source = `file://${fs.realpathSync(path.join(t.mediaRoot, name))}`;
  store = openStorage(t.config.storage, {
    outputDir: t.config.outputDir,
    partitionsDir: t.config.reports.partitionsDir,
  });
  const deps = {
    binaries: t.binaries,
    mediaRoot: t.mediaRoot,
    storage: store,
    bridge,
    limiter: new Bottleneck({ maxConcurrent: 2 }),
  };
  media = createMediaActivities(deps);
  pack = createPackagingActivities(deps);
});
afterAll(() => bridge.close());

const ladder = () => planLadder(['240p', '360p'], 640, 360);

function chunkInput(output: string, rendition: '240p', index: number): TranscodeChunkInput {
  const rung = ladder().renditions.find((r) => r.name === rendition)!;
  return {
    output,
    source,
    rendition,
    chunkIndex: index,
    ...CHUNKS[index]!,
    stream: { segmentSeconds: SEGMENT, width: rung.width, height: rung.height },
  };
}

/** Every video packet's pts and key flag, read through ffprobe's HLS demuxer from the media playlist. */
async function keyframeTimes(playlist: string): Promise<number[]> {
  const { stdout } = await runProcess(t.binaries.ffprobe, [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-show_entries',
    'packet=pts_time,flags',
    '-of',
    'csv=p=0',
    playlist,
  ]);
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l.split(',')[1]?.startsWith('K'))
    .map((l) => Number(l.split(',')[0]));
}

/** The first packet of one CMAF segment (init + segment joined), and how many keyframes it holds. */
async function segmentKeyframes(init: string, segment: string): Promise<{ firstIsKey: boolean; keys: number }> {
  const joined = path.join(t.dir, `probe-${crypto.randomBytes(4).toString('hex')}.mp4`);
  fs.writeFileSync(joined, Buffer.concat([fs.readFileSync(init), fs.readFileSync(segment)]));
  const { stdout } = await runProcess(t.binaries.ffprobe, [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-show_entries',
    'packet=flags',
    '-of',
    'csv=p=0',
    joined,
  ]);
  fs.rmSync(joined);
  const flags = stdout.trim().split('\n');
  return { firstIsKey: flags[0]?.startsWith('K') ?? false, keys: flags.filter((f) => f.startsWith('K')).length };
}

const shaOf = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Every file of a packaged rendition with its checksum. */
function packagedFiles(output: string, rendition: string): Record<string, string> {
  const dir = path.join(t.outputDir, output, 'hls', rendition);
  return Object.fromEntries(fs.readdirSync(dir).map((f) => [f, shaOf(path.join(dir, f))]));
}

describe('stream packaging', () => {
  const output = 'pkg-a/r1';
  const renditions: StreamRenditionArtifact[] = [];
  let audio: StreamAudioArtifact;

  it('packages each rendition into one CMAF segment per encoded segment, keyframes at the same times in every rendition', async () => {
    for (const rung of ladder().renditions) {
      for (const index of [0, 1]) {
        const input = { ...chunkInput(output, '240p', index), rendition: rung.name };
        input.stream = { segmentSeconds: SEGMENT, width: rung.width, height: rung.height };
        await run(new MockActivityEnvironment(), media.transcodeChunk, input);
      }
      renditions.push(
        await run(new MockActivityEnvironment(), pack.packageRendition, {
          output,
          rendition: rung.name,
          chunkCount: CHUNKS.length,
          segmentSeconds: SEGMENT,
        }),
      );
    }
    expect(renditions.map((r) => `${r.width}x${r.height}`)).toEqual(['426x240', '640x360']);
    const times: number[][] = [];
    for (const r of renditions) {
      expect(r.segments).toBe(DURATION / SEGMENT);
      const playlist = fs.readFileSync(r.path!, 'utf8');
      const listed = parseMediaPlaylist(playlist);
      expect(listed.map((s) => s.durationSec)).toEqual(Array.from({ length: DURATION / SEGMENT }, () => SEGMENT));
      expect(playlist).toContain('#EXT-X-ENDLIST');
      expect(playlist).toContain('#EXT-X-MAP:URI="init.mp4"');
      // Read back from the outputs: one keyframe per segment, as its first frame.
      for (const seg of listed) {
        const k = await segmentKeyframes(r.init.path!, path.join(path.dirname(r.path!), seg.file));
        expect(k).toEqual({ firstIsKey: true, keys: 1 });
      }
      times.push(await keyframeTimes(r.path!));
    }
    expect(times[0]).toHaveLength(DURATION / SEGMENT);
    // The same keyframe timestamps in both renditions, one segment length apart.
    expect(times[1]).toEqual(times[0]);
    const gaps = times[0]!.slice(1).map((v, i) => v - times[0]![i]!);
    for (const gap of gaps) expect(gap).toBeCloseTo(SEGMENT, 3);
  });

  it('encodes the audio once into a shared AAC group of CMAF segments', async () => {
    audio = await run(new MockActivityEnvironment(), pack.packageAudio, {
      output,
      source,
      durationSec: DURATION,
      segmentSeconds: SEGMENT,
    });
    expect(audio.codecs).toBe('mp4a.40.2');
    // Published while it encoded: an EVENT playlist, ended once the whole group is out.
    const audioPlaylist = fs.readFileSync(audio.path!, 'utf8');
    expect(audioPlaylist).toContain('#EXT-X-PLAYLIST-TYPE:EVENT');
    expect(audioPlaylist.trimEnd().endsWith('#EXT-X-ENDLIST')).toBe(true);
    expect(parseMediaPlaylist(audioPlaylist)).toHaveLength(audio.segments);
    expect(audio.segments).toBeGreaterThanOrEqual(DURATION / SEGMENT);
    expect(Math.abs(audio.durationSec - DURATION)).toBeLessThan(0.1);
    const { stdout } = await runProcess(t.binaries.ffprobe, [
      '-v',
      'error',
      '-show_entries',
      'stream=codec_type,codec_name,channels,sample_rate',
      '-of',
      'csv=p=0',
      audio.path!,
    ]);
    expect(stdout.trim().split('\n')[0]).toBe('aac,audio,48000,2');
  });

  it('writes a master playlist with bandwidths, resolution, codecs and frame rate measured from the segments', async () => {
    const { master, manifest } = await run(new MockActivityEnvironment(), pack.writeStreamPlaylists, {
      output,
      workflowId: 'pkg-a',
      runId: 'r1',
      source,
      sourceDurationSec: DURATION,
      segmentSeconds: SEGMENT,
      renditions,
      audio,
      thumbnails: [],
      dropped: [],
    });
    const text = fs.readFileSync(master.path!, 'utf8');
    const variants = text.split('\n').filter((l) => l.startsWith('#EXT-X-STREAM-INF:'));
    expect(variants).toHaveLength(2);
    for (const [i, r] of renditions.entries()) {
      const attrs = variants[i]!;
      const bandwidth = Number(/[:,]BANDWIDTH=(\d+)/.exec(attrs)?.[1]);
      const average = Number(/AVERAGE-BANDWIDTH=(\d+)/.exec(attrs)?.[1]);
      // Measured: the video's bytes over its duration, plus the audio's.
      const videoBytes = fs
        .readdirSync(path.dirname(r.path!))
        .filter((f) => f.endsWith('.m4s'))
        .reduce((a, f) => a + fs.statSync(path.join(path.dirname(r.path!), f)).size, 0);
      expect(average).toBe(Math.ceil((videoBytes * 8) / DURATION + audio.averageBitsPerSec));
      expect(bandwidth).toBeGreaterThanOrEqual(average);
      expect(attrs).toContain(`RESOLUTION=${r.width}x${r.height}`);
      expect(attrs).toMatch(/CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"/);
      expect(attrs).toContain('FRAME-RATE=15.000');
      expect(attrs).toContain('AUDIO="audio"');
    }
    expect(text).toContain('URI="hls/audio/playlist.m3u8"');
    // The codecs string is the one in the init segment's avcC, and ffprobe agrees on profile and level.
    const { stdout } = await runProcess(t.binaries.ffprobe, [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=profile,level',
      '-of',
      'csv=p=0',
      renditions[0]!.path!,
    ]);
    const [profile, level] = stdout.trim().split('\n')[0]!.split(',');
    expect(profile).toBe('High');
    expect(renditions[0]!.codecs).toBe(`avc1.6400${Number(level).toString(16).padStart(2, '0')}`);
    const m = JSON.parse(fs.readFileSync(manifest.path!, 'utf8')) as {
      renditions: { segmentList: { file: string; sha256: string }[] }[];
    };
    const dir = path.dirname(renditions[0]!.path!);
    for (const seg of m.renditions[0]!.segmentList) expect(shaOf(path.join(dir, seg.file))).toBe(seg.sha256);
  });

  it('dash writes an MPD over the same segments, each timeline in its track timescale (as ffprobe reads it)', async () => {
    const { master, mpd } = await run(new MockActivityEnvironment(), pack.writeStreamPlaylists, {
      output,
      workflowId: 'pkg-a',
      runId: 'r1',
      source,
      sourceDurationSec: DURATION,
      package: 'dash',
      segmentSeconds: SEGMENT,
      renditions,
      audio,
      thumbnails: [],
      dropped: [],
    });
    expect(master.path).toBe(mpd?.path);
    expect(path.basename(mpd!.path!)).toBe('manifest.mpd');
    const xml = fs.readFileSync(mpd!.path!, 'utf8');
    expect(xml).toContain('type="static" mediaPresentationDuration="PT10.000S"');
    for (const name of [...renditions.map((r) => r.name), 'audio']) {
      const init = path.join(path.dirname(master.path!), 'hls', name, 'init.mp4');
      const { stdout } = await runProcess(t.binaries.ffprobe, [
        ...['-v', 'error', '-show_entries', 'stream=time_base', '-of', 'csv=p=0', init],
      ]);
      const timescale = Number(stdout.trim().split('/')[1]);
      expect(initTimescale(fs.readFileSync(init))).toBe(timescale);
      // This track's template: its timescale, and a timeline that adds up to its segments' length.
      const block = xml.slice(xml.indexOf(`<Representation id="${name}"`));
      const template = /<SegmentTemplate timescale="(\d+)"[^>]*>([\s\S]*?)<\/SegmentTemplate>/.exec(block)!;
      expect(Number(template[1])).toBe(timescale);
      const ticks = [...template[2]!.matchAll(/d="(\d+)"(?: r="(\d+)")?/g)].reduce(
        (a, m) => a + Number(m[1]) * (1 + Number(m[2] ?? 0)),
        0,
      );
      const listed = parseMediaPlaylist(fs.readFileSync(path.join(path.dirname(init), 'playlist.m3u8'), 'utf8'));
      expect(ticks).toBe(Math.round(listed.reduce((a, l) => a + l.durationSec, 0) * timescale));
    }
    for (const r of renditions) {
      expect(xml).toContain(
        `<Representation id="${r.name}" bandwidth="${Math.ceil(r.peakBitsPerSec)}" codecs="${r.codecs}" width="${r.width}" height="${r.height}" frameRate="15"`,
      );
    }
    expect(mpdFrameRate(29.97)).toBe('30000/1001');
    expect(mpdFrameRate(25)).toBe('25');
  });

  it('publishes chunk by chunk while the run goes: in order, an EVENT playlist that only grows, the same bytes as packaging at once', async () => {
    const live = 'pkg-live/r1';
    for (const index of [0, 1])
      await run(new MockActivityEnvironment(), media.transcodeChunk, chunkInput(live, '240p', index));
    const publish = (chunkIndex: number) =>
      run(new MockActivityEnvironment(), pack.publishChunk, {
        output: live,
        rendition: '240p',
        chunkIndex,
        segmentSeconds: SEGMENT,
      });
    const dir = path.join(t.outputDir, live, 'hls', '240p');
    // Out of order is refused (retryable: the workflow only asks in order).
    await expect(publish(1)).rejects.toThrow(/chunk 0 is not published yet/);
    expect(fs.existsSync(path.join(dir, 'playlist.m3u8'))).toBe(false);

    const first = await publish(0);
    const one = (file: string) => fs.readFileSync(path.join(dir, file), 'utf8');
    let playlist = one('playlist.m3u8');
    expect(playlist).toContain('#EXT-X-PLAYLIST-TYPE:EVENT');
    expect(playlist).not.toContain('#EXT-X-ENDLIST');
    expect(parseMediaPlaylist(playlist).map((s) => s.file)).toEqual([
      'seg-00000.m4s',
      'seg-00001.m4s',
      'seg-00002.m4s',
    ]);
    expect(first).toMatchObject({ name: '240p', width: 426, height: 240, frameRate: 15, segments: 3 });
    expect(first.codecs).toBe(renditions[0]!.codecs);

    // Playable now: the master names the rendition (and the audio group, when asked).
    const { master, playbackUrl } = await run(new MockActivityEnvironment(), pack.publishMaster, {
      output: live,
      renditions: [first],
      audio: false,
    });
    expect(playbackUrl).toBe(master.uri);
    expect(fs.readFileSync(master.path!, 'utf8')).toContain('hls/240p/playlist.m3u8');
    // What is out so far plays: the init segment and the three segments, joined, are one stream
    // with a keyframe every segment length (ffprobe's HLS demuxer would wait on an EVENT playlist).
    const joined = path.join(t.dir, 'live-prefix.mp4');
    fs.writeFileSync(
      joined,
      Buffer.concat(
        ['init.mp4', ...parseMediaPlaylist(playlist).map((s) => s.file)].map((f) => fs.readFileSync(path.join(dir, f))),
      ),
    );
    expect(await keyframeTimes(joined)).toEqual([0, SEGMENT, 2 * SEGMENT]);

    await publish(1);
    playlist = one('playlist.m3u8');
    expect(playlist).not.toContain('#EXT-X-ENDLIST');
    // It grew by appending: the first version is a prefix of the second.
    const grown = parseMediaPlaylist(playlist);
    expect(grown.map((s) => s.file)).toEqual(['00000', '00001', '00002', '00003', '00004'].map((n) => `seg-${n}.m4s`));
    const before = packagedFiles(live, '240p');
    await publish(1);
    expect(packagedFiles(live, '240p')).toEqual(before);

    // Chunk 1's fragments were moved into place: every segment and the init segment are
    // byte-identical to packaging the whole rendition in one run (the first test's).
    const whole = packagedFiles('pkg-a/r1', '240p');
    for (const file of Object.keys(whole).filter((f) => f !== 'playlist.m3u8')) expect(before[file]).toBe(whole[file]);

    const done = await run(new MockActivityEnvironment(), pack.finishRendition, {
      output: live,
      rendition: '240p',
      chunkCount: CHUNKS.length,
      segmentSeconds: SEGMENT,
    });
    playlist = one('playlist.m3u8');
    expect(playlist.trimEnd().endsWith('#EXT-X-ENDLIST')).toBe(true);
    expect(playlist.startsWith(mediaPlaylist(grown, SEGMENT, false))).toBe(true);
    const { name, width, height, frameRate, codecs, segments, peakBitsPerSec, averageBitsPerSec, durationSec } =
      renditions[0]!;
    expect(done).toMatchObject({
      name,
      width,
      height,
      frameRate,
      codecs,
      segments,
      peakBitsPerSec,
      averageBitsPerSec,
      durationSec,
    });
    expect(await keyframeTimes(done.path!)).toEqual(await keyframeTimes(renditions[0]!.path!));
  });

  it('qualityCheck scores the first segment with libvmaf, or says why the ffmpeg in use cannot', async () => {
    const support = await vmafAvailability(t.binaries.ffmpeg);
    const r = await run(new MockActivityEnvironment(), pack.packageRendition, {
      output,
      rendition: '240p',
      chunkCount: CHUNKS.length,
      segmentSeconds: SEGMENT,
      qualityCheck: { source },
    });
    console.log(`qualityCheck with ${t.binaries.ffmpeg}: ${JSON.stringify(r.quality)}`);
    if (support.available) {
      expect(r.quality).toMatchObject({ available: true, segment: 'seg-00000.m4s', durationSec: SEGMENT });
      const vmaf = (r.quality as { vmaf: number }).vmaf;
      expect(vmaf).toBeGreaterThan(0);
      expect(vmaf).toBeLessThanOrEqual(100);
    } else {
      expect(r.quality).toEqual({ available: false, reason: support.reason });
      expect(support.reason).toMatch(/libvmaf/);
    }
    // Packaging is unchanged by the check: the same playlist as without it.
    expect(r.sha256).toBe(renditions[0]!.sha256);
    // Every libvmaf's JSON log reads back to one pooled score.
    expect(vmafFromLog({ pooled_metrics: { vmaf: { mean: 93.5 } } })).toBe(93.5);
    expect(vmafFromLog({ 'VMAF score': 88.25, frames: [] })).toBe(88.25);
    expect(vmafFromLog({ frames: [{ metrics: { vmaf: 90 } }, { metrics: { vmaf: 80 } }] })).toBe(85);
    expect(vmafFromLog({})).toBeUndefined();
  });

  it('a rendition resumed after a crash mid-transcode packages byte-identically to an uninterrupted one', async () => {
    const resumed = 'pkg-b/r1';
    const first = new MockActivityEnvironment();
    let details: TranscodeHeartbeat | undefined;
    first.on('heartbeat', (d: TranscodeHeartbeat) => (details = structuredClone(d)));
    await run(first, media.transcodeChunk, chunkInput(resumed, '240p', 0));
    // A crash after the first segment: the chunk never finished, later segments are gone.
    const work = `${resumed}/.work/240p/chunk-00000`;
    await store.artifacts.delete(`${work}/done.json`);
    await store.artifacts.delete(`${work}/seg-00001.ts`);
    await store.artifacts.delete(`${work}/seg-00002.ts`);
    const kept = details!.segments.slice(0, 1);
    const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: { segments: kept, outTimeSec: 2 } });
    const again = await run(retry, media.transcodeChunk, chunkInput(resumed, '240p', 0));
    expect(again.resumedSegments).toBe(1);
    await run(new MockActivityEnvironment(), media.transcodeChunk, chunkInput(resumed, '240p', 1));
    await run(new MockActivityEnvironment(), pack.packageRendition, {
      output: resumed,
      rendition: '240p',
      chunkCount: CHUNKS.length,
      segmentSeconds: SEGMENT,
    });
    const files = packagedFiles(resumed, '240p');
    expect(Object.keys(files)).toHaveLength(2 + DURATION / SEGMENT);
    expect(files).toEqual(packagedFiles(output, '240p'));
  });
});

describe('scrubbing previews', () => {
  it('tiles one thumbnail every 5 s into sprite.jpg and maps each interval to its tile in sprite.vtt', async () => {
    const sprite = await run(new MockActivityEnvironment(), pack.extractSprite, {
      output: 'pkg-sprite/r1',
      source,
      durationSec: DURATION,
      width: 640,
      height: 360,
    });
    expect(sprite).toMatchObject({ intervalSeconds: 5, tiles: 2, tileWidth: 160, tileHeight: 90 });
    // The sheet is a real JPEG of two tiles side by side.
    const { stdout } = await runProcess(t.binaries.ffprobe, [
      '-v',
      'error',
      '-show_entries',
      'stream=codec_name,width,height',
      '-of',
      'csv=p=0',
      sprite.image.path!,
    ]);
    expect(stdout.trim()).toBe('mjpeg,320,90');
    expect(shaOf(sprite.image.path!)).toBe(sprite.image.sha256);
    expect(fs.readFileSync(sprite.vtt.path!, 'utf8')).toBe(
      [
        'WEBVTT',
        '',
        '00:00:00.000 --> 00:00:05.000',
        'sprite.jpg#xywh=0,0,160,90',
        '',
        '00:00:05.000 --> 00:00:10.000',
        'sprite.jpg#xywh=160,0,160,90',
        '',
      ].join('\n'),
    );
  });

  it('lays out tiles row by row, ten to a row, the last cue ending with the source', () => {
    const vtt = spriteVtt(62.5, 5, { width: 160, height: 90 }, 10);
    const cues = vtt.trimEnd().split('\n\n').slice(1);
    expect(cues).toHaveLength(13);
    expect(cues[10]).toBe('00:00:50.000 --> 00:00:55.000\nsprite.jpg#xywh=0,90,160,90');
    expect(cues[12]).toBe('00:01:00.000 --> 00:01:02.500\nsprite.jpg#xywh=320,90,160,90');
  });
});
