/**
 * Streaming packages (`hls`): the checksummed segments that `transcodeChunk` wrote for each
 * rendition are repackaged, by stream copy, into CMAF (fragmented MP4) segments with an HLS
 * media playlist; the audio is encoded once into a shared AAC group; a master playlist ties them
 * together with what was measured from the encoded segments. Created by
 * {@link createPackagingActivities} from the same dependencies as the media activities.
 *
 * Layout under `<workflowId>/<runId>/`:
 *   `master.m3u8`                                   — the master playlist (what a player loads)
 *   `hls/<rendition>/init.mp4`, `seg-NNNNN.m4s`, `playlist.m3u8` — one video rendition
 *   `hls/audio/init.mp4`, `seg-NNNNN.m4s`, `playlist.m3u8`       — the shared audio group
 *   `.work/hls/<name>.json`                         — segment checksums, for `manifest.json`
 * Every object is written to the store atomically; a rendition's playlist is written after its
 * segments, so a playlist in the store always names segments that are there.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import { FailureType, Packaging, RENDITIONS, SPRITE, STREAM_AUDIO, type RenditionName } from '../../shared/constants';
import type { Artifact } from '../../shared/artifact';
import type { DroppedRendition } from '../../shared/ladder';
import type {
  QualityCheck,
  QualityScore,
  SpriteArtifacts,
  StreamAudioArtifact,
  StreamPackaging,
  StreamRenditionArtifact,
  ThumbnailArtifact,
} from '../../shared/video';
import { isObjectUri, joinKey, sha256File, storageFailure, type ObjectInfo } from '../../storage';
import { fragmentTiming, shiftFragment } from './cmaf';
import { FfmpegError, runProcess, writeConcatList } from './ffmpeg';
import { inActiveContext } from '../../tracing';
import { chunkName, type MediaDeps, type SegmentRecord } from './index';

interface RunOutput {
  /** `<workflowId>/<runId>`. */
  output: string;
}

export interface PackageRenditionInput extends RunOutput {
  rendition: RenditionName;
  chunkCount: number;
  segmentSeconds: number;
  /** Score the first segment against this source (its URI, from `probeMedia`) with libvmaf. */
  qualityCheck?: { source: string };
}

/** One chunk of a rendition to publish while the pipeline runs (chunks are published in order). */
export interface PublishChunkInput extends RunOutput {
  rendition: RenditionName;
  chunkIndex: number;
  segmentSeconds: number;
}

/** What a rendition's published segments measure: what its line in a master playlist needs. */
export interface StreamVariant {
  name: RenditionName;
  width: number;
  height: number;
  frameRate: number;
  codecs: string;
  peakBitsPerSec: number;
  averageBitsPerSec: number;
  /** Segments published so far, and their length in seconds. */
  segments: number;
  durationSec: number;
}

export interface PublishMasterInput extends RunOutput {
  /** Every rendition, with what its first published chunk measured. */
  renditions: StreamVariant[];
  /** The source has audio: the shared audio group is published (packageAudio) and goes in. */
  audio: boolean;
}

export interface PublishedMaster {
  master: Artifact;
  /** What a player loads: the master playlist's presigned URL on `s3`, else its URI. */
  playbackUrl: string;
}

export interface PackageAudioInput extends RunOutput {
  /** The source's URI (from `probeMedia`). */
  source: string;
  durationSec: number;
  segmentSeconds: number;
}

export interface StreamPlaylistsInput extends RunOutput {
  workflowId: string;
  runId: string;
  source: string;
  sourceDurationSec: number;
  /** Which manifests to write over the segments; `hls` when absent (runs recorded before `dash`). */
  package?: StreamPackaging;
  segmentSeconds: number;
  renditions: StreamRenditionArtifact[];
  audio?: StreamAudioArtifact;
  thumbnails: ThumbnailArtifact[];
  dropped: DroppedRendition[];
  sprite?: SpriteArtifacts;
  /** Asked with `qualityCheck`: what it came to (each rendition carries its score). */
  qualityCheck?: QualityCheck;
}

export interface StreamPlaylistsResult {
  /** What a player loads: the HLS master playlist (`hls`, `both`), or the MPD (`dash`). */
  master: Artifact;
  /** The DASH MPD (`dash`, `both`). */
  mpd?: Artifact;
  manifest: Artifact;
  /**
   * What a player loads: the signed master's presigned URL on `s3` (the MPD's presigned URL for
   * `dash`), else the master's (or MPD's) URI.
   */
  playbackUrl?: string;
}

/** One packaged segment as `manifest.json` lists it. */
export interface PackagedSegment {
  file: string;
  bytes: number;
  sha256: string;
  durationSec: number;
}

export interface SpriteInput extends RunOutput {
  /** The source's URI (from `probeMedia`). */
  source: string;
  durationSec: number;
  width: number;
  height: number;
}

/** `HH:MM:SS.mmm` for a WebVTT cue. */
function vttTime(sec: number): string {
  const ms = Math.round(sec * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${s.toFixed(3).padStart(6, '0')}`;
}

/**
 * The WebVTT map of a sprite sheet: one cue per `interval` of `durationSec`, each pointing at its
 * tile (`sprite.jpg#xywh=x,y,w,h`), row by row, `columns` tiles per row.
 */
export function spriteVtt(
  durationSec: number,
  interval: number,
  tile: { width: number; height: number },
  columns: number,
  image = 'sprite.jpg',
): string {
  const count = Math.max(1, Math.ceil(durationSec / interval - 1e-6));
  const cues = ['WEBVTT', ''];
  for (let i = 0; i < count; i++) {
    const x = (i % columns) * tile.width;
    const y = Math.floor(i / columns) * tile.height;
    cues.push(
      `${vttTime(i * interval)} --> ${vttTime(Math.min((i + 1) * interval, durationSec))}`,
      `${image}#xywh=${x},${y},${tile.width},${tile.height}`,
      '',
    );
  }
  return cues.join('\n');
}

/** The audio group's name in the master playlist. */
const AUDIO_GROUP = 'audio';
const FFMPEG_WRITE_ARGS = ['-hide_banner', '-nostdin', '-y', '-v', 'error'];

/** Segment durations from a media playlist's `#EXTINF` lines, with the file each names. */
export function parseMediaPlaylist(text: string): { file: string; durationSec: number }[] {
  const lines = text.split('\n').map((l) => l.trim());
  const out: { file: string; durationSec: number }[] = [];
  lines.forEach((line, i) => {
    if (!line.startsWith('#EXTINF:')) return;
    const file = lines.slice(i + 1).find((l) => l && !l.startsWith('#'));
    if (file) out.push({ file, durationSec: Number(line.slice('#EXTINF:'.length).split(',')[0]) });
  });
  return out;
}

/**
 * A media playlist over CMAF segments published so far: `EVENT` while the pipeline runs (a
 * player polls it, and it only ever grows), closed with `#EXT-X-ENDLIST` once the rendition is
 * complete. RFC 8216 allows an EVENT playlist to change only by appending lines, so the type stays
 * EVENT and the end tag is appended: players then treat it as a finished (VOD) presentation.
 */
export function mediaPlaylist(
  segments: { file: string; durationSec: number }[],
  segmentSeconds: number,
  ended: boolean,
): string {
  // Fixed up front (an EVENT playlist's target duration must not change): the segment length,
  // unless a segment rounds to more.
  const target = Math.max(segmentSeconds, ...segments.map((s) => Math.round(s.durationSec)));
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${target}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:EVENT',
    '#EXT-X-INDEPENDENT-SEGMENTS',
    '#EXT-X-MAP:URI="init.mp4"',
  ];
  for (const s of segments) lines.push(`#EXTINF:${s.durationSec.toFixed(6)},`, s.file);
  if (ended) lines.push('#EXT-X-ENDLIST');
  return lines.join('\n') + '\n';
}

/**
 * A playlist with every URI it names (its URI lines and `URI="…"` attributes) replaced by what
 * `sign` makes of it; everything else as it was.
 */
export async function rewritePlaylistUris(text: string, sign: (uri: string) => Promise<string>): Promise<string> {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed && !trimmed.startsWith('#')) {
      out.push(await sign(trimmed));
      continue;
    }
    let rewritten = line;
    for (const m of line.matchAll(/URI="([^"]+)"/g)) {
      rewritten = rewritten.replace(m[0], `URI="${await sign(m[1]!)}"`);
    }
    out.push(rewritten);
  }
  return out.join('\n');
}

