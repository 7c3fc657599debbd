/**
 * Media activities (ffmpeg/ffprobe) over the object store. Created by
 * {@link createMediaActivities} from their dependencies, so tests pass their own store,
 * binaries and limiter.
 *
 * Nothing one activity hands to another is a host path: sources are URIs (`s3://…`, or
 * `file://…` inside the media root), intermediates and artifacts are keys in the artifacts
 * store, and local files exist only in this host's scratch folder, removed by the activity that
 * made them. Layout under `<workflowId>/<runId>/` (the `output` of every input):
 *   `.work/<rendition>/chunk-00003/seg-00009.ts` — segments of a chunk (resumable unit)
 *   `.work/<rendition>/chunk-00003/progress.json` — checksummed segments so far
 *   `.work/<rendition>/chunk-00003/owner.json`   — the attempt that owns the chunk (fences late writers)
 *   `.work/<rendition>/chunk-00003/done.json`    — written when the chunk is complete
 *   `.work/<rendition>/audio.m4a`                — the rendition's audio track
 *   `<rendition>.mp4`, `thumb-01.jpg`, `manifest.json` — artifacts
 * Every object appears under its key only when complete.
 */
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure, activityInfo, cancellationDetails, Context, heartbeat } from '@temporalio/activity';
import type Bottleneck from 'bottleneck';
import { FailureType, RENDITIONS, type RenditionName } from '../../shared/constants';
import type { Artifact } from '../../shared/artifact';
import type { RenditionArtifact, ThumbnailArtifact } from '../../shared/video';
import {
  isObjectUri,
  joinKey,
  sha256File,
  storageFailure,
  type ObjectInfo,
  type ObjectStore,
  type Storage,
} from '../../storage';
import type { RangeBridge } from '../../storage/range-bridge';
import { FfmpegError, runProcess, writeConcatList, type FfmpegBinaries } from './ffmpeg';
import { inActiveContext } from '../../tracing';

export interface MediaDeps {
  binaries: FfmpegBinaries;
  /** Local sources must resolve inside this directory (after symlinks). */
  mediaRoot: string;
  /** Where sources are read and artifacts written (SLUICE_STORAGE_URL), and this host's scratch folder. */
  storage: Storage;
  /** Serves objects to ffmpeg by byte ranges on 127.0.0.1. */
  bridge: RangeBridge;
  /** Bounds how many ffmpeg processes run at once in this process. */
  limiter: Bottleneck;
  /** Seconds per resumable segment inside a chunk. @default 10 */
  segmentSeconds?: number;
  /** x264 preset. @default 'veryfast' */
  x264Preset?: string;
  /** x264 constant rate factor; each rendition's bitrate is its ceiling. @default 23 */
  x264Crf?: number;
  /**
   * x264 threads per segment encode. 1 keeps encodes deterministic (resumed output is
   * byte-identical); more helps only when there are fewer segments than cores. @default 1
   */
  x264Threads?: number;
  /**
   * Fires shortly before the worker's shutdown grace ends: long activities stop at a safe point
   * and fail retryably, so their work resumes elsewhere. The SDK gives activities no such signal.
   */
  shutdownSignal?: AbortSignal;
}

/** Every media input names the run's output prefix in the artifacts store: `<workflowId>/<runId>`. */
interface RunOutput {
  output: string;
}

export interface ProbeInput extends RunOutput {
  /** `s3://bucket/key`, `file:///abs/path` or a path relative to the media root. */
  source: string;
  /**
   * A streaming package takes a source with audio and no video (an audio-only stream); absent
   * (`mp4`), a source with no video stream fails as InvalidMedia.
   */
  allowAudioOnly?: boolean;
}
export interface ProbeResult {
  /** URI every later step reads the source by (never a host path). */
  uri: string;
  durationSec: number;
  /** The video's size; 0 × 0 for an audio-only source (only with `allowAudioOnly`). */
  width: number;
  height: number;
  hasAudio: boolean;
  /** False for an audio-only source (only with `allowAudioOnly`); absent in results recorded before. */
  hasVideo?: boolean;
  bytes: number;
}

