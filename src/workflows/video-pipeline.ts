/**
 * Video pipeline: probe → plan chunks → fan out transcodes (chunk × rendition) and thumbnails
 * → fan in. `mp4`: concatenate each rendition by stream copy → manifest. `hls` (behind the
 * {@link STREAM_PACKAGING_PATCH} patch, so recorded runs replay on the `mp4` path): a ladder
 * planned from the source, segments of `segmentSeconds` with aligned keyframes, one shared audio
 * group, each rendition packaged into CMAF segments → master playlist and manifest.
 */
import { ApplicationFailure, patched, proxyActivities } from '@temporalio/workflow';
import { FailureType, Packaging, PipelineKind } from '../shared/constants';
import { planLadder } from '../shared/ladder';
import type { SubJob } from '../shared/fan-out';
import {
  VideoPipelineInputSchema,
  type SpriteArtifacts,
  type StreamAudioArtifact,
  type QualityCheck,
  type QualityScore,
  type StreamPackaging,
  type ThumbnailArtifact,
  type ValidVideoPipelineInput,
  type VideoPipelineInput,
  type VideoPipelineResult,
} from '../shared/video';
import type {
  EncodeAudioInput,
  MediaActivities,
  ProbeResult,
  TranscodeChunkInput,
  TranscodeChunkResult,
} from '../activities/media';
import type { PackageAudioInput, PackagingActivities, SpriteInput } from '../activities/media/package';
import { activityOptionsFor, runSubJobs, type ActivityName } from './fan-out';
import { trackProgress } from './progress';
import { withRunPriority } from './flow-control';
import { KEEP_FINAL_ARTIFACTS_PATCH } from './final-cleanup';
import { runOutput, runPipeline, startPipeline, type Finished } from './pipeline';

/** The pipeline's own activities, with the run's priority once it owns it (see ./contract.ts). */
function mediaActivities() {
  return {
    probe: proxyActivities<Pick<MediaActivities, 'probeMedia'>>(
      withRunPriority({ ...activityOptionsFor('probeMedia'), summary: 'probe source' }),
    ),
    finish: proxyActivities<Pick<MediaActivities, 'concatRendition' | 'writeManifest'>>(
      withRunPriority(activityOptionsFor('concatRendition')),
    ),
    cleanup: proxyActivities<Pick<MediaActivities, 'cleanupPipeline'>>(
      withRunPriority({ ...activityOptionsFor('cleanupPipeline'), summary: 'clean up' }),
    ),
  };
}

/** Patch of the streaming path: a run recorded before it replays on the `mp4` path. */
export const STREAM_PACKAGING_PATCH = 'stream-packaging';

/** A run's `qualityCheck`: available when every rendition was scored, else the first reason it was not. */
export function summarizeQuality(renditions: { quality?: QualityScore }[]): QualityCheck {
  if (renditions.length === 0) return { available: false, reason: 'the source has no video to score' };
  for (const r of renditions) {
    if (!r.quality) return { available: false, reason: 'a rendition was packaged without a score' };
    if (!r.quality.available) return { available: false, reason: r.quality.reason };
  }
  return { available: true };
}

/** Chunk length of a streaming package: a whole number of segments, so chunks never split one. */
export function streamChunkSeconds(chunkSeconds: number, segmentSeconds: number): number {
  return Math.max(segmentSeconds, Math.floor(chunkSeconds / segmentSeconds) * segmentSeconds);
}

/** Chunk boundaries: `[start, duration]` pairs covering `durationSec`. */
export function planChunks(durationSec: number, chunkSeconds: number): { startSec: number; durationSec: number }[] {
  const chunks: { startSec: number; durationSec: number }[] = [];
  // A final sliver shorter than a quarter second is folded into the chunk before it.
  for (let start = 0; start < durationSec - 0.25 || chunks.length === 0; start += chunkSeconds) {
    const remaining = durationSec - start;
    const dur = remaining - chunkSeconds < 0.25 ? remaining : chunkSeconds;
    chunks.push({ startSec: start, durationSec: dur });
    if (dur === remaining) break;
  }
  return chunks;
}