/** RFC 6381 `avc1.PPCCLL` from the `avcC` box of an init segment; undefined when it has none. */
export function avcCodecs(init: Buffer): string | undefined {
  const at = init.indexOf('avcC');
  if (at < 0 || at + 8 > init.length) return undefined;
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  // avcC: configurationVersion, AVCProfileIndication, profile_compatibility, AVCLevelIndication.
  return `avc1.${hex(init[at + 5]!)}${hex(init[at + 6]!)}${hex(init[at + 7]!)}`;
}

/** The master playlist text: one shared audio group, one variant per rendition (lowest first). */
export function masterPlaylist(
  renditions: Omit<StreamVariant, 'segments' | 'durationSec'>[],
  audio: Pick<StreamAudioArtifact, 'codecs' | 'peakBitsPerSec' | 'averageBitsPerSec'> | undefined,
): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS'];
  if (renditions.length === 0 && audio) {
    // An audio-only source: one variant, the audio group's media playlist itself.
    lines.push(
      `#EXT-X-STREAM-INF:BANDWIDTH=${Math.ceil(audio.peakBitsPerSec)},AVERAGE-BANDWIDTH=${Math.ceil(audio.averageBitsPerSec)},` +
        `CODECS="${audio.codecs}"`,
      'hls/audio/playlist.m3u8',
    );
    return lines.join('\n') + '\n';
  }
  if (audio) {
    lines.push(
      `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="${AUDIO_GROUP}",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,` +
        `CHANNELS="${STREAM_AUDIO.channels}",URI="hls/audio/playlist.m3u8"`,
    );
  }
  for (const r of renditions) {
    const peak = r.peakBitsPerSec + (audio?.peakBitsPerSec ?? 0);
    const average = r.averageBitsPerSec + (audio?.averageBitsPerSec ?? 0);
    const codecs = audio ? `${r.codecs},${audio.codecs}` : r.codecs;
    lines.push(
      `#EXT-X-STREAM-INF:BANDWIDTH=${Math.ceil(peak)},AVERAGE-BANDWIDTH=${Math.ceil(average)},` +
        `RESOLUTION=${r.width}x${r.height},CODECS="${codecs}",FRAME-RATE=${r.frameRate.toFixed(3)}` +
        (audio ? `,AUDIO="${AUDIO_GROUP}"` : ''),
      `hls/${r.name}/playlist.m3u8`,
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * The media timescale (ticks per second) of the first track of an init segment, from its `mdhd`
 * box; undefined when it has none.
 */
export function initTimescale(init: Buffer): number | undefined {
  const at = init.indexOf('mdhd');
  if (at < 0) return undefined;
  const version = init[at + 4];
  // mdhd: version(1) flags(3), then creation and modification times (4 bytes each in version 0,
  // 8 in version 1), then the timescale.
  const offset = at + 8 + (version === 1 ? 16 : 8);
  if (offset + 4 > init.length) return undefined;
  const timescale = init.readUInt32BE(offset);
  return timescale > 0 ? timescale : undefined;
}

/** One track of an MPD: where its files are and what was measured from them. */
export interface DashTrack {
  /** The folder of its init and media segments, relative to the MPD (`hls/360p`). */
  dir: string;
  id: string;
  codecs: string;
  bandwidth: number;
  timescale: number;
  /** Segment files in order, with their durations in seconds. */
  segments: { file: string; durationSec: number }[];
  video?: { width: number; height: number; frameRate: number };
}

/** ISO 8601 duration (`PT12.345S`) for an MPD attribute. */
function isoDuration(sec: number): string {
  return `PT${(Math.round(sec * 1000) / 1000).toFixed(3)}S`;
}

/** An MPD frame rate: an integer, `N/1001` for the NTSC rates, else a ratio over 1000. */
export function mpdFrameRate(fps: number): string {
  if (Math.abs(fps - Math.round(fps)) < 0.001) return String(Math.round(fps));
  const ntsc = Math.round((fps * 1001) / 1000);
  if (Math.abs((ntsc * 1000) / 1001 - fps) < 0.001) return `${ntsc * 1000}/1001`;
  return `${Math.round(fps * 1000)}/1000`;
}

/**
 * The `SegmentTemplate` of a track: numbered segment files (`seg-%05d.m4s`, as the packager
 * writes them, checked here) and a `SegmentTimeline` of their exact durations in the track's
 * timescale, runs of equal durations folded into `r`.
 */
function segmentTemplate(track: DashTrack, indent: string): string[] {
  const numbers = track.segments.map((s) => /^seg-(\d{5})\.m4s$/.exec(s.file)?.[1]);
  const first = Number(numbers[0] ?? 0);
  numbers.forEach((n, i) => {
    if (n === undefined || Number(n) !== first + i) {
      throw new Error(`${track.id}: segment ${track.segments[i]?.file} is not numbered in sequence`);
    }
  });
  // Start and end of each segment in ticks, rounded from the running total so no drift builds up.
  let elapsed = 0;
  const durations = track.segments.map((s) => {
    const start = Math.round(elapsed * track.timescale);
    elapsed += s.durationSec;
    return Math.round(elapsed * track.timescale) - start;
  });
  const runs: { d: number; r: number }[] = [];
  for (const d of durations) {
    const last = runs.at(-1);
    if (last && last.d === d) last.r++;
    else runs.push({ d, r: 0 });
  }
  return [
    `${indent}<SegmentTemplate timescale="${track.timescale}" initialization="${track.dir}/init.mp4" media="${track.dir}/seg-$Number%05d$.m4s" startNumber="${first}">`,
    `${indent}  <SegmentTimeline>`,
    ...runs.map(
      (run, i) => `${indent}    <S ${i === 0 ? 't="0" ' : ''}d="${run.d}"${run.r > 0 ? ` r="${run.r}"` : ''}/>`,
    ),
    `${indent}  </SegmentTimeline>`,
    `${indent}</SegmentTemplate>`,
  ];
}

/**
 * A static MPD (DASH, live profile) over the CMAF segments: one video adaptation set with a
 * representation per rendition (lowest first), one audio adaptation set for the shared group.
 */
export function dashManifest(video: DashTrack[], audio: DashTrack | undefined, segmentSeconds: number): string {
  const durationOf = (t: DashTrack) => t.segments.reduce((a, s) => a + s.durationSec, 0);
  // The picture's length when there is one (AAC frames run a few ms past it), else the audio's.
  const duration = Math.max(0, ...(video.length > 0 ? video : audio ? [audio] : []).map(durationOf));
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="static" mediaPresentationDuration="${isoDuration(duration)}" minBufferTime="${isoDuration(segmentSeconds)}">`,
    '  <Period id="0" start="PT0S">',
  ];
  if (video.length > 0) {
    const maxW = Math.max(...video.map((v) => v.video!.width));
    const maxH = Math.max(...video.map((v) => v.video!.height));
    lines.push(
      `    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1" maxWidth="${maxW}" maxHeight="${maxH}">`,
    );
    for (const v of video) {
      const { width, height, frameRate } = v.video!;
      lines.push(
        `      <Representation id="${v.id}" bandwidth="${Math.ceil(v.bandwidth)}" codecs="${v.codecs}" width="${width}" height="${height}" frameRate="${mpdFrameRate(frameRate)}" sar="1:1">`,
        ...segmentTemplate(v, '        '),
        '      </Representation>',
      );
    }
    lines.push('    </AdaptationSet>');
  }
  if (audio) {
    lines.push(
      `    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1" lang="und">`,
      `      <Representation id="${audio.id}" bandwidth="${Math.ceil(audio.bandwidth)}" codecs="${audio.codecs}" audioSamplingRate="${STREAM_AUDIO.sampleRate}">`,
      `        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="${STREAM_AUDIO.channels}"/>`,
      ...segmentTemplate(audio, '        '),
      '      </Representation>',
      '    </AdaptationSet>',
    );
  }
  lines.push('  </Period>', '</MPD>');
  return lines.join('\n') + '\n';
}