export interface TranscodeChunkInput extends RunOutput {
  /** The source's URI (from `probeMedia`). */
  source: string;
  rendition: RenditionName;
  chunkIndex: number;
  startSec: number;
  durationSec: number;
  /**
   * Segments for a streaming package (`hls`): their length, and the rendition's exact size from
   * the ladder. Each segment is one closed GOP, with its keyframe forced on the boundary, so every
   * rendition has keyframes at the same timestamps. Absent: `mp4` (the worker's segment length).
   */
  stream?: StreamSegmenting;
}
export interface StreamSegmenting {
  segmentSeconds: number;
  width: number;
  height: number;
}
export interface SegmentRecord {
  index: number;
  file: string;
  bytes: number;
  sha256: string;
}
/** Heartbeat details of `transcodeChunk`: what a retry may skip. */
export interface TranscodeHeartbeat {
  segments: SegmentRecord[];
  outTimeSec: number;
}
export interface TranscodeChunkResult {
  rendition: RenditionName;
  chunkIndex: number;
  segments: number;
  bytes: number;
  /** Segments reused from an earlier attempt (verified by checksum). */
  resumedSegments: number;
  /** Bytes of the source this attempt fetched from the store (ranged reads); undefined for a local file. */
  sourceBytesRead?: number;
}

export interface ThumbnailInput extends RunOutput {
  source: string;
  index: number;
  atSec: number;
}
export interface EncodeAudioInput extends RunOutput {
  source: string;
  rendition: RenditionName;
  durationSec: number;
}
export interface ConcatInput extends RunOutput {
  rendition: RenditionName;
  chunkCount: number;
  /** Mux in the rendition's audio track (from `encodeAudio`). */
  hasAudio: boolean;
}
export interface ManifestInput extends RunOutput {
  workflowId: string;
  runId: string;
  source: string;
  sourceDurationSec: number;
  renditions: RenditionArtifact[];
  thumbnails: ThumbnailArtifact[];
}
export interface CleanupInput extends RunOutput {
  /** Also remove this run's finished artifacts (after a failure or cancellation). */
  removeArtifacts: boolean;
}

const nonRetryable = (type: FailureType, message: string, cause?: Error) =>
  ApplicationFailure.create({ type, message, nonRetryable: true, cause });

/** ffmpeg's words for an output it cannot write. */
const FFMPEG_OUTPUT_ERRORS = /No space left on device|Read-only file system|Disk quota exceeded/;

/**
 * Maps failures to write outputs (a full or read-only disk, from Node or from ffmpeg) to a
 * non-retryable failure: retrying won't free the disk, and a retry storm would only fill it
 * again. Storage errors get their own types (see storageFailure).
 */
function outputFailure(err: unknown, where: string): unknown {
  if (err instanceof FfmpegError && FFMPEG_OUTPUT_ERRORS.test(err.stderrTail)) {
    return nonRetryable(
      FailureType.OutputUnwritable,
      `cannot write ${where}: ${FFMPEG_OUTPUT_ERRORS.exec(err.stderrTail)?.[0]}`,
      err,
    );
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || code === 'EDQUOT') {
    return nonRetryable(FailureType.OutputUnwritable, `cannot write ${where}: ${code}`, err as Error);
  }
  return storageFailure(err);
}

export { sha256File };

/** ffmpeg's leading flags for a run that writes a file: quiet but for errors, no stdin, overwrite. */
const FFMPEG_WRITE_ARGS = ['-hide_banner', '-nostdin', '-y', '-v', 'error'];