/** Evenly spaced thumbnail times, away from the very start and end. */
export function planThumbnails(durationSec: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => Math.round(((durationSec * (i + 1)) / (count + 1)) * 1000) / 1000);
}

interface RunContext {
  pipelineId: string;
  runId: string;
  output: string;
  progress: ReturnType<typeof trackProgress>['progress'];
  setStage: ReturnType<typeof trackProgress>['setStage'];
}

/**
 * The streaming path (`hls`): the ladder from the source (never upscaled), segments with
 * keyframes on every boundary in every rendition, the audio encoded once for all of them, then
 * each rendition packaged into CMAF segments, and the master playlist with what was measured.
 */
async function streamPipeline(
  input: ValidVideoPipelineInput,
  media: ProbeResult,
  { pipelineId, runId, output, progress, setStage }: RunContext,
): Promise<VideoPipelineResult> {
  const pack = proxyActivities<Pick<PackagingActivities, 'packageRendition' | 'writeStreamPlaylists'>>(
    withRunPriority(activityOptionsFor('packageRendition')),
  );
  // An audio-only source (the probe says so only when asked: a streaming package) gets an
  // audio-only stream: no video rendition, no sprite, no thumbnails. Only reachable by inputs whose
  // probe failed before, so no recorded history takes this branch.
  const audioOnly = media.hasVideo === false;
  const ladder = audioOnly
    ? {
        renditions: [],
        dropped: input.renditions.map((name) => ({ name, reason: 'the source has no video stream (audio only)' })),
      }
    : planLadder(input.renditions, media.width, media.height);
  if (ladder.renditions.length === 0 && !audioOnly) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      nonRetryable: true,
      message: `renditions: none fits a ${media.width}x${media.height} source (never upscaled): ${ladder.dropped.map((d) => d.name).join(', ')}`,
    });
  }
  const segmentSeconds = input.segmentSeconds;
  const chunks = planChunks(media.durationSec, streamChunkSeconds(input.chunkSeconds, segmentSeconds));
  const times = audioOnly ? [] : planThumbnails(media.durationSec, input.thumbnails);

  const jobs: SubJob<ActivityName>[] = [];
  for (const rung of ladder.renditions) {
    chunks.forEach((c, chunkIndex) => {
      const job: TranscodeChunkInput = {
        output,
        source: media.uri,
        rendition: rung.name,
        chunkIndex,
        ...c,
        stream: { segmentSeconds, width: rung.width, height: rung.height },
      };
      jobs.push({
        activity: 'transcodeChunk',
        input: job,
        summary: `${rung.name} chunk ${chunkIndex + 1}/${chunks.length}`,
      });
    });
  }
  if (media.hasAudio) {
    const job: PackageAudioInput = { output, source: media.uri, durationSec: media.durationSec, segmentSeconds };
    jobs.push({ activity: 'packageAudio', input: job, summary: 'audio group' });
  }
  if (!audioOnly) {
    const sprite: SpriteInput = {
      output,
      source: media.uri,
      durationSec: media.durationSec,
      width: media.width,
      height: media.height,
    };
    jobs.push({ activity: 'extractSprite', input: sprite, summary: 'scrubbing previews' });
  }
  times.forEach((atSec, index) =>
    jobs.push({
      activity: 'extractThumbnail',
      input: { output, source: media.uri, index, atSec },
      summary: `thumbnail ${index + 1} @ ${atSec}s`,
    }),
  );
  progress.total = jobs.length + ladder.renditions.length + 1;
  setStage(
    'transcoding',
    `${chunks.length} chunks × ${ladder.renditions.length} renditions of ${segmentSeconds} s segments, audio, ${times.length} thumbnails`,
  );
  const fan = await runSubJobs<unknown>(jobs, {
    parentId: pipelineId,
    window: input.window,
    policy: { kind: 'fail-fast' },
    onSettled: (_, ok) => (ok ? progress.done++ : progress.failed++),
  });
  const thumbnails = fan.results.slice(jobs.length - times.length) as ThumbnailArtifact[];
  const audioAt = jobs.findIndex((j) => j.activity === 'packageAudio');
  const audio = audioAt >= 0 ? (fan.results[audioAt] as StreamAudioArtifact) : undefined;
  const spriteAt = jobs.findIndex((j) => j.activity === 'extractSprite');
  const previews = spriteAt >= 0 ? (fan.results[spriteAt] as SpriteArtifacts) : undefined;
  const reads = fan.results
    .filter((_, i) => jobs[i]?.activity === 'transcodeChunk')
    .map((r) => (r as TranscodeChunkResult).sourceBytesRead);
  const sourceBytesRead = reads.every((n) => n !== undefined) ? reads.reduce((a, n) => a + n, 0) : undefined;

  setStage('packaging', ladder.renditions.map((r) => r.name).join(', '));
  const renditions = await Promise.all(
    ladder.renditions.map(async (rung) => {
      const r = await pack.packageRendition({
        output,
        rendition: rung.name,
        chunkCount: chunks.length,
        segmentSeconds,
        // Asked for: in the activity's input only (no new command).
        ...(input.qualityCheck ? { qualityCheck: { source: media.uri } } : {}),
      });
      progress.done++;
      return r;
    }),
  );
  setStage('manifest', `master playlist, ${renditions.length} renditions, ${thumbnails.length} thumbnails`);
  // The packaging rides in the activity's input (no new command): `dash` and `both` add the MPD.
  const packaging = input.package as StreamPackaging;
  const qualityCheck = input.qualityCheck ? summarizeQuality(renditions) : undefined;
  const { master, mpd, manifest } = await pack.writeStreamPlaylists({
    output,
    workflowId: pipelineId,
    runId,
    source: media.uri,
    sourceDurationSec: media.durationSec,
    package: packaging,
    segmentSeconds,
    renditions,
    ...(audio ? { audio } : {}),
    thumbnails,
    dropped: ladder.dropped,
    ...(previews ? { sprite: previews } : {}),
    ...(qualityCheck ? { qualityCheck } : {}),
  });
  // `.work/` is removed by the caller once the artifacts are final (see KEEP_FINAL_ARTIFACTS_PATCH).
  progress.done++;
  return {
    workflowId: pipelineId,
    runId,
    manifest,
    source: media.uri,
    sourceBytes: media.bytes,
    ...(sourceBytesRead !== undefined ? { sourceBytesRead } : {}),
    sourceDurationSec: media.durationSec,
    renditions,
    thumbnails,
    stream: {
      package: packaging,
      segmentSeconds,
      master,
      ...(mpd ? { mpd } : {}),
      renditions,
      ...(audio ? { audio } : {}),
      dropped: ladder.dropped,
      ...(previews ? { sprite: previews } : {}),
      ...(qualityCheck ? { qualityCheck } : {}),
    },
  };
}