/**
 * The pooled VMAF of a libvmaf JSON log, whichever libvmaf wrote it (2.x `pooled_metrics`, 1.x
 * `VMAF score` / `aggregate`, else the mean of the frames); undefined when it has none.
 */
export function vmafFromLog(log: unknown): number | undefined {
  const l = log as {
    pooled_metrics?: { vmaf?: { mean?: number } };
    aggregate?: { VMAF_score?: number };
    'VMAF score'?: number;
    frames?: { metrics?: { vmaf?: number } }[];
  };
  const pooled = l.pooled_metrics?.vmaf?.mean ?? l.aggregate?.VMAF_score ?? l['VMAF score'];
  if (typeof pooled === 'number' && Number.isFinite(pooled)) return pooled;
  const frames = (l.frames ?? []).map((f) => f.metrics?.vmaf).filter((v): v is number => typeof v === 'number');
  return frames.length ? frames.reduce((a, v) => a + v, 0) / frames.length : undefined;
}

/** Whether an ffmpeg can score with libvmaf, found once per binary: listed, and able to run. */
const vmafSupport = new Map<string, Promise<{ available: true } | { available: false; reason: string }>>();

export function vmafAvailability(ffmpeg: string): Promise<{ available: true } | { available: false; reason: string }> {
  let found = vmafSupport.get(ffmpeg);
  if (!found) {
    found = (async () => {
      const { stdout } = await runProcess(ffmpeg, ['-hide_banner', '-nostdin', '-filters']);
      if (!/^\s*\S*\s+libvmaf\s/m.test(stdout)) {
        return { available: false as const, reason: 'the ffmpeg in use has no libvmaf filter' };
      }
      // Listed is not enough: a build whose model file is not where it looks cannot score.
      const tiny = 'testsrc=size=64x64:rate=5:duration=0.4';
      // libvmaf 1.x prints why it failed (a model it cannot load) on stdout, ffmpeg on stderr.
      const trial = await new Promise<{ ok: boolean; output: string }>((resolve) => {
        execFile(
          ffmpeg,
          [
            ...['-hide_banner', '-nostdin', '-v', 'error', '-f', 'lavfi', '-i', tiny, '-f', 'lavfi', '-i', tiny],
            ...['-lavfi', '[0:v][1:v]libvmaf', '-f', 'null', '-'],
          ],
          { timeout: 60_000 },
          (err, stdout, stderr) => resolve({ ok: !err, output: `${stdout}\n${stderr}` }),
        );
      });
      if (trial.ok) return { available: true as const };
      const lines = trial.output
        .split('\n')
        .map((l) => l.replace(/^\[[^\]]*\]\s*/, '').trim())
        .filter(Boolean);
      const why =
        lines.find((l) => /model/i.test(l)) ?? lines.find((l) => /error|cannot/i.test(l)) ?? 'no reason given';
      return { available: false as const, reason: `the ffmpeg in use has libvmaf but it cannot score: ${why}` };
    })();
    vmafSupport.set(ffmpeg, found);
  }
  return found;
}

const nonRetryable = (type: FailureType, message: string, cause?: Error) =>
  ApplicationFailure.create({ type, message, nonRetryable: true, cause });

