/**
 * Media activities (ffmpeg/ffprobe). Created by {@link createMediaActivities} from their
 * dependencies, so tests can pass their own roots, binaries and limiter.
 *
 * Layout under `<outputRoot>/<pipelineId>/`:
 *   `.work/<rendition>/chunk-00003/seg-00009.ts` — segments of a chunk (resumable unit)
 *   `.work/<rendition>/chunk-00003/done.json`    — written (atomically) when the chunk is complete
 *   `<rendition>.mp4`, `thumb-01.jpg`, `manifest.json` — artifacts, each written to a temp name and renamed
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, activityInfo, cancellationDetails, Context, heartbeat } from '@temporalio/activity';
import type Bottleneck from 'bottleneck';
import { FailureType, RENDITIONS, type RenditionName } from '../../shared/constants';
import type { RenditionArtifact, ThumbnailArtifact, VideoPipelineResult } from '../../shared/video';
import { FfmpegError, runProcess, type FfmpegBinaries } from './ffmpeg';

export interface MediaDeps {
  binaries: FfmpegBinaries;
  /** Inputs must resolve inside this directory (after symlinks). */
  mediaRoot: string;
  /** Artifacts go to `<outputRoot>/<pipelineId>/`. */
  outputRoot: string;
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

export interface ProbeInput {
  pipelineId: string;
  source: string;
}
export interface ProbeResult {
  /** The real path (symlinks resolved) that every later step reads. */
  path: string;
  durationSec: number;
  width: number;
  height: number;
  hasAudio: boolean;
  bytes: number;
}

export interface TranscodeChunkInput {
  pipelineId: string;
  source: string;
  rendition: RenditionName;
  chunkIndex: number;
  startSec: number;
  durationSec: number;
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
}

export interface ThumbnailInput {
  pipelineId: string;
  source: string;
  index: number;
  atSec: number;
}
export interface EncodeAudioInput {
  pipelineId: string;
  source: string;
  rendition: RenditionName;
  durationSec: number;
}
export interface ConcatInput {
  pipelineId: string;
  rendition: RenditionName;
  chunkCount: number;
  /** Mux in the rendition's audio track (from `encodeAudio`). */
  hasAudio: boolean;
}
export interface ManifestInput {
  pipelineId: string;
  source: string;
  sourceDurationSec: number;
  renditions: RenditionArtifact[];
  thumbnails: ThumbnailArtifact[];
}
export interface CleanupInput {
  pipelineId: string;
  /** Also remove finished artifacts (after a failure or cancellation). */
  removeArtifacts: boolean;
}

const nonRetryable = (type: FailureType, message: string, cause?: Error) =>
  ApplicationFailure.create({ type, message, nonRetryable: true, cause });

/** ffmpeg's words for an output it cannot write. */
const FFMPEG_OUTPUT_ERRORS = /No space left on device|Read-only file system|Disk quota exceeded/;

/**
 * Maps failures to write outputs (a full or read-only disk, from Node or from ffmpeg) to a
 * non-retryable failure: retrying won't free the disk, and a retry storm would only fill it again.
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
  return err;
}

export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** ffmpeg's leading flags for a run that writes a file: quiet but for errors, no stdin, overwrite. */
const FFMPEG_WRITE_ARGS = ['-hide_banner', '-nostdin', '-y', '-v', 'error'];

/** A unique temp name next to `final`, keeping the extension so ffmpeg picks the right muxer. */
function tempNameFor(final: string): string {
  const ext = path.extname(final);
  return path.join(
    path.dirname(final),
    `.${path.basename(final, ext)}.tmp-${crypto.randomBytes(4).toString('hex')}${ext}`,
  );
}

/** Writes a file atomically: a temp name, fsync'd, then renamed. */
async function writeFileAtomic(final: string, data: string): Promise<void> {
  const tmp = tempNameFor(final);
  try {
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, final);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw outputFailure(err, final);
  }
}