/**
 * Transcodes a source into renditions, with thumbnails and a manifest. Input errors fail once
 * with a non-retryable InvalidInput; a bad file fails once with InvalidMedia. Cancelling stops
 * every ffmpeg process and removes partial outputs.
 */
export async function videoPipelineWorkflow(rawInput: VideoPipelineInput): Promise<VideoPipelineResult> {
  return startPipeline(PipelineKind.video, VideoPipelineInputSchema, rawInput, (input) =>
    transcodeVideo(input, rawInput),
  );
}

async function transcodeVideo(
  input: ValidVideoPipelineInput,
  rawInput: VideoPipelineInput,
): Promise<VideoPipelineResult> {
  const { probe, finish, cleanup } = mediaActivities();
  const { pipelineId, runId, output } = runOutput();
  const stages = trackProgress('probing');
  const { progress, setStage } = stages;
  // Asked only for a streaming package: an `mp4` run records no marker and runs as before.
  const stream = input.package !== Packaging.mp4 && patched(STREAM_PACKAGING_PATCH);

  // Once the manifest is written the artifacts are final: removing `.work/` happens after the
  // work, and its failure never removes them (histories recorded before the patch replay the old way).
  const work = async (): Promise<Finished<VideoPipelineResult>> => {
    let result: VideoPipelineResult;
    let cleanupAfter = false;
    setStage('probing', input.source);
    // A streaming package takes an audio-only source (the probe input only; no new command).
    const media = await probe.probeMedia({ output, source: input.source, ...(stream ? { allowAudioOnly: true } : {}) });
    if (stream) {
      result = await streamPipeline(input, media, { pipelineId, runId, output, progress, setStage });
      // A new path: its runs all remove `.work/` after the try.
      cleanupAfter = true;
    } else {
      const chunks = planChunks(media.durationSec, input.chunkSeconds);
      const times = planThumbnails(media.durationSec, input.thumbnails);
      const renditions = input.renditions;

      const jobs: SubJob<ActivityName>[] = [];
      for (const rendition of renditions) {
        chunks.forEach((c, chunkIndex) => {
          const job: TranscodeChunkInput = { output, source: media.uri, rendition, chunkIndex, ...c };
          jobs.push({
            activity: 'transcodeChunk',
            input: job,
            summary: `${rendition} chunk ${chunkIndex + 1}/${chunks.length}`,
          });
        });
        if (media.hasAudio) {
          const job: EncodeAudioInput = { output, source: media.uri, rendition, durationSec: media.durationSec };
          jobs.push({ activity: 'encodeAudio', input: job, summary: `${rendition} audio` });
        }
      }
      times.forEach((atSec, index) =>
        jobs.push({
          activity: 'extractThumbnail',
          input: { output, source: media.uri, index, atSec },
          summary: `thumbnail ${index + 1} @ ${atSec}s`,
        }),
      );
      progress.total = jobs.length + renditions.length + 1;
      setStage(
        'transcoding',
        `${chunks.length} chunks × ${renditions.length} renditions, audio, ${times.length} thumbnails`,
      );
      const fan = await runSubJobs<unknown>(jobs, {
        parentId: pipelineId,
        window: input.window,
        policy: { kind: 'fail-fast' },
        onSettled: (_, ok) => (ok ? progress.done++ : progress.failed++),
      });
      const thumbnails = fan.results.slice(jobs.length - times.length) as ThumbnailArtifact[];
      // Ranged reads of the source by the chunk encoders (absent for a local file).
      const reads = fan.results
        .filter((_, i) => jobs[i]?.activity === 'transcodeChunk')
        .map((r) => (r as TranscodeChunkResult).sourceBytesRead);
      const sourceBytesRead = reads.every((n) => n !== undefined) ? reads.reduce((a, n) => a + n, 0) : undefined;

      setStage('concatenating', renditions.join(', '));
      const artifacts = await Promise.all(
        renditions.map(async (rendition) => {
          const a = await finish.concatRendition({
            output,
            rendition,
            chunkCount: chunks.length,
            hasAudio: media.hasAudio,
          });
          progress.done++;
          return a;
        }),
      );

      setStage('manifest', `${artifacts.length} renditions, ${thumbnails.length} thumbnails`);
      const manifest = await finish.writeManifest({
        output,
        workflowId: pipelineId,
        runId,
        source: media.uri,
        sourceDurationSec: media.durationSec,
        renditions: artifacts,
        thumbnails,
      });
      cleanupAfter = patched(KEEP_FINAL_ARTIFACTS_PATCH);
      if (!cleanupAfter) await cleanup.cleanupPipeline({ output, removeArtifacts: false });
      progress.done++;
      result = {
        workflowId: pipelineId,
        runId,
        manifest,
        source: media.uri,
        sourceBytes: media.bytes,
        ...(sourceBytesRead !== undefined ? { sourceBytesRead } : {}),
        sourceDurationSec: media.durationSec,
        renditions: artifacts,
        thumbnails,
      };
    }
    return { result, cleanupAfter };
  };
  // The one ending of every pipeline (./pipeline.ts): dead letter, cleanup, completion on the critical tier.
  return runPipeline(work, {
    stages,
    removeOutputs: (removeArtifacts) => cleanup.cleanupPipeline({ output, removeArtifacts }),
    rawInput,
    tenant: input.tenant,
    deadLetter: () => true,
    webhook: input.webhook,
    completion: (r) => ({
      kind: 'video',
      manifest: r.manifest.uri,
      renditions: r.renditions.map((a) => ({ name: a.name, uri: a.uri, sha256: a.sha256 })),
    }),
    done: (r) => r.manifest.uri,
  });
}