export function createPackagingActivities(deps: MediaDeps) {
  const { storage } = deps;
  const artifacts = storage.artifacts;

  /** The run's output prefix, checked to be `<workflowId>/<runId>` with no way out of the store. */
  function runKey(output: string, ...rest: string[]): string {
    const parts = output.split('/');
    if (parts.length !== 2 || parts.some((p) => !p || p.startsWith('.')) || output.includes('\0')) {
      throw nonRetryable(FailureType.InvalidInput, `output ${JSON.stringify(output)} is not <workflowId>/<runId>`);
    }
    return joinKey(output, ...rest);
  }
  const chunkKey = (output: string, rendition: string, chunkIndex: number, file: string) =>
    runKey(output, '.work', rendition, chunkName(chunkIndex), file);

  async function withKeepAlive<T>(details: () => unknown, fn: () => Promise<T>): Promise<T> {
    const timer = setInterval(() => heartbeat(details()), 5_000);
    try {
      return await fn();
    } finally {
      clearInterval(timer);
    }
  }

  async function inScratch<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    await fsp.mkdir(storage.scratchDir, { recursive: true });
    const dir = await fsp.mkdtemp(path.join(storage.scratchDir, 'pkg-'));
    try {
      return await fn(dir);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  async function readJson<T>(key: string): Promise<T | undefined> {
    if (!(await artifacts.head(key))) return undefined;
    return JSON.parse((await artifacts.getBuffer(key)).toString('utf8')) as T;
  }

  async function describe(key: string, info: ObjectInfo): Promise<Artifact> {
    const local = artifacts.localPath(key);
    const url = await artifacts.presign(key, storage.presignTtlSec);
    return {
      uri: artifacts.uri(key),
      bytes: info.bytes,
      sha256: info.sha256 ?? '',
      ...(local ? { path: local } : {}),
      ...(url ? { url } : {}),
    };
  }

  /**
   * On a store that presigns (`s3`): a copy of the playlist at `signed/<rel>` whose every URI is
   * a presigned URL (a playlist it names: that playlist's signed copy), so that a player given
   * the signed master's presigned URL can fetch everything from a private bucket, for as long as
   * the presigned URLs last (SLUICE_PRESIGN_TTL_SECONDS). Returns the copy's presigned URL;
   * undefined on a store that does not presign (`file`: nothing is written).
   */
  async function publishSigned(output: string, rel: string, text: string): Promise<string | undefined> {
    const signedKey = runKey(output, 'signed', rel);
    const probe = await artifacts.presign(signedKey, storage.presignTtlSec);
    if (!probe) return undefined;
    const dir = path.posix.dirname(rel);
    const signed = await rewritePlaylistUris(text, async (uri) => {
      const target = path.posix.normalize(path.posix.join(dir, uri));
      const key = target.endsWith('.m3u8') ? runKey(output, 'signed', target) : runKey(output, target);
      return (await artifacts.presign(key, storage.presignTtlSec)) ?? uri;
    });
    await artifacts.put(signedKey, signed, { contentType: 'application/vnd.apple.mpegurl' });
    return probe;
  }

  /** An ffmpeg or store failure as the failure type the retry policies know. */
  function failure(err: unknown): unknown {
    if (err instanceof ApplicationFailure) return err;
    if (err instanceof FfmpegError) {
      if (/No space left on device|Read-only file system|Disk quota exceeded/.test(err.stderrTail)) {
        return nonRetryable(FailureType.OutputUnwritable, err.message, err);
      }
      return ApplicationFailure.create({ type: FailureType.TranscodeFailed, message: err.message, cause: err });
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EROFS' || code === 'EDQUOT') {
      return nonRetryable(FailureType.OutputUnwritable, `cannot write outputs: ${code}`, err as Error);
    }
    return storageFailure(err);
  }

  /**
   * Uploads what ffmpeg's HLS muxer wrote in `dir` under `prefix`: the init segment and media
   * segments first (each atomically, with its checksum), then the media playlist, then the
   * segment records under `.work/` for the manifest.
   */
  async function publishPackage(
    output: string,
    name: string,
    dir: string,
  ): Promise<{
    playlist: Artifact;
    init: Artifact;
    segments: PackagedSegment[];
    playlistText: string;
    initBytes: Buffer;
  }> {
    const prefix = runKey(output, 'hls', name);
    const playlistText = await fsp.readFile(path.join(dir, 'playlist.m3u8'), 'utf8');
    const listed = parseMediaPlaylist(playlistText);
    const segments: PackagedSegment[] = [];
    const initFile = path.join(dir, 'init.mp4');
    const initSha = await sha256File(initFile);
    const init = await describe(
      joinKey(prefix, 'init.mp4'),
      await artifacts.putFile(joinKey(prefix, 'init.mp4'), initFile, { sha256: initSha }),
    );
    for (const seg of listed) {
      const file = path.join(dir, path.basename(seg.file));
      const sha256 = await sha256File(file);
      const info = await artifacts.putFile(joinKey(prefix, path.basename(seg.file)), file, { sha256 });
      segments.push({ file: path.basename(seg.file), bytes: info.bytes, sha256, durationSec: seg.durationSec });
      heartbeat({ stage: 'upload', segment: segments.length });
    }
    const playlistKey = joinKey(prefix, 'playlist.m3u8');
    const playlistInfo = await artifacts.put(playlistKey, playlistText, {
      contentType: 'application/vnd.apple.mpegurl',
    });
    await publishSigned(output, `hls/${name}/playlist.m3u8`, playlistText);
    await artifacts.put(runKey(output, '.work', 'hls', `${name}.json`), JSON.stringify({ init: initSha, segments }));
    return {
      playlist: await describe(playlistKey, playlistInfo),
      init,
      segments,
      playlistText,
      initBytes: await fsp.readFile(initFile),
    };
  }

  const rates = (segments: PackagedSegment[]) => {
    const durationSec = segments.reduce((a, s) => a + s.durationSec, 0);
    const bytes = segments.reduce((a, s) => a + s.bytes, 0);
    const peak = Math.max(...segments.map((s) => (s.bytes * 8) / Math.max(s.durationSec, 1e-3)));
    return { durationSec, peakBitsPerSec: peak, averageBitsPerSec: durationSec > 0 ? (bytes * 8) / durationSec : 0 };
  };

  async function frameRateOf(file: string): Promise<number> {
    const { stdout } = await runProcess(deps.binaries.ffprobe, [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=avg_frame_rate,r_frame_rate',
      '-of',
      'json',
      file,
    ]);
    const stream = (JSON.parse(stdout) as { streams?: { avg_frame_rate?: string; r_frame_rate?: string }[] })
      .streams?.[0];
    const ratio = (v: string | undefined) => {
      const [n, d] = (v ?? '').split('/').map(Number);
      return n && d ? n / d : 0;
    };
    return ratio(stream?.avg_frame_rate) || ratio(stream?.r_frame_rate);
  }

  /** The checksummed segments of each of a rendition's chunks; a chunk not done yet fails (retryable). */
  async function chunkRecords(
    output: string,
    rendition: RenditionName,
    indexes: number[],
  ): Promise<{ chunk: number; segments: SegmentRecord[] }[]> {
    const out: { chunk: number; segments: SegmentRecord[] }[] = [];
    for (const i of indexes) {
      const segments = (await artifacts.head(chunkKey(output, rendition, i, 'done.json')))
        ? await readJson<SegmentRecord[]>(chunkKey(output, rendition, i, 'segments.json'))
        : undefined;
      if (!segments) {
        throw ApplicationFailure.create({
          type: FailureType.TranscodeFailed,
          message: `chunk ${i} of ${rendition} is not complete`,
        });
      }
      out.push({ chunk: i, segments });
    }
    return out;
  }

  /** Downloads chunks' encoded segments into `scratch`, in order, each checked against its checksum. */
  async function downloadChunks(
    output: string,
    rendition: RenditionName,
    records: { chunk: number; segments: SegmentRecord[] }[],
    scratch: string,
  ): Promise<string[]> {
    const files: string[] = [];
    for (const { chunk, segments } of records) {
      for (const seg of segments) {
        const local = path.join(scratch, `${chunkName(chunk)}-${seg.file}`);
        const got = await artifacts.download(chunkKey(output, rendition, chunk, seg.file), local);
        if (got.sha256 !== seg.sha256) {
          throw ApplicationFailure.create({
            type: FailureType.TranscodeFailed,
            message: `segment ${seg.file} of chunk ${chunk} (${rendition}) does not match its checksum`,
          });
        }
        files.push(local);
      }
      heartbeat({ stage: 'download', chunk });
    }
    return files;
  }

  /**
   * Joins encoded segments by stream copy into CMAF segments (one per encoded segment: each
   * starts on its forced keyframe) with ffmpeg's HLS muxer, in `<scratch>/out`, numbered from
   * `startNumber`.
   */
  async function repackage(files: string[], scratch: string, segmentSeconds: number, startNumber = 0): Promise<string> {
    const list = await writeConcatList(files, scratch);
    const dir = path.join(scratch, 'out');
    await fsp.mkdir(dir);
    await runProcess(
      deps.binaries.ffmpeg,
      [
        ...FFMPEG_WRITE_ARGS,
        '-f',
        'concat',
        '-safe',
        '0',
        '-i',
        list,
        '-map',
        '0:v:0',
        '-c',
        'copy',
        '-map_metadata',
        '-1',
        '-fflags',
        '+bitexact',
        ...(startNumber > 0 ? ['-start_number', String(startNumber)] : []),
        ...hlsArgs(dir, segmentSeconds / 2),
      ],
      { signal: Context.current().cancellationSignal },
    );
    return dir;
  }

  /**
   * Packages one rendition: downloads its checksummed segments (all chunks, in order), joins
   * them by stream copy into CMAF segments, one per encoded segment (each starts on its forced
   * keyframe), and publishes them with a media playlist. Deterministic: the same segments give
   * byte-identical packages, so a retry (or a resumed transcode) changes nothing.
   */
  async function packageRendition(input: PackageRenditionInput): Promise<StreamRenditionArtifact> {
    if (!RENDITIONS[input.rendition]) {
      throw nonRetryable(FailureType.InvalidInput, `rendition: unknown rendition ${input.rendition}`);
    }
    return withKeepAlive(
      () => ({ stage: 'package', rendition: input.rendition }),
      async () => {
        try {
          const chunks: number[] = [];
          for (let i = 0; i < input.chunkCount; i++) chunks.push(i);
          const records = await chunkRecords(input.output, input.rendition, chunks);
          return await inScratch(async (scratch) => {
            const files = await downloadChunks(input.output, input.rendition, records, scratch);
            const dir = await repackage(files, scratch, input.segmentSeconds);
            const pkg = await publishPackage(input.output, input.rendition, dir);
            // One CMAF segment per encoded segment, or the keyframes are not where they must be.
            if (pkg.segments.length !== files.length) {
              throw ApplicationFailure.create({
                type: FailureType.TranscodeFailed,
                message: `${input.rendition}: ${files.length} encoded segments became ${pkg.segments.length} CMAF segments; keyframes are not on the segment boundaries`,
              });
            }
            const codecs = avcCodecs(pkg.initBytes);
            if (!codecs) {
              throw ApplicationFailure.create({
                type: FailureType.TranscodeFailed,
                message: `${input.rendition}: the init segment has no avcC box`,
              });
            }
            const probed = await probeSize(path.join(dir, 'init.mp4'));
            const frameRate = await frameRateOf(path.join(dir, 'playlist.m3u8'));
            const r = rates(pkg.segments);
            const quality = input.qualityCheck
              ? await scoreFirstSegment(input.qualityCheck.source, dir, pkg.segments[0]!, probed, scratch)
              : undefined;
            return {
              name: input.rendition,
              ...pkg.playlist,
              width: probed.width,
              height: probed.height,
              durationSec: r.durationSec,
              frameRate,
              codecs,
              peakBitsPerSec: r.peakBitsPerSec,
              averageBitsPerSec: r.averageBitsPerSec,
              init: pkg.init,
              segments: pkg.segments.length,
              totalBytes: pkg.playlist.bytes + pkg.init.bytes + pkg.segments.reduce((a, s) => a + s.bytes, 0),
              ...(quality ? { quality } : {}),
            };
          });
        } catch (err) {
          throw failure(err);
        }
      },
    );
  }

  /** What publishing a chunk leaves in `.work/`: everything published of the rendition up to it. */
  interface LiveRecord {
    /** Checksum of the rendition's init segment (chunk 0's; every chunk's must match). */
    init: string;
    /** Where the next chunk starts, in the track's timescale (a decimal string: a bigint). */
    endTicks: string;
    video: { width: number; height: number; frameRate: number; codecs: string };
    /** Every segment published so far, in order. */
    segments: PackagedSegment[];
  }
  const liveRecordKey = (output: string, rendition: string, chunkIndex: number) =>
    runKey(output, '.work', 'hls', rendition, `${chunkName(chunkIndex)}.json`);

  const variantOf = (name: RenditionName, record: LiveRecord): StreamVariant => {
    const r = rates(record.segments);
    return {
      name,
      ...record.video,
      peakBitsPerSec: r.peakBitsPerSec,
      averageBitsPerSec: r.averageBitsPerSec,
      segments: record.segments.length,
      durationSec: r.durationSec,
    };
  };

  /**
   * Writes a rendition's media playlist from what is published, unless the store already holds a
   * longer one (a late attempt must never shorten it). Segments are in the store before the
   * playlist names them, and each chunk is published only after the one before it, so the
   * playlist grows in order and never has a gap.
   */
  async function writeRenditionPlaylist(
    output: string,
    rendition: string,
    segments: PackagedSegment[],
    segmentSeconds: number,
    ended: boolean,
  ): Promise<Artifact> {
    const key = runKey(output, 'hls', rendition, 'playlist.m3u8');
    if (!ended && (await artifacts.head(key))) {
      const bytes = await artifacts.getBuffer(key);
      if (parseMediaPlaylist(bytes.toString('utf8')).length >= segments.length) {
        return describe(key, {
          key,
          bytes: bytes.length,
          sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
        });
      }
    }
    const text = mediaPlaylist(segments, segmentSeconds, ended);
    const info = await artifacts.put(key, text, { contentType: 'application/vnd.apple.mpegurl' });
    await publishSigned(output, `hls/${rendition}/playlist.m3u8`, text);
    return describe(key, { ...info, sha256: info.sha256 ?? crypto.createHash('sha256').update(text).digest('hex') });
  }

  /**
   * Publishes one chunk of a rendition while the pipeline runs: its encoded segments become CMAF
   * segments (ffmpeg packages the chunk alone; {@link shiftFragment} then moves its fragments'
   * sequence numbers and times to where the chunk sits, so each segment is byte-identical to what
   * packaging the whole rendition at once writes), each uploaded atomically with its checksum, and
   * the rendition's EVENT playlist is rewritten to name them. Chunk 0 also publishes the init
   * segment; a later chunk's must match it. Publishing a chunk again changes nothing.
   */
  async function publishChunk(input: PublishChunkInput): Promise<StreamVariant> {
    if (!RENDITIONS[input.rendition]) {
      throw nonRetryable(FailureType.InvalidInput, `rendition: unknown rendition ${input.rendition}`);
    }
    const { output, rendition, chunkIndex } = input;
    return withKeepAlive(
      () => ({ stage: 'publish', rendition, chunkIndex }),
      async () => {
        try {
          const before =
            chunkIndex > 0 ? await readJson<LiveRecord>(liveRecordKey(output, rendition, chunkIndex - 1)) : undefined;
          if (chunkIndex > 0 && !before) {
            throw ApplicationFailure.create({
              type: FailureType.TranscodeFailed,
              message: `${rendition}: chunk ${chunkIndex - 1} is not published yet (chunks are published in order)`,
            });
          }
          let record = await readJson<LiveRecord>(liveRecordKey(output, rendition, chunkIndex));
          if (!record) {
            const chunk = await chunkRecords(output, rendition, [chunkIndex]);
            record = await inScratch(async (scratch) => {
              const files = await downloadChunks(output, rendition, chunk, scratch);
              const first = before?.segments.length ?? 0;
              const dir = await repackage(files, scratch, input.segmentSeconds, first);
              const playlistText = await fsp.readFile(path.join(dir, 'playlist.m3u8'), 'utf8');
              const listed = parseMediaPlaylist(playlistText);
              // One CMAF segment per encoded segment, or the keyframes are not where they must be.
              if (listed.length !== files.length) {
                throw ApplicationFailure.create({
                  type: FailureType.TranscodeFailed,
                  message: `${rendition}: chunk ${chunkIndex}'s ${files.length} encoded segments became ${listed.length} CMAF segments; keyframes are not on the segment boundaries`,
                });
              }
              const initFile = path.join(dir, 'init.mp4');
              const initSha = await sha256File(initFile);
              const prefix = runKey(output, 'hls', rendition);
              let video = before?.video;
              if (before) {
                if (initSha !== before.init) {
                  throw nonRetryable(
                    FailureType.TranscodeFailed,
                    `${rendition}: chunk ${chunkIndex}'s init segment differs from chunk 0's (the encoder settings changed between chunks)`,
                  );
                }
              } else {
                const codecs = avcCodecs(await fsp.readFile(initFile));
                if (!codecs) {
                  throw ApplicationFailure.create({
                    type: FailureType.TranscodeFailed,
                    message: `${rendition}: the init segment has no avcC box`,
                  });
                }
                const size = await probeSize(initFile);
                video = { ...size, frameRate: await frameRateOf(path.join(dir, 'playlist.m3u8')), codecs };
                await artifacts.putFile(joinKey(prefix, 'init.mp4'), initFile, { sha256: initSha });
              }
              let end = BigInt(before?.endTicks ?? '0');
              const offsetTicks = end;
              const segments = [...(before?.segments ?? [])];
              for (const [i, seg] of listed.entries()) {
                const name = path.basename(seg.file);
                const file = path.join(dir, name);
                const shifted = shiftFragment(await fsp.readFile(file), { sequence: first + i + 1, offsetTicks });
                const timing = fragmentTiming(shifted);
                end = timing.startTicks + timing.durationTicks;
                await fsp.writeFile(file, shifted);
                const sha256 = crypto.createHash('sha256').update(shifted).digest('hex');
                const info = await artifacts.putFile(joinKey(prefix, name), file, { sha256 });
                segments.push({ file: name, bytes: info.bytes, sha256, durationSec: seg.durationSec });
                heartbeat({ stage: 'publish', rendition, chunkIndex, segment: segments.length });
              }
              const made: LiveRecord = { init: initSha, endTicks: end.toString(), video: video!, segments };
              await artifacts.put(liveRecordKey(output, rendition, chunkIndex), JSON.stringify(made));
              return made;
            });
          }
          await writeRenditionPlaylist(output, rendition, record.segments, input.segmentSeconds, false);
          return variantOf(rendition, record);
        } catch (err) {
          throw failure(err);
        }
      },
    );
  }

  /**
   * Closes a rendition published chunk by chunk: its playlist gets `#EXT-X-ENDLIST`, its segment
   * records go where `manifest.json` and the MPD read them, and (asked with `qualityCheck`) its
   * first segment is scored. Returns the rendition as {@link packageRendition} does.
   */
  async function finishRendition(input: PackageRenditionInput): Promise<StreamRenditionArtifact> {
    if (!RENDITIONS[input.rendition]) {
      throw nonRetryable(FailureType.InvalidInput, `rendition: unknown rendition ${input.rendition}`);
    }
    const { output, rendition } = input;
    return withKeepAlive(
      () => ({ stage: 'finish', rendition }),
      async () => {
        try {
          const record = await readJson<LiveRecord>(liveRecordKey(output, rendition, input.chunkCount - 1));
          if (!record) {
            throw ApplicationFailure.create({
              type: FailureType.TranscodeFailed,
              message: `${rendition}: its last chunk (${input.chunkCount - 1}) is not published yet`,
            });
          }
          const playlist = await writeRenditionPlaylist(output, rendition, record.segments, input.segmentSeconds, true);
          await artifacts.put(
            runKey(output, '.work', 'hls', `${rendition}.json`),
            JSON.stringify({ init: record.init, segments: record.segments }),
          );
          const initKey = runKey(output, 'hls', rendition, 'init.mp4');
          const initInfo = await artifacts.head(initKey);
          if (!initInfo) {
            throw ApplicationFailure.create({
              type: FailureType.TranscodeFailed,
              message: `${rendition}: init.mp4 is missing`,
            });
          }
          const init = await describe(initKey, { ...initInfo, sha256: record.init });
          const variant = variantOf(rendition, record);
          const first = record.segments[0]!;
          const quality = input.qualityCheck
            ? await inScratch(async (scratch) => {
                const dir = path.join(scratch, 'out');
                await fsp.mkdir(dir);
                await artifacts.download(initKey, path.join(dir, 'init.mp4'));
                await artifacts.download(
                  joinKey(runKey(output, 'hls', rendition), first.file),
                  path.join(dir, first.file),
                );
                return scoreFirstSegment(input.qualityCheck!.source, dir, first, variant, scratch);
              })
            : undefined;
          return {
            name: rendition,
            ...playlist,
            width: variant.width,
            height: variant.height,
            durationSec: variant.durationSec,
            frameRate: variant.frameRate,
            codecs: variant.codecs,
            peakBitsPerSec: variant.peakBitsPerSec,
            averageBitsPerSec: variant.averageBitsPerSec,
            init,
            segments: record.segments.length,
            totalBytes: playlist.bytes + init.bytes + record.segments.reduce((a, s) => a + s.bytes, 0),
            ...(quality ? { quality } : {}),
          };
        } catch (err) {
          throw failure(err);
        }
      },
    );
  }

  /**
   * Publishes the master playlist as soon as every rendition has its first chunk out and the audio
   * group (when there is one) its first segment: from then on the stream plays while the rest is
   * encoded.
   * Its bandwidths are those of the first chunks; `writeStreamPlaylists` rewrites it with the
   * whole renditions' at the end.
   */
  async function publishMaster(input: PublishMasterInput): Promise<PublishedMaster> {
    try {
      let audio: Pick<StreamAudioArtifact, 'codecs' | 'peakBitsPerSec' | 'averageBitsPerSec'> | undefined;
      if (input.audio) {
        // The audio group publishes its segments while it encodes (packageAudio): wait for its
        // first one, heartbeating (the workflow schedules this once the video's first chunks are out).
        const listKey = runKey(input.output, 'hls', 'audio', 'playlist.m3u8');
        let listed: { file: string; durationSec: number }[] = [];
        const signal = Context.current().cancellationSignal;
        while (listed.length === 0) {
          if (await artifacts.head(listKey))
            listed = parseMediaPlaylist((await artifacts.getBuffer(listKey)).toString('utf8'));
          if (listed.length > 0) break;
          heartbeat({ stage: 'waiting for the audio group' });
          await new Promise((resolve) => setTimeout(resolve, 200));
          if (signal.aborted) throw new Error('cancelled while waiting for the audio group');
        }
        const segments: PackagedSegment[] = [];
        for (const seg of listed) {
          const info = await artifacts.head(runKey(input.output, 'hls', 'audio', seg.file));
          segments.push({ file: seg.file, bytes: info?.bytes ?? 0, sha256: '', durationSec: seg.durationSec });
        }
        audio = { codecs: STREAM_AUDIO.codecs, ...rates(segments) };
      }
      const key = runKey(input.output, 'master.m3u8');
      const text = masterPlaylist(input.renditions, audio);
      const info = await artifacts.put(key, text, { contentType: 'application/vnd.apple.mpegurl' });
      const master = await describe(key, info);
      const signed = await publishSigned(input.output, 'master.m3u8', text);
      return { master, playbackUrl: signed ?? master.uri };
    } catch (err) {
      throw failure(err);
    }
  }

  /**
   * The VMAF of a rendition's first CMAF segment (its init segment and first media segment, as a
   * player reads them) against the same span of the source scaled to the rendition's size; or,
   * when the ffmpeg in use cannot score, why not.
   */
  async function scoreFirstSegment(
    source: string,
    dir: string,
    first: PackagedSegment,
    size: { width: number; height: number },
    scratch: string,
  ): Promise<QualityScore> {
    const support = await vmafAvailability(deps.binaries.ffmpeg);
    if (!support.available) return support;
    const distorted = path.join(scratch, 'first-segment.mp4');
    await fsp.writeFile(
      distorted,
      Buffer.concat([await fsp.readFile(path.join(dir, 'init.mp4')), await fsp.readFile(path.join(dir, first.file))]),
    );
    const log = path.join(scratch, 'vmaf.json');
    await withSourceInput(source, (src) =>
      deps.limiter.schedule(
        inActiveContext(() =>
          runProcess(
            deps.binaries.ffmpeg,
            [
              ...FFMPEG_WRITE_ARGS,
              '-i',
              distorted,
              '-t',
              first.durationSec.toFixed(3),
              '-i',
              src,
              '-lavfi',
              `[0:v]settb=AVTB,setpts=PTS-STARTPTS[main];` +
                `[1:v]scale=${size.width}:${size.height}:flags=bicubic,settb=AVTB,setpts=PTS-STARTPTS[ref];` +
                `[main][ref]libvmaf=log_fmt=json:log_path=${log}`,
              '-f',
              'null',
              '-',
            ],
            { signal: Context.current().cancellationSignal },
          ),
        ),
      ),
    );
    const vmaf = vmafFromLog(JSON.parse(await fsp.readFile(log, 'utf8')));
    if (vmaf === undefined) return { available: false, reason: 'libvmaf wrote no score' };
    return { available: true, vmaf: Math.round(vmaf * 100) / 100, segment: first.file, durationSec: first.durationSec };
  }

  async function probeSize(file: string): Promise<{ width: number; height: number }> {
    const { stdout } = await runProcess(deps.binaries.ffprobe, [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=width,height',
      '-of',
      'json',
      file,
    ]);
    const s = (JSON.parse(stdout) as { streams?: { width?: number; height?: number }[] }).streams?.[0];
    return { width: s?.width ?? 0, height: s?.height ?? 0 };
  }

  /** ffmpeg's HLS muxer writing CMAF segments, a VOD media playlist and `init.mp4` into `dir`. */
  function hlsArgs(dir: string, hlsTime: number, playlistType: 'vod' | 'event' = 'vod'): string[] {
    return [
      '-f',
      'hls',
      '-hls_time',
      String(hlsTime),
      '-hls_list_size',
      '0',
      '-hls_playlist_type',
      playlistType,
      '-hls_segment_type',
      'fmp4',
      '-hls_fmp4_init_filename',
      'init.mp4',
      '-hls_segment_filename',
      path.join(dir, 'seg-%05d.m4s'),
      path.join(dir, 'playlist.m3u8'),
    ];
  }

  /**
   * The source as ffmpeg reads it: a local file (its URI comes from `probeMedia`, which checked
   * it lies inside the media root) as is, an object through the range bridge.
   */
  async function withSourceInput<T>(source: string, fn: (input: string) => Promise<T>): Promise<T> {
    if (source.startsWith('file://')) return fn(fileURLToPath(source));
    const ref = isObjectUri(source) ? storage.objectAt(source) : undefined;
    if (!ref) throw nonRetryable(FailureType.InvalidInput, `source: unsupported URI ${source}`);
    const info = await ref.store.head(ref.key);
    if (!info) throw nonRetryable(FailureType.ObjectNotFound, `source: ${source} does not exist`);
    const served = await deps.bridge.open(ref, info.bytes);
    try {
      const out = await fn(served.url);
      if (served.wasCut()) {
        throw ApplicationFailure.create({
          type: FailureType.StorageUnavailable,
          message: `reading ${source} was cut off by a store outage; the output is discarded and the attempt retried`,
        });
      }
      return out;
    } finally {
      served.close();
    }
  }

  /**
   * Publishes what ffmpeg's HLS muxer writes into `dir` while it runs: every quarter second, each
   * segment its EVENT playlist newly lists (a listed segment is closed) goes to the store with its
   * checksum, after the init segment, and then the group's EVENT playlist naming it. `finish()`
   * (after ffmpeg exits) publishes the rest, appends the end tag and writes the group's record, in
   * that order: a group with a record is complete. A stopped poller stops with the activity.
   */
  function publishWhileEncoding(output: string, name: string, dir: string, segmentSeconds: number) {
    const prefix = runKey(output, 'hls', name);
    const segments: PackagedSegment[] = [];
    let initSha: string | undefined;
    let initInfo: ObjectInfo | undefined;
    const publishListed = async (): Promise<void> => {
      const listFile = path.join(dir, 'playlist.m3u8');
      const text = await fsp.readFile(listFile, 'utf8').catch(() => undefined);
      if (!text) return;
      const listed = parseMediaPlaylist(text);
      if (listed.length <= segments.length) return;
      if (!initSha) {
        const initFile = path.join(dir, 'init.mp4');
        initSha = await sha256File(initFile);
        initInfo = await artifacts.putFile(joinKey(prefix, 'init.mp4'), initFile, { sha256: initSha });
      }
      for (const seg of listed.slice(segments.length)) {
        const file = path.basename(seg.file);
        const sha256 = await sha256File(path.join(dir, file));
        const info = await artifacts.putFile(joinKey(prefix, file), path.join(dir, file), { sha256 });
        segments.push({ file, bytes: info.bytes, sha256, durationSec: seg.durationSec });
      }
      await writeRenditionPlaylist(output, name, segments, segmentSeconds, false);
    };
    let chain: Promise<void> = Promise.resolve();
    let failed: Error | undefined;
    const step = () => {
      chain = chain.then(publishListed).catch((err: unknown) => {
        failed ??= err instanceof Error ? err : new Error(String(err));
      });
      return chain;
    };
    const timer = setInterval(() => void step(), 250);
    return {
      async finish(): Promise<[Artifact, Artifact, PackagedSegment[]]> {
        clearInterval(timer);
        await step();
        if (failed !== undefined) throw failed;
        if (!initSha || !initInfo || segments.length === 0) {
          throw ApplicationFailure.create({
            type: FailureType.TranscodeFailed,
            message: `${name}: ffmpeg wrote no segment`,
          });
        }
        const playlist = await writeRenditionPlaylist(output, name, segments, segmentSeconds, true);
        await artifacts.put(
          runKey(output, '.work', 'hls', `${name}.json`),
          JSON.stringify({ init: initSha, segments }),
        );
        const init = await describe(joinKey(prefix, 'init.mp4'), { ...initInfo, sha256: initSha });
        return [playlist, init, segments];
      },
      stop(): void {
        clearInterval(timer);
      },
    };
  }

  /**
   * Encodes the source's audio once into the shared AAC group (CMAF segments of the same length
   * as the video's) and publishes it. A published group (its playlist is written last) is reused
   * on retry; an interrupted one is redone from the start: audio encodes at hundreds × real time.
   */
  async function packageAudio(input: PackageAudioInput): Promise<StreamAudioArtifact> {
    let outTimeSec = 0;
    return withKeepAlive(
      () => ({ stage: 'audio', outTimeSec }),
      async () => {
        try {
          const playlistKey = runKey(input.output, 'hls', 'audio', 'playlist.m3u8');
          const done = await readJson<{ init: string; segments: PackagedSegment[] }>(
            runKey(input.output, '.work', 'hls', 'audio.json'),
          );
          const publishedPlaylist = done ? await artifacts.head(playlistKey) : undefined;
          if (done && publishedPlaylist) {
            const initKey = runKey(input.output, 'hls', 'audio', 'init.mp4');
            const initInfo = await artifacts.head(initKey);
            if (initInfo) {
              // A store's head need not carry a checksum (the file store's does not hash): the
              // playlist is a few hundred bytes, so hash what is there.
              const playlistBytes = await artifacts.getBuffer(playlistKey);
              const playlistSha = crypto.createHash('sha256').update(playlistBytes).digest('hex');
              // The signed copy (s3) may not have been written before an interruption.
              await publishSigned(input.output, 'hls/audio/playlist.m3u8', playlistBytes.toString('utf8'));
              const playlist = await describe(playlistKey, { ...publishedPlaylist, sha256: playlistSha });
              const init = await describe(initKey, { ...initInfo, sha256: done.init });
              return audioArtifact(playlist, init, done.segments);
            }
          }
          return await withSourceInput(input.source, (src) =>
            inScratch(async (scratch) => {
              const dir = path.join(scratch, 'out');
              await fsp.mkdir(dir);
              const streaming = publishWhileEncoding(input.output, 'audio', dir, input.segmentSeconds);
              try {
                // What plays first: ahead of every later chunk's segments on this worker (see transcodeChunk).
                await deps.limiter.schedule(
                  { priority: 0 },
                  inActiveContext(() =>
                    runProcess(
                      deps.binaries.ffmpeg,
                      [
                        ...FFMPEG_WRITE_ARGS,
                        '-i',
                        src,
                        '-map',
                        '0:a:0',
                        '-vn',
                        '-c:a',
                        'aac',
                        '-b:a',
                        `${STREAM_AUDIO.kbps}k`,
                        '-ac',
                        String(STREAM_AUDIO.channels),
                        '-ar',
                        String(STREAM_AUDIO.sampleRate),
                        '-t',
                        input.durationSec.toFixed(3),
                        '-map_metadata',
                        '-1',
                        '-fflags',
                        '+bitexact',
                        '-flags:a',
                        '+bitexact',
                        '-progress',
                        'pipe:1',
                        '-nostats',
                        // An EVENT playlist: ffmpeg lists each segment once it is closed, so the
                        // segments are published while the rest of the audio is encoded.
                        ...hlsArgs(dir, input.segmentSeconds, 'event'),
                      ],
                      {
                        signal: Context.current().cancellationSignal,
                        onProgress: (p) => {
                          outTimeSec = p.outTimeSec;
                          heartbeat({ stage: 'audio', outTimeSec });
                        },
                      },
                    ),
                  ),
                );
                return audioArtifact(...(await streaming.finish()));
              } finally {
                streaming.stop();
              }
            }),
          );
        } catch (err) {
          throw failure(err);
        }
      },
    );
  }

  function audioArtifact(playlist: Artifact, init: Artifact, segments: PackagedSegment[]): StreamAudioArtifact {
    const r = rates(segments);
    return {
      ...playlist,
      codecs: STREAM_AUDIO.codecs,
      durationSec: r.durationSec,
      peakBitsPerSec: r.peakBitsPerSec,
      averageBitsPerSec: r.averageBitsPerSec,
      init,
      segments: segments.length,
      totalBytes: playlist.bytes + init.bytes + segments.reduce((a, s) => a + s.bytes, 0),
    };
  }

  /**
   * Writes the master playlist (from the measured renditions) and `manifest.json`: every
   * rendition with its segments' sizes and checksums, the audio group, the dropped renditions
   * and the thumbnails (no presigned URLs: they expire).
   */
  async function writeStreamPlaylists(input: StreamPlaylistsInput): Promise<StreamPlaylistsResult> {
    try {
      const kind = input.package ?? Packaging.hls;
      const strip = <T extends Artifact>({ url: _url, path: _path, ...rest }: T) => rest;
      const segmentsOf = async (name: string) =>
        (await readJson<{ segments: PackagedSegment[] }>(runKey(input.output, '.work', 'hls', `${name}.json`)))
          ?.segments ?? [];
      let hlsMaster: Artifact | undefined;
      let signedMaster: string | undefined;
      if (kind === Packaging.hls || kind === Packaging.both) {
        const masterKey = runKey(input.output, 'master.m3u8');
        const masterText = masterPlaylist(input.renditions, input.audio);
        const masterInfo = await artifacts.put(masterKey, masterText, {
          contentType: 'application/vnd.apple.mpegurl',
        });
        hlsMaster = await describe(masterKey, masterInfo);
        signedMaster = await publishSigned(input.output, 'master.m3u8', masterText);
      }
      let mpd: Artifact | undefined;
      if (kind === Packaging.dash || kind === Packaging.both) {
        const track = async (name: string, codecs: string, bandwidth: number): Promise<DashTrack> => {
          const init = await artifacts.getBuffer(runKey(input.output, 'hls', name, 'init.mp4'));
          const timescale = initTimescale(init);
          if (!timescale) {
            throw ApplicationFailure.create({
              type: FailureType.TranscodeFailed,
              message: `${name}: the init segment has no mdhd timescale`,
            });
          }
          return { dir: `hls/${name}`, id: name, codecs, bandwidth, timescale, segments: await segmentsOf(name) };
        };
        const video: DashTrack[] = [];
        for (const r of input.renditions) {
          video.push({
            ...(await track(r.name, r.codecs, r.peakBitsPerSec)),
            video: { width: r.width, height: r.height, frameRate: r.frameRate },
          });
        }
        const audio = input.audio ? await track('audio', input.audio.codecs, input.audio.peakBitsPerSec) : undefined;
        const mpdKey = runKey(input.output, 'manifest.mpd');
        const mpdInfo = await artifacts.put(mpdKey, dashManifest(video, audio, input.segmentSeconds), {
          contentType: 'application/dash+xml',
        });
        mpd = await describe(mpdKey, mpdInfo);
      }
      const master = hlsMaster ?? mpd!;
      const renditions = [];
      for (const r of input.renditions) {
        renditions.push({ ...strip(r), init: strip(r.init), segmentList: await segmentsOf(r.name) });
      }
      const manifest = {
        workflowId: input.workflowId,
        runId: input.runId,
        source: input.source,
        sourceDurationSec: input.sourceDurationSec,
        package: kind,
        segmentSeconds: input.segmentSeconds,
        master: strip(master),
        ...(mpd ? { mpd: strip(mpd) } : {}),
        renditions,
        ...(input.audio
          ? { audio: { ...strip(input.audio), init: strip(input.audio.init), segmentList: await segmentsOf('audio') } }
          : {}),
        dropped: input.dropped,
        ...(input.qualityCheck ? { qualityCheck: input.qualityCheck } : {}),
        ...(input.sprite
          ? { sprite: { ...input.sprite, image: strip(input.sprite.image), vtt: strip(input.sprite.vtt) } }
          : {}),
        thumbnails: input.thumbnails.map(strip),
        createdAt: new Date().toISOString(),
      };
      const manifestKey = runKey(input.output, 'manifest.json');
      const manifestInfo = await artifacts.put(manifestKey, JSON.stringify(manifest, null, 2) + '\n', {
        contentType: 'application/json',
      });
      return {
        master,
        ...(mpd ? { mpd } : {}),
        manifest: await describe(manifestKey, manifestInfo),
        playbackUrl: signedMaster ?? master.url ?? master.uri,
      };
    } catch (err) {
      throw failure(err);
    }
  }

  /**
   * Scrubbing previews: one thumbnail every {@link SPRITE}.intervalSeconds, tiled into
   * `sprite.jpg`, and `sprite.vtt` mapping each interval to its tile. The sheet is written before
   * the map, so a published map always points at a sheet that is there.
   */
  async function extractSprite(input: SpriteInput): Promise<SpriteArtifacts> {
    const interval = SPRITE.intervalSeconds;
    const tileWidth = SPRITE.tileWidth;
    const tileHeight = Math.max(2, Math.round((tileWidth * input.height) / input.width / 2) * 2);
    const tiles = Math.max(1, Math.ceil(input.durationSec / interval - 1e-6));
    const columns = Math.min(SPRITE.columns, tiles);
    const rows = Math.ceil(tiles / columns);
    return withKeepAlive(
      () => ({ stage: 'sprite' }),
      () =>
        withSourceInput(input.source, (src) =>
          inScratch(async (scratch) => {
            try {
              const local = path.join(scratch, 'sprite.jpg');
              await deps.limiter.schedule(
                inActiveContext(() =>
                  runProcess(
                    deps.binaries.ffmpeg,
                    [
                      ...FFMPEG_WRITE_ARGS,
                      '-i',
                      src,
                      '-map',
                      '0:v:0',
                      '-an',
                      '-t',
                      input.durationSec.toFixed(3),
                      // The first frame, then one frame each interval after the last one taken (the fps
                      // filter outputs no frame at all for a source shorter than one interval), scaled
                      // to a tile, laid out in a grid (tile flushes an incomplete grid at the end).
                      '-vf',
                      `select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,${interval})',scale=${tileWidth}:${tileHeight},setsar=1,tile=${columns}x${rows}`,
                      '-vsync',
                      'vfr',
                      '-frames:v',
                      '1',
                      '-q:v',
                      '4',
                      '-f',
                      'image2',
                      local,
                    ],
                    { signal: Context.current().cancellationSignal },
                  ),
                ),
              );
              const imageKey = runKey(input.output, 'sprite.jpg');
              const vttKey = runKey(input.output, 'sprite.vtt');
              const image = await describe(
                imageKey,
                await artifacts.putFile(imageKey, local, { sha256: await sha256File(local) }),
              );
              const vtt = spriteVtt(input.durationSec, interval, { width: tileWidth, height: tileHeight }, columns);
              const vttInfo = await artifacts.put(vttKey, vtt, { contentType: 'text/vtt' });
              return {
                image,
                vtt: await describe(vttKey, vttInfo),
                intervalSeconds: interval,
                tiles,
                tileWidth,
                tileHeight,
              };
            } catch (err) {
              throw failure(err);
            }
          }),
        ),
    );
  }

  return {
    packageRendition,
    publishChunk,
    finishRendition,
    publishMaster,
    packageAudio,
    writeStreamPlaylists,
    extractSprite,
  };
}

export type PackagingActivities = ReturnType<typeof createPackagingActivities>;