/**
 * Has ffmpeg write `final` atomically: `produce` writes a temp name next to it, which is renamed
 * into place. On failure the temp file is removed and the failure named: an unwritable output is
 * OutputUnwritable (non-retryable), an ffmpeg error TranscodeFailed.
 */
async function ffmpegToFile(final: string, produce: (tmp: string) => Promise<unknown>): Promise<void> {
  const tmp = tempNameFor(final);
  try {
    await fsp.mkdir(path.dirname(final), { recursive: true });
    await produce(tmp);
    await fsp.rename(tmp, final);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    const unwritable = outputFailure(err, final);
    if (unwritable !== err) throw unwritable;
    if (err instanceof FfmpegError) {
      throw ApplicationFailure.create({ type: FailureType.TranscodeFailed, message: err.message, cause: err });
    }
    throw err;
  }
}

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

export function createMediaActivities(deps: MediaDeps) {
  const segmentSeconds = deps.segmentSeconds ?? 10;
  const preset = deps.x264Preset ?? 'veryfast';
  const crf = deps.x264Crf ?? 23;
  const x264Threads = deps.x264Threads ?? 1;
  const mediaRoot = fs.realpathSync(deps.mediaRoot);

  function pipelineDir(pipelineId: string): string {
    const dir = path.resolve(deps.outputRoot, pipelineId);
    if (path.dirname(dir) !== path.resolve(deps.outputRoot) || pipelineId.includes('\0')) {
      throw nonRetryable(
        FailureType.InvalidInput,
        `pipelineId ${JSON.stringify(pipelineId)} is not a safe directory name`,
      );
    }
    return dir;
  }
  const chunkDir = (pipelineId: string, rendition: string, chunkIndex: number) =>
    path.join(pipelineDir(pipelineId), '.work', rendition, `chunk-${String(chunkIndex).padStart(5, '0')}`);

  /** The source's real path, checked to lie inside the media root. */
  async function resolveSource(source: string): Promise<string> {
    let real: string;
    try {
      real = await fsp.realpath(path.resolve(mediaRoot, source));
    } catch (err) {
      throw nonRetryable(FailureType.NotFound, `source: ${source} does not exist`, err as Error);
    }
    if (real !== mediaRoot && !real.startsWith(mediaRoot + path.sep)) {
      throw nonRetryable(FailureType.Forbidden, `source: ${source} resolves outside the media root`);
    }
    return real;
  }

  /** Probes the source: duration, size, streams. Not a decodable video → non-retryable InvalidMedia. */
  async function probeMedia(input: ProbeInput): Promise<ProbeResult> {
    const real = await resolveSource(input.source);
    const stat = await fsp.stat(real);
    if (!stat.isFile()) throw nonRetryable(FailureType.InvalidMedia, `source: ${input.source} is not a regular file`);
    if (stat.size === 0) throw nonRetryable(FailureType.InvalidMedia, `source: ${input.source} is empty (0 bytes)`);
    let parsed: {
      format?: { duration?: string };
      streams?: { codec_type?: string; width?: number; height?: number }[];
    };
    try {
      const { stdout } = await runProcess(
        deps.binaries.ffprobe,
        ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', real],
        { signal: Context.current().cancellationSignal },
      );
      parsed = JSON.parse(stdout) as typeof parsed;
    } catch (err) {
      if (err instanceof FfmpegError) {
        throw nonRetryable(
          FailureType.InvalidMedia,
          `source: ${input.source} is not readable media: ${err.stderrTail}`,
          err,
        );
      }
      throw err;
    }
    const video = parsed.streams?.find((s) => s.codec_type === 'video');
    const durationSec = Number(parsed.format?.duration);
    if (!video?.width || !video.height) {
      throw nonRetryable(FailureType.InvalidMedia, `source: ${input.source} has no video stream`);
    }
    if (!Number.isFinite(durationSec) || durationSec <= 0) {
      throw nonRetryable(FailureType.InvalidMedia, `source: ${input.source} has no usable duration`);
    }
    // A file cut short can still probe when its index is at the front: decode its last second.
    await assertTailDecodes(real, durationSec, input.source);
    return {
      path: real,
      durationSec,
      width: video.width,
      height: video.height,
      hasAudio: parsed.streams?.some((s) => s.codec_type === 'audio') ?? false,
      bytes: stat.size,
    };
  }

  async function assertTailDecodes(real: string, durationSec: number, shown: string): Promise<void> {
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
          real,
          '-map',
          '0:v:0',
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
        `source: ${shown} is truncated or corrupt near its end: ${err.stderrTail}`,
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

  /**
   * Segments a retry may skip: the longest prefix whose files still exist with the recorded size
   * and checksum. Records come from the last attempt's heartbeat, or from the chunk's
   * `progress.json` (written after each segment, in case the last throttled heartbeat never
   * reached the server).
   */
  async function verifiedSegments(dir: string): Promise<SegmentRecord[]> {
    const fromHeartbeat = (activityInfo().heartbeatDetails as TranscodeHeartbeat | undefined)?.segments ?? [];
    const fromDisk = await fsp.readFile(path.join(dir, 'progress.json'), 'utf8').then(
      (text) => (JSON.parse(text) as TranscodeHeartbeat).segments,
      () => [] as SegmentRecord[],
    );
    const records = fromDisk.length > fromHeartbeat.length ? fromDisk : fromHeartbeat;
    const kept: SegmentRecord[] = [];
    for (const seg of records) {
      if (seg.index !== kept.length) break;
      const file = path.join(dir, seg.file);
      try {
        const stat = await fsp.stat(file);
        if (stat.size !== seg.bytes || (await sha256File(file)) !== seg.sha256) break;
      } catch {
        break;
      }
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
  ): string[] {
    const spec = RENDITIONS[rendition];
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
      `scale=-2:${spec.height}`,
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
      `${spec.videoKbps * 2}k`,
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
   * `segmentSeconds`, one ffmpeg run per segment. Each segment is a pure function of source,
   * time range and settings, so a resumed chunk is byte-identical to an uninterrupted one.
   * Heartbeats the checksummed segments; a retry skips the verified ones. A user cancel kills
   * ffmpeg and removes the chunk; a worker shutdown keeps verified segments for the next attempt.
   */
  async function transcodeChunk(input: TranscodeChunkInput): Promise<TranscodeChunkResult> {
    if (!RENDITIONS[input.rendition])
      throw nonRetryable(FailureType.InvalidInput, `rendition: unknown rendition ${input.rendition}`);
    const dir = chunkDir(input.pipelineId, input.rendition, input.chunkIndex);
    const doneFile = path.join(dir, 'done.json');
    const existing = await fsp.readFile(doneFile, 'utf8').then(
      (text) => JSON.parse(text) as TranscodeChunkResult,
      () => undefined,
    );
    if (existing) return { ...existing, resumedSegments: existing.segments };

    const source = await resolveSource(input.source);
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch (err) {
      throw outputFailure(err, dir);
    }
    const expected = Math.max(1, Math.ceil(input.durationSec / segmentSeconds - 1e-6));
    const segments = await verifiedSegments(dir);
    const resumedSegments = segments.length;
    let outTimeSec = resumedSegments * segmentSeconds;
    const details = (): TranscodeHeartbeat => ({ segments, outTimeSec });
    heartbeat(details());
    const signal = deps.shutdownSignal
      ? AbortSignal.any([Context.current().cancellationSignal, deps.shutdownSignal])
      : Context.current().cancellationSignal;

    try {
      for (let index = segments.length; index < expected; index++) {
        const offset = index * segmentSeconds;
        const file = `seg-${String(index).padStart(5, '0')}.ts`;
        const final = path.join(dir, file);
        const tmp = tempNameFor(final);
        const args = segmentArgs(
          source,
          input.rendition,
          input.startSec + offset,
          Math.min(segmentSeconds, input.durationSec - offset),
          tmp,
        );
        try {
          // Heartbeat while queued behind the limiter too.
          await withKeepAlive(details, () =>
            deps.limiter.schedule(() =>
              runProcess(deps.binaries.ffmpeg, args, {
                signal,
                onProgress: (p) => {
                  outTimeSec = offset + p.outTimeSec;
                  heartbeat(details());
                },
              }),
            ),
          );
          await fsp.rename(tmp, final);
        } finally {
          await fsp.rm(tmp, { force: true });
        }
        const stat = await fsp.stat(final);
        segments.push({ index, file, bytes: stat.size, sha256: await sha256File(final) });
        outTimeSec = offset + Math.min(segmentSeconds, input.durationSec - offset);
        await writeFileAtomic(path.join(dir, 'progress.json'), JSON.stringify(details()));
        heartbeat(details());
      }
    } catch (err) {
      if (Context.current().cancellationSignal.aborted) {
        // A user cancel removes the chunk; a timeout keeps verified segments to resume from.
        if (cancelledByUser()) await fsp.rm(dir, { recursive: true, force: true });
        throw err;
      }
      if (deps.shutdownSignal?.aborted) {
        // Retryable at once: the next attempt (on another worker) resumes from these segments.
        throw ApplicationFailure.create({
          type: FailureType.WorkerShutdown,
          message: `worker shutting down: chunk ${input.chunkIndex} of ${input.rendition} stopped after ${segments.length}/${expected} segments`,
          details: [details()],
        });
      }
      const unwritable = outputFailure(err, dir);
      if (unwritable !== err) throw unwritable;
      if (err instanceof FfmpegError) {
        throw ApplicationFailure.create({ type: FailureType.TranscodeFailed, message: err.message, cause: err });
      }
      throw err;
    }
    const result: TranscodeChunkResult = {
      rendition: input.rendition,
      chunkIndex: input.chunkIndex,
      segments: segments.length,
      bytes: segments.reduce((sum, seg) => sum + seg.bytes, 0),
      resumedSegments,
    };
    await fsp.writeFile(path.join(dir, 'segments.json'), JSON.stringify(segments));
    await writeFileAtomic(doneFile, JSON.stringify(result));
    return result;
  }

  const audioFile = (pipelineId: string, rendition: string) =>
    path.join(pipelineDir(pipelineId), '.work', rendition, 'audio.m4a');

  /**
   * Encodes the whole audio track of a rendition once (AAC in M4A), in parallel with the video
   * chunks. Heartbeats ffmpeg's progress; an existing complete file is reused on retry.
   */
  async function encodeAudio(input: EncodeAudioInput): Promise<{ rendition: RenditionName; bytes: number }> {
    const spec = RENDITIONS[input.rendition];
    if (!spec) throw nonRetryable(FailureType.InvalidInput, `rendition: unknown rendition ${input.rendition}`);
    const final = audioFile(input.pipelineId, input.rendition);
    if (fs.existsSync(final)) return { rendition: input.rendition, bytes: fs.statSync(final).size };
    const source = await resolveSource(input.source);
    let outTimeSec = 0;
    await ffmpegToFile(final, (tmp) =>
      withKeepAlive(
        () => ({ outTimeSec }),
        () =>
          deps.limiter.schedule(() =>
            runProcess(
              deps.binaries.ffmpeg,
              [
                ...FFMPEG_WRITE_ARGS,
                '-i',
                source,
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
                tmp,
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
      ),
    );
    return { rendition: input.rendition, bytes: fs.statSync(final).size };
  }

  /** One JPEG thumbnail at `atSec`, 320 px wide. */
  async function extractThumbnail(input: ThumbnailInput): Promise<ThumbnailArtifact> {
    const final = path.join(pipelineDir(input.pipelineId), `thumb-${String(input.index + 1).padStart(2, '0')}.jpg`);
    const source = await resolveSource(input.source);
    await ffmpegToFile(final, (tmp) =>
      deps.limiter.schedule(() =>
        runProcess(
          deps.binaries.ffmpeg,
          [
            ...FFMPEG_WRITE_ARGS,
            '-ss',
            input.atSec.toFixed(3),
            '-i',
            source,
            '-frames:v',
            '1',
            '-vf',
            'scale=320:-2',
            '-q:v',
            '4',
            '-f',
            'image2',
            tmp,
          ],
          { signal: Context.current().cancellationSignal },
        ),
      ),
    );
    const stat = await fsp.stat(final);
    return { path: final, atSec: input.atSec, bytes: stat.size, sha256: await sha256File(final) };
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

  /** Joins a rendition's segments, in chunk order, into one MP4 by stream copy (no re-encode). */
  async function concatRendition(input: ConcatInput): Promise<RenditionArtifact> {
    if (input.hasAudio && !fs.existsSync(audioFile(input.pipelineId, input.rendition))) {
      throw ApplicationFailure.create({
        type: FailureType.TranscodeFailed,
        message: `audio of ${input.rendition} is not complete`,
      });
    }
    const files: string[] = [];
    for (let i = 0; i < input.chunkCount; i++) {
      const dir = chunkDir(input.pipelineId, input.rendition, i);
      if (!fs.existsSync(path.join(dir, 'done.json'))) {
        throw ApplicationFailure.create({
          type: FailureType.TranscodeFailed,
          message: `chunk ${i} of ${input.rendition} is not complete`,
        });
      }
      const segs = JSON.parse(await fsp.readFile(path.join(dir, 'segments.json'), 'utf8')) as SegmentRecord[];
      for (const s of segs) files.push(path.join(dir, s.file));
    }
    const workDir = path.join(pipelineDir(input.pipelineId), '.work', input.rendition);
    const list = path.join(workDir, 'concat.txt');
    await fsp.writeFile(list, files.map((f) => `file '${f.replace(/'/g, "'\\''")}'`).join('\n') + '\n');
    const final = path.join(pipelineDir(input.pipelineId), `${input.rendition}.mp4`);
    await ffmpegToFile(final, (tmp) =>
      withKeepAlive(
        () => ({ stage: 'concat' }),
        () =>
          runProcess(
            deps.binaries.ffmpeg,
            [
              ...FFMPEG_WRITE_ARGS,
              '-f',
              'concat',
              '-safe',
              '0',
              '-i',
              list,
              ...(input.hasAudio
                ? ['-i', audioFile(input.pipelineId, input.rendition), '-map', '0:v:0', '-map', '1:a:0']
                : []),
              '-c',
              'copy',
              '-movflags',
              '+faststart',
              '-f',
              'mp4',
              tmp,
            ],
            { signal: Context.current().cancellationSignal },
          ),
      ),
    );
    const [meta, stat, sha256] = await Promise.all([probeOutput(final), fsp.stat(final), sha256File(final)]);
    return { name: input.rendition, path: final, ...meta, bytes: stat.size, sha256 };
  }

  /** Writes `manifest.json` (atomically) and returns its path. */
  async function writeManifest(input: ManifestInput): Promise<string> {
    const final = path.join(pipelineDir(input.pipelineId), 'manifest.json');
    const manifest: Omit<VideoPipelineResult, 'manifestPath'> & { source: string; createdAt: string } = {
      workflowId: input.pipelineId,
      source: input.source,
      sourceDurationSec: input.sourceDurationSec,
      renditions: input.renditions,
      thumbnails: input.thumbnails,
      createdAt: new Date().toISOString(),
    };
    await writeFileAtomic(final, JSON.stringify(manifest, null, 2) + '\n');
    return final;
  }

  /** Removes the work directory; after a failure or cancel, the partial artifacts as well. */
  async function cleanupPipeline(input: CleanupInput): Promise<void> {
    const dir = pipelineDir(input.pipelineId);
    await fsp.rm(path.join(dir, '.work'), { recursive: true, force: true });
    if (input.removeArtifacts) await fsp.rm(dir, { recursive: true, force: true });
  }

  return { probeMedia, transcodeChunk, encodeAudio, extractThumbnail, concatRendition, writeManifest, cleanupPipeline };
}

export type MediaActivities = ReturnType<typeof createMediaActivities>;