/** Runs `fn` while heartbeating every few seconds, so time spent waiting (limiter queue) is not a heartbeat timeout. */
async function withKeepAlive<T>(details: () => unknown, fn: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => heartbeat(details()), 5_000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

function cancelledByUser(): boolean {
  return cancellationDetails()?.cancelRequested ?? false;
}

/** An ffmpeg failure as TranscodeFailed; a full disk or a store failure as its own type. */
function ffmpegFailure(err: unknown, where: string): unknown {
  const mapped = outputFailure(err, where);
  if (mapped !== err) return mapped;
  if (err instanceof FfmpegError) {
    return ApplicationFailure.create({ type: FailureType.TranscodeFailed, message: err.message, cause: err });
  }
  return err;
}

/** The source as ffmpeg reads it: a local path, or a loopback URL served by ranged GETs. */
interface OpenedSource {
  input: string;
  uri: string;
  bytes: number;
  /** Bytes fetched from the store so far (undefined for a local file). */
  bytesRead(): number | undefined;
  /**
   * Throws a retryable StorageUnavailable when a read of the source was cut off by a store
   * outage: ffmpeg may have taken the cut for the end of the file, so what it wrote is not kept.
   */
  assertWhole(): void;
  close(): void;
}

export const chunkName = (i: number) => `chunk-${String(i).padStart(5, '0')}`;

export function createMediaActivities(deps: MediaDeps) {
  const defaultSegmentSeconds = deps.segmentSeconds ?? 10;
  const preset = deps.x264Preset ?? 'veryfast';
  const crf = deps.x264Crf ?? 23;
  const x264Threads = deps.x264Threads ?? 1;
  const { storage } = deps;
  const artifacts: ObjectStore = storage.artifacts;
  let mediaRoot: string | undefined;

  /** The run's output prefix, checked to be `<workflowId>/<runId>` with no way out of the store. */
  function runKey(output: string, ...rest: string[]): string {
    const parts = output.split('/');
    if (
      parts.length !== 2 ||
      parts.some((p) => !p || p === '.' || p === '..' || p.startsWith('.')) ||
      output.includes('\0')
    ) {
      throw nonRetryable(FailureType.InvalidInput, `output ${JSON.stringify(output)} is not <workflowId>/<runId>`);
    }
    return joinKey(output, ...rest);
  }
  const chunkKey = (output: string, rendition: string, chunkIndex: number, file = '') =>
    runKey(output, '.work', rendition, chunkName(chunkIndex), file);
  const audioKey = (output: string, rendition: string) => runKey(output, '.work', rendition, 'audio.m4a');

  /** A fresh folder in this host's scratch space for one activity; `fn` runs in it, and it is removed after. */
  async function inScratch<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    await fsp.mkdir(storage.scratchDir, { recursive: true }).catch((err: unknown) => {
      throw outputFailure(err, storage.scratchDir);
    });
    const dir = await fsp.mkdtemp(path.join(storage.scratchDir, 'act-'));
    try {
      return await fn(dir);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  /** A local source's real path, checked to lie inside the media root (same message for missing and outside). */
  async function localSource(source: string): Promise<string> {
    mediaRoot ??= await fsp.realpath(deps.mediaRoot);
    const given = source.startsWith('file://') ? new URL(source).pathname : source;
    let real: string;
    try {
      real = await fsp.realpath(path.resolve(mediaRoot, decodeURIComponent(given)));
    } catch (err) {
      throw nonRetryable(FailureType.NotFound, `source: ${source} does not exist`, err as Error);
    }
    if (real !== mediaRoot && !real.startsWith(mediaRoot + path.sep)) {
      throw nonRetryable(FailureType.Forbidden, `source: ${source} resolves outside the media root`);
    }
    return real;
  }

  /** Opens a source for ffmpeg: a local file as is, an object through the range bridge. */
  async function openSource(source: string): Promise<OpenedSource> {
    if (isObjectUri(source) && !source.startsWith('file://')) {
      const ref = storage.objectAt(source);
      if (!ref)
        throw nonRetryable(FailureType.InvalidInput, `source: unsupported URI ${source}; expected s3://bucket/key`);
      let info: ObjectInfo | undefined;
      try {
        info = await ref.store.head(ref.key);
      } catch (err) {
        throw storageFailure(err);
      }
      if (!info) {
        throw ApplicationFailure.create({
          type: FailureType.ObjectNotFound,
          message: `source: ${source} does not exist`,
          nonRetryable: true,
        });
      }
      const served = await deps.bridge.open(ref, info.bytes);
      return {
        input: served.url,
        uri: source,
        bytes: info.bytes,
        bytesRead: served.bytesRead,
        assertWhole: () => {
          if (served.wasCut()) {
            throw ApplicationFailure.create({
              type: FailureType.StorageUnavailable,
              message: `reading ${source} was cut off by a store outage; the output is discarded and the attempt retried`,
            });
          }
        },
        close: served.close,
      };
    }
    const real = await localSource(source);
    const stat = await fsp.stat(real);
    if (!stat.isFile()) throw nonRetryable(FailureType.InvalidMedia, `source: ${source} is not a regular file`);
    return {
      input: real,
      uri: pathToFileURL(real).href,
      bytes: stat.size,
      bytesRead: () => undefined,
      assertWhole: () => undefined,
      close: () => undefined,
    };
  }

  async function withSource<T>(source: string, fn: (src: OpenedSource) => Promise<T>): Promise<T> {
    const src = await openSource(source);
    try {
      return await fn(src);
    } finally {
      src.close();
    }
  }

  /** The artifact record of a stored object: URI, size, checksum, and a host path or presigned URL. */
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

  /** Uploads a finished local file as `key` (visible only when complete). */
  async function upload(key: string, file: string, sha256?: string): Promise<ObjectInfo> {
    try {
      return await artifacts.putFile(key, file, sha256 ? { sha256 } : {});
    } catch (err) {
      throw outputFailure(err, artifacts.uri(key));
    }
  }

  /** Probes the source: duration, size, streams. Not a decodable video → non-retryable InvalidMedia. */
  async function probeMedia(input: ProbeInput): Promise<ProbeResult> {
    return withSource(input.source, async (src) => {
      if (src.bytes === 0) throw nonRetryable(FailureType.InvalidMedia, `source: ${input.source} is empty (0 bytes)`);
      let parsed: {
        format?: { duration?: string };
        streams?: { codec_type?: string; width?: number; height?: number }[];
      };
      try {
        const { stdout } = await runProcess(
          deps.binaries.ffprobe,
          ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', src.input],
          { signal: Context.current().cancellationSignal },
        );
        parsed = JSON.parse(stdout) as typeof parsed;
      } catch (err) {
        if (err instanceof FfmpegError) {
          throw nonRetryable(
            FailureType.InvalidMedia,
            `source: ${input.source} is not readable media: ${err.stderrTail.replaceAll(src.input, input.source)}`,
            err,
          );
        }
        throw err;
      }
      const video = parsed.streams?.find((s) => s.codec_type === 'video');
      const hasAudio = parsed.streams?.some((s) => s.codec_type === 'audio') ?? false;
      const durationSec = Number(parsed.format?.duration);
      const hasVideo = Boolean(video?.width && video.height);
      if (!hasVideo && !(input.allowAudioOnly && hasAudio)) {
        throw nonRetryable(
          FailureType.InvalidMedia,
          input.allowAudioOnly
            ? `source: ${input.source} has no video stream and no audio stream`
            : `source: ${input.source} has no video stream`,
        );
      }
      if (!Number.isFinite(durationSec) || durationSec <= 0) {
        throw nonRetryable(FailureType.InvalidMedia, `source: ${input.source} has no usable duration`);
      }
      // A file cut short can still probe when its index is at the front: decode its last second.
      await assertTailDecodes(src.input, durationSec, input.source, hasVideo ? '0:v:0' : '0:a:0');
      src.assertWhole();
      return {
        uri: src.uri,
        durationSec,
        width: hasVideo ? video!.width! : 0,
        height: hasVideo ? video!.height! : 0,
        hasAudio,
        ...(input.allowAudioOnly ? { hasVideo } : {}),
        bytes: src.bytes,
      };
    });
  }

  async function assertTailDecodes(input: string, durationSec: number, shown: string, map = '0:v:0'): Promise<void> {
    const from = Math.max(0, durationSec - 1.5);
    let frames = 0;
    try {
      // framecrc prints one line per decoded frame: a file cut short decodes none (or errors).
      const { stdout } = await runProcess(
        deps.binaries.ffmpeg,
        [
          '-hide_banner',
          '-nostdin',
          '-v',
          'error',
          '-xerror',
          '-ss',
          from.toFixed(3),
          '-i',
          input,
          '-map',
          map,
          '-f',
          'framecrc',
          '-',
        ],
        { signal: Context.current().cancellationSignal },
      );
      frames = stdout.split('\n').filter((l) => l && !l.startsWith('#')).length;
    } catch (err) {
      if (!(err instanceof FfmpegError)) throw err;
      throw nonRetryable(
        FailureType.InvalidMedia,
        `source: ${shown} is truncated or corrupt near its end: ${err.stderrTail.replaceAll(input, shown)}`,
        err,
      );
    }
    if (frames === 0) {
      throw nonRetryable(
        FailureType.InvalidMedia,
        `source: ${shown} is truncated: no frame decodes in its last 1.5 s of ${durationSec.toFixed(1)} s`,
      );
    }
  }

  /** Reads a small JSON object from the store; undefined when it does not exist. */
  async function readJson<T>(key: string): Promise<T | undefined> {
    if (!(await artifacts.head(key))) return undefined;
    try {
      return JSON.parse((await artifacts.getBuffer(key)).toString('utf8')) as T;
    } catch (err) {
      // Gone between head and get (cleaned up): the same as absent.
      if ((storageFailure(err) as ApplicationFailure).type === FailureType.ObjectNotFound) return undefined;
      throw err;
    }
  }

  /**
   * Segments a retry may skip: the longest prefix whose objects still exist in the store with
   * the recorded size and checksum. Records come from the last attempt's heartbeat, or from the
   * chunk's `progress.json` in the store (written after each segment, in case the last throttled
   * heartbeat never reached the server, or the last attempt ran on another host).
   */
  async function verifiedSegments(output: string, rendition: string, chunkIndex: number): Promise<SegmentRecord[]> {
    const fromHeartbeat = (activityInfo().heartbeatDetails as TranscodeHeartbeat | undefined)?.segments ?? [];
    const fromStore =
      (await readJson<TranscodeHeartbeat>(chunkKey(output, rendition, chunkIndex, 'progress.json')))?.segments ?? [];
    const records = fromStore.length > fromHeartbeat.length ? fromStore : fromHeartbeat;
    const kept: SegmentRecord[] = [];
    for (const seg of records) {
      if (seg.index !== kept.length) break;
      if (!(await artifacts.verify(chunkKey(output, rendition, chunkIndex, seg.file), seg.bytes, seg.sha256))) break;
      kept.push(seg);
    }
    return kept;
  }

  /** ffmpeg arguments for one video-only MPEG-TS segment of a rendition. */
  function segmentArgs(
    source: string,
    rendition: RenditionName,
    startSec: number,
    durationSec: number,
    out: string,
    stream?: StreamSegmenting,
  ): string[] {
    const spec = RENDITIONS[rendition];
    // A streaming segment is exactly one closed GOP: its keyframe is forced on the boundary (the
    // segment's first frame) and no other keyframe may appear (no scene cuts, no GOP limit inside
    // it), so every rendition switches at the same timestamps.
    const gop = stream
      ? [
          '-force_key_frames',
          `expr:gte(t,n_forced*${stream.segmentSeconds})`,
          '-g',
          '100000',
          '-keyint_min',
          '100000',
          '-sc_threshold',
          '0',
          '-flags',
          '+cgop',
          // No B-frames: the first frame's presentation time is then its decode time (0), so a
          // player's buffer starts at 0 with the audio instead of a reorder delay later.
          '-bf',
          '0',
        ]
      : [];
    return [
      ...FFMPEG_WRITE_ARGS,
      '-ss',
      startSec.toFixed(3),
      '-t',
      durationSec.toFixed(3),
      '-i',
      source,
      // Video only: per-segment AAC would add encoder priming to every segment and drift the
      // concatenated duration; audio is encoded once per rendition by encodeAudio.
      '-map',
      '0:v:0',
      '-an',
      '-vf',
      stream ? `scale=${stream.width}:${stream.height},setsar=1` : `scale=-2:${spec.height}`,
      // Capped CRF with one x264 thread: threaded x264 rate control is not deterministic once the
      // bitrate cap (VBV) engages, and a single thread is, so a resumed chunk comes out
      // byte-identical. Parallelism comes from encoding many segments at once (the limiter).
      '-c:v',
      'libx264',
      '-threads',
      String(x264Threads),
      '-preset',
      preset,
      '-pix_fmt',
      'yuv420p',
      '-crf',
      String(crf),
      '-maxrate',
      `${spec.videoKbps}k`,
      '-bufsize',
      `${spec.bufsizeKbits}k`,
      ...gop,
      '-progress',
      'pipe:1',
      '-nostats',
      '-f',
      'mpegts',
      out,
    ];
  }

  /**
   * Transcodes one chunk of the source into one rendition as video-only MPEG-TS segments of
   * `segmentSeconds`, one ffmpeg run per segment, each uploaded to the store as soon as it is
   * done. Each segment is a pure function of source, time range and settings, so a resumed
   * chunk is byte-identical to an uninterrupted one, wherever it resumes. Heartbeats the
   * checksummed segments; a retry (on any host) skips the verified ones.
   *
   * The attempt claims the chunk in `owner.json` and checks the claim before every write: an
   * attempt cut off from the cluster (its heartbeat timed out and a newer attempt took over, or
   * the run already finished and removed `.work/`) stops instead of writing late.
   */
  async function transcodeChunk(input: TranscodeChunkInput): Promise<TranscodeChunkResult> {
    if (!RENDITIONS[input.rendition])
      throw nonRetryable(FailureType.InvalidInput, `rendition: unknown rendition ${input.rendition}`);
    const key = (file: string) => chunkKey(input.output, input.rendition, input.chunkIndex, file);
    const existing = await readJson<TranscodeChunkResult>(key('done.json'));
    if (existing) return { ...existing, resumedSegments: existing.segments, sourceBytesRead: 0 };

    const ctx = Context.current();
    const token = `${activityInfo().attempt}-${crypto.randomBytes(6).toString('hex')}`;
    const owned = async () => (await readJson<{ token: string }>(key('owner.json')))?.token === token;
    const segmentSeconds = input.stream?.segmentSeconds ?? defaultSegmentSeconds;
    const expected = Math.max(1, Math.ceil(input.durationSec / segmentSeconds - 1e-6));
    let details: TranscodeHeartbeat = { segments: [], outTimeSec: 0 };
    // Heartbeat all along, also while a store call waits out an outage in the SDK's retries.
    return withKeepAlive(
      () => details,
      () =>
        withSource(input.source, (src) =>
          inScratch(async (scratch) => {
            try {
              await artifacts.put(key('owner.json'), JSON.stringify({ token, attempt: activityInfo().attempt }));
              const segments = await verifiedSegments(input.output, input.rendition, input.chunkIndex);
              const resumedSegments = segments.length;
              let outTimeSec = resumedSegments * segmentSeconds;
              const current = (): TranscodeHeartbeat => (details = { segments, outTimeSec });
              heartbeat(current());
              const signal = deps.shutdownSignal
                ? AbortSignal.any([ctx.cancellationSignal, deps.shutdownSignal])
                : ctx.cancellationSignal;
              const claimed = async () => {
                if (!(await owned())) {
                  throw ApplicationFailure.create({
                    type: FailureType.TranscodeFailed,
                    message: `chunk ${input.chunkIndex} of ${input.rendition} was taken over by a newer attempt (or its run ended); this attempt stops without writing`,
                  });
                }
              };
              for (let index = segments.length; index < expected; index++) {
                const offset = index * segmentSeconds;
                const file = `seg-${String(index).padStart(5, '0')}.ts`;
                const local = path.join(scratch, file);
                const args = segmentArgs(
                  src.input,
                  input.rendition,
                  input.startSec + offset,
                  Math.min(segmentSeconds, input.durationSec - offset),
                  local,
                  input.stream,
                );
                // The keep-alive around the whole attempt heartbeats while queued behind the limiter too.
                // A streaming package plays from its first chunks: on this worker, earlier chunks'
                // segments go ahead of later ones (Bottleneck: 0 is first, 5 the default, 9 last).
                const priority = input.stream ? Math.min(9, input.chunkIndex) : 5;
                await deps.limiter.schedule(
                  { priority },
                  inActiveContext(() =>
                    runProcess(deps.binaries.ffmpeg, args, {
                      signal,
                      onProgress: (p) => {
                        outTimeSec = offset + p.outTimeSec;
                        heartbeat(current());
                      },
                    }),
                  ),
                );
                // A read cut off by a store outage must not become a short segment.
                src.assertWhole();
                const sha256 = await sha256File(local);
                await claimed();
                const info = await upload(key(file), local, sha256);
                await fsp.rm(local, { force: true });
                segments.push({ index, file, bytes: info.bytes, sha256 });
                outTimeSec = offset + Math.min(segmentSeconds, input.durationSec - offset);
                await artifacts.put(key('progress.json'), JSON.stringify(current()));
                heartbeat(current());
              }
              const result: TranscodeChunkResult = {
                rendition: input.rendition,
                chunkIndex: input.chunkIndex,
                segments: segments.length,
                bytes: segments.reduce((sum, seg) => sum + seg.bytes, 0),
                resumedSegments,
              };
              await claimed();
              await artifacts.put(key('segments.json'), JSON.stringify(segments));
              await artifacts.put(key('done.json'), JSON.stringify(result));
              const read = src.bytesRead();
              return read === undefined ? result : { ...result, sourceBytesRead: read };
            } catch (err) {
              if (ctx.cancellationSignal.aborted) {
                // A user cancel removes the chunk; a timeout keeps verified segments to resume from.
                if (cancelledByUser()) await artifacts.deletePrefix(key('')).catch(() => undefined);
                throw err;
              }
              if (deps.shutdownSignal?.aborted) {
                // Retryable at once: the next attempt (on another worker) resumes from the stored segments.
                throw ApplicationFailure.create({
                  type: FailureType.WorkerShutdown,
                  message: `worker shutting down: chunk ${input.chunkIndex} of ${input.rendition} stopped`,
                });
              }
              throw ffmpegFailure(err, artifacts.uri(key('')));
            }
          }),
        ),
    );
  }

  /**
   * Encodes the whole audio track of a rendition once (AAC in M4A), in parallel with the video
   * chunks, and stores it under the run's `.work/`. An existing complete object is reused on retry.
   */
  async function encodeAudio(input: EncodeAudioInput): Promise<{ rendition: RenditionName; bytes: number }> {
    const spec = RENDITIONS[input.rendition];
    if (!spec) throw nonRetryable(FailureType.InvalidInput, `rendition: unknown rendition ${input.rendition}`);
    const key = audioKey(input.output, input.rendition);
    let outTimeSec = 0;
    // Heartbeat all along, also while a store call waits out an outage in the SDK's retries.
    return withKeepAlive(
      () => ({ outTimeSec }),
      async () => {
        const existing = await artifacts.head(key);
        if (existing) return { rendition: input.rendition, bytes: existing.bytes };
        return withSource(input.source, (src) =>
          inScratch(async (scratch) => {
            const local = path.join(scratch, 'audio.m4a');
            try {
              await deps.limiter.schedule(
                inActiveContext(() =>
                  runProcess(
                    deps.binaries.ffmpeg,
                    [
                      ...FFMPEG_WRITE_ARGS,
                      '-i',
                      src.input,
                      '-map',
                      '0:a:0',
                      '-vn',
                      '-c:a',
                      'aac',
                      '-b:a',
                      `${spec.audioKbps}k`,
                      '-ac',
                      '2',
                      '-ar',
                      '48000',
                      '-t',
                      input.durationSec.toFixed(3),
                      '-progress',
                      'pipe:1',
                      '-nostats',
                      '-f',
                      'mp4',
                      local,
                    ],
                    {
                      signal: Context.current().cancellationSignal,
                      onProgress: (p) => {
                        outTimeSec = p.outTimeSec;
                        heartbeat({ outTimeSec });
                      },
                    },
                  ),
                ),
              );
            } catch (err) {
              throw ffmpegFailure(err, artifacts.uri(key));
            }
            src.assertWhole();
            const info = await upload(key, local);
            return { rendition: input.rendition, bytes: info.bytes };
          }),
        );
      },
    );
  }

  /** One JPEG thumbnail at `atSec`, 320 px wide, stored as `thumb-NN.jpg`. */
  async function extractThumbnail(input: ThumbnailInput): Promise<ThumbnailArtifact> {
    const key = runKey(input.output, `thumb-${String(input.index + 1).padStart(2, '0')}.jpg`);
    return withKeepAlive(
      () => ({ stage: 'thumbnail' }),
      () =>
        withSource(input.source, (src) =>
          inScratch(async (scratch) => {
            const local = path.join(scratch, 'thumb.jpg');
            try {
              await deps.limiter.schedule(
                inActiveContext(() =>
                  runProcess(
                    deps.binaries.ffmpeg,
                    [
                      ...FFMPEG_WRITE_ARGS,
                      '-ss',
                      input.atSec.toFixed(3),
                      '-i',
                      src.input,
                      '-frames:v',
                      '1',
                      '-vf',
                      'scale=320:-2',
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
            } catch (err) {
              throw ffmpegFailure(err, artifacts.uri(key));
            }
            src.assertWhole();
            const info = await upload(key, local);
            return { ...(await describe(key, info)), atSec: input.atSec };
          }),
        ),
    );
  }

  async function probeOutput(file: string): Promise<{ durationSec: number; width: number; height: number }> {
    const { stdout } = await runProcess(deps.binaries.ffprobe, [
      '-v',
      'error',
      '-print_format',
      'json',
      '-show_format',
      '-show_streams',
      '-select_streams',
      'v:0',
      file,
    ]);
    const parsed = JSON.parse(stdout) as {
      format?: { duration?: string };
      streams?: { width?: number; height?: number }[];
    };
    return {
      durationSec: Number(parsed.format?.duration ?? 0),
      width: parsed.streams?.[0]?.width ?? 0,
      height: parsed.streams?.[0]?.height ?? 0,
    };
  }

  /**
   * Joins a rendition's segments, in chunk order, into one MP4 by stream copy (no re-encode):
   * the segments and audio come from the store into scratch, the MP4 goes back to the store.
   */
  async function concatRendition(input: ConcatInput): Promise<RenditionArtifact> {
    // Heartbeat all along: downloads, ffmpeg, upload, and any wait on the store.
    return withKeepAlive(
      () => ({ stage: 'concat' }),
      () => concat(input),
    );
  }

  async function concat(input: ConcatInput): Promise<RenditionArtifact> {
    const final = runKey(input.output, `${input.rendition}.mp4`);
    if (input.hasAudio && !(await artifacts.head(audioKey(input.output, input.rendition)))) {
      throw ApplicationFailure.create({
        type: FailureType.TranscodeFailed,
        message: `audio of ${input.rendition} is not complete`,
      });
    }
    const chunks: SegmentRecord[][] = [];
    for (let i = 0; i < input.chunkCount; i++) {
      const segs = (await artifacts.head(chunkKey(input.output, input.rendition, i, 'done.json')))
        ? await readJson<SegmentRecord[]>(chunkKey(input.output, input.rendition, i, 'segments.json'))
        : undefined;
      if (!segs) {
        throw ApplicationFailure.create({
          type: FailureType.TranscodeFailed,
          message: `chunk ${i} of ${input.rendition} is not complete`,
        });
      }
      chunks.push(segs);
    }
    return inScratch(async (scratch) => {
      const files: string[] = [];
      try {
        for (const [i, segs] of chunks.entries()) {
          for (const seg of segs) {
            const local = path.join(scratch, `${chunkName(i)}-${seg.file}`);
            const got = await artifacts.download(chunkKey(input.output, input.rendition, i, seg.file), local);
            if (got.sha256 !== seg.sha256) {
              throw ApplicationFailure.create({
                type: FailureType.TranscodeFailed,
                message: `segment ${seg.file} of chunk ${i} (${input.rendition}) does not match its checksum`,
              });
            }
            files.push(local);
          }
          heartbeat({ stage: 'download', chunk: i });
        }
        const audio = path.join(scratch, 'audio.m4a');
        if (input.hasAudio) await artifacts.download(audioKey(input.output, input.rendition), audio);
        const list = await writeConcatList(files, scratch);
        const local = path.join(scratch, `${input.rendition}.mp4`);
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
            ...(input.hasAudio ? ['-i', audio, '-map', '0:v:0', '-map', '1:a:0'] : []),
            '-c',
            'copy',
            '-movflags',
            '+faststart',
            '-f',
            'mp4',
            local,
          ],
          { signal: Context.current().cancellationSignal },
        );
        const meta = await probeOutput(local);
        const info = await upload(final, local);
        return { name: input.rendition, ...(await describe(final, info)), ...meta };
      } catch (err) {
        throw ffmpegFailure(err, artifacts.uri(final));
      }
    });
  }

  /** Writes `manifest.json` (no presigned URLs: they expire) and returns its artifact record. */
  async function writeManifest(input: ManifestInput): Promise<Artifact> {
    const key = runKey(input.output, 'manifest.json');
    const strip = <T extends Artifact>({ url: _url, ...rest }: T) => rest;
    const manifest = {
      workflowId: input.workflowId,
      runId: input.runId,
      source: input.source,
      sourceDurationSec: input.sourceDurationSec,
      renditions: input.renditions.map(strip),
      thumbnails: input.thumbnails.map(strip),
      createdAt: new Date().toISOString(),
    };
    try {
      const info = await artifacts.put(key, JSON.stringify(manifest, null, 2) + '\n', {
        contentType: 'application/json',
      });
      return describe(key, info);
    } catch (err) {
      throw outputFailure(err, artifacts.uri(key));
    }
  }

  /** Removes the run's `.work/`; after a failure or cancel, the run's partial artifacts as well. Never another run's. */
  async function cleanupPipeline(input: CleanupInput): Promise<void> {
    try {
      await withKeepAlive(
        () => ({ stage: 'cleanup' }),
        async () => {
          await artifacts.deletePrefix(runKey(input.output, '.work'));
          if (input.removeArtifacts) await artifacts.deletePrefix(runKey(input.output));
        },
      );
    } catch (err) {
      throw storageFailure(err);
    }
  }

  return { probeMedia, transcodeChunk, encodeAudio, extractThumbnail, concatRendition, writeManifest, cleanupPipeline };
}

export type MediaActivities = ReturnType<typeof createMediaActivities>;
