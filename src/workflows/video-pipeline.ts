/**
 * Video pipeline: probe → plan chunks → fan out transcodes (chunk × rendition) and thumbnails
 * → fan in. `mp4`: concatenate each rendition by stream copy → manifest. `hls` (behind the
 * {@link STREAM_PACKAGING_PATCH} patch, so recorded runs replay on the `mp4` path): a ladder
 * planned from the source, segments of `segmentSeconds` with aligned keyframes, one shared audio
 * group, each rendition packaged into CMAF segments → master playlist and manifest.
 */
import { ApplicationFailure, condition, patched, proxyActivities } from '@temporalio/workflow';
import { FailureType, Packaging, PipelineKind, type RenditionName } from '../shared/constants';
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
import type {
  PackageAudioInput,
  PackagingActivities,
  PublishedMaster,
  SpriteInput,
  StreamVariant,
} from '../activities/media/package';
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

/**
 * Patch of publishing while the run goes (streaming packages): each rendition's chunks are
 * packaged and published in order as they complete, under an EVENT playlist, and the master
 * playlist goes out once every rendition has its first chunk and the audio group its first
 * segment, so a player starts long before the end. A run recorded before it replays with one
 * packaging step per rendition after the transcodes.
 */
export const LIVE_PLAYLISTS_PATCH = 'stream-live-playlists';

/**
 * Publishes a streaming package while its transcodes run: told of each chunk as it completes, it
 * publishes each rendition's chunks strictly in order, one at a time per rendition, and the master
 * playlist once every rendition's first chunk is out (publishMaster itself waits for the audio
 * group's first segment, which packageAudio publishes while it encodes). Runs in the workflow
 * sandbox; every activity it schedules follows from the order sub-jobs settle in, which the
 * history records.
 */
function livePublisher(opts: {
  output: string;
  renditions: RenditionName[];
  chunkCount: number;
  segmentSeconds: number;
  hasAudio: boolean;
  /** Publish the HLS master playlist early (`hls`, `both`); `dash` alone has its MPD at the end only. */
  withMaster: boolean;
  onPlayable: (published: PublishedMaster) => void;
}) {
  // The run's own priority, as every activity of a run has (a key ahead of the transcodes would
  // jump into the next tier's key). The lead is dispatched on its own (see streamPipeline), so
  // its publishing finds free activity slots.
  const live = proxyActivities<Pick<PackagingActivities, 'publishChunk' | 'publishMaster'>>(
    withRunPriority({ ...activityOptionsFor('publishChunk'), summary: 'publish' }),
  );
  const state = new Map(
    opts.renditions.map((r) => [
      r,
      { ready: new Set<number>(), next: 0, busy: false, first: undefined as StreamVariant | undefined },
    ]),
  );
  let master: 'waiting' | 'busy' | 'done' = opts.withMaster ? 'waiting' : 'done';
  let error: Error | undefined;
  const fail = (err: unknown) => {
    error ??= err instanceof Error ? err : new Error(String(err));
  };
  const publishMaster = () => {
    if (master !== 'waiting' || error !== undefined) return;
    const firsts = opts.renditions.map((r) => state.get(r)!.first);
    if (firsts.some((v) => v === undefined)) return;
    master = 'busy';
    live
      .publishMaster({ output: opts.output, renditions: firsts as StreamVariant[], audio: opts.hasAudio })
      .then((published) => {
        master = 'done';
        opts.onPlayable(published);
      }, fail);
  };
  const pump = (rendition: RenditionName) => {
    const s = state.get(rendition)!;
    if (s.busy || error !== undefined || !s.ready.has(s.next)) return;
    s.busy = true;
    const chunkIndex = s.next;
    live
      .publishChunk({ output: opts.output, rendition, chunkIndex, segmentSeconds: opts.segmentSeconds })
      .then((variant) => {
        s.first ??= variant;
        s.next = chunkIndex + 1;
        s.busy = false;
        publishMaster();
        pump(rendition);
      }, fail);
  };
  // An audio-only stream has no chunk to wait for: its master goes out with the audio's first segment.
  if (opts.renditions.length === 0) publishMaster();
  return {
    chunkDone(rendition: RenditionName, chunkIndex: number) {
      state.get(rendition)?.ready.add(chunkIndex);
      pump(rendition);
    },
    /** Every rendition's first chunk and the master playlist are out (the stream plays), or publishing failed. */
    leadPublished(): boolean {
      return error !== undefined || (master === 'done' && [...state.values()].every((s) => s.next >= 1));
    },
    /** What failed publishing, if anything did. */
    failed(): Error | undefined {
      return error;
    },
    /** Resolves when every chunk and the master playlist are published; throws what failed. */
    async drained(): Promise<void> {
      await condition(
        () =>
          error !== undefined || (master === 'done' && [...state.values()].every((s) => s.next === opts.chunkCount)),
      );
      if (error !== undefined) throw error;
    },
  };
}

/** Chunk length of a streaming package: a whole number of segments, so chunks never split one. */
export function streamChunkSeconds(chunkSeconds: number, segmentSeconds: number): number {
  return Math.max(segmentSeconds, Math.floor(chunkSeconds / segmentSeconds) * segmentSeconds);
}

/**
 * Chunks of a stream published while the run goes: a lead-in chunk of one segment, so that the
 * stream plays once one segment of each rendition is out, then chunks of `chunkSeconds` (a whole
 * number of segments: every chunk starts on a segment boundary).
 */
export function planLiveChunks(
  durationSec: number,
  chunkSeconds: number,
  segmentSeconds: number,
): { startSec: number; durationSec: number }[] {
  if (chunkSeconds <= segmentSeconds || durationSec - segmentSeconds < 0.25)
    return planChunks(durationSec, chunkSeconds);
  const rest = planChunks(durationSec - segmentSeconds, chunkSeconds);
  return [
    { startSec: 0, durationSec: segmentSeconds },
    ...rest.map((c) => ({ ...c, startSec: c.startSec + segmentSeconds })),
  ];
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
  setPlaybackUrl: ReturnType<typeof trackProgress>['setPlaybackUrl'];
}

/**
 * The streaming path (`hls`): the ladder from the source (never upscaled), segments with
 * keyframes on every boundary in every rendition, the audio encoded once for all of them, then
 * each rendition packaged into CMAF segments, and the master playlist with what was measured.
 */
async function streamPipeline(
  input: ValidVideoPipelineInput,
  media: ProbeResult,
  { pipelineId, runId, output, progress, setStage, setPlaybackUrl }: RunContext,
): Promise<VideoPipelineResult> {
  const pack = proxyActivities<
    Pick<PackagingActivities, 'packageRendition' | 'finishRendition' | 'writeStreamPlaylists'>
  >(withRunPriority(activityOptionsFor('packageRendition')));
  // Publishing while the run goes (see LIVE_PLAYLISTS_PATCH); asked before the run's first command here.
  const live = patched(LIVE_PLAYLISTS_PATCH);
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
  const chunkSeconds = streamChunkSeconds(input.chunkSeconds, segmentSeconds);
  const chunks = live
    ? planLiveChunks(media.durationSec, chunkSeconds, segmentSeconds)
    : planChunks(media.durationSec, chunkSeconds);
  const times = audioOnly ? [] : planThumbnails(media.durationSec, input.thumbnails);

  const jobs: SubJob<ActivityName>[] = [];
  const transcode = (rung: (typeof ladder.renditions)[number], chunkIndex: number) => {
    const job: TranscodeChunkInput = {
      output,
      source: media.uri,
      rendition: rung.name,
      chunkIndex,
      ...chunks[chunkIndex]!,
      stream: { segmentSeconds, width: rung.width, height: rung.height },
    };
    jobs.push({
      activity: 'transcodeChunk',
      input: job,
      summary: `${rung.name} chunk ${chunkIndex + 1}/${chunks.length}`,
    });
  };
  const audioJob = () => {
    const job: PackageAudioInput = { output, source: media.uri, durationSec: media.durationSec, segmentSeconds };
    jobs.push({ activity: 'packageAudio', input: job, summary: 'audio group' });
  };
  if (live) {
    // What plays first goes first: the audio group (fast), then the chunks in time order, every
    // rendition's chunk 0 before any chunk 1.
    if (media.hasAudio) audioJob();
    chunks.forEach((_, chunkIndex) => ladder.renditions.forEach((rung) => transcode(rung, chunkIndex)));
  } else {
    for (const rung of ladder.renditions) chunks.forEach((_, chunkIndex) => transcode(rung, chunkIndex));
    if (media.hasAudio) audioJob();
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
  let playbackUrl: string | undefined;
  const publisher = live
    ? livePublisher({
        output,
        renditions: ladder.renditions.map((r) => r.name),
        chunkCount: chunks.length,
        segmentSeconds,
        hasAudio: media.hasAudio,
        withMaster: input.package !== Packaging.dash,
        onPlayable: (published) => {
          playbackUrl = published.playbackUrl;
          setPlaybackUrl(published.playbackUrl);
        },
      })
    : undefined;
  const settled = (index: number, ok: boolean) => {
    if (ok) progress.done++;
    else progress.failed++;
    const job = jobs[index];
    if (!ok || !publisher || !job) return;
    if (job.activity === 'transcodeChunk') {
      const t = job.input as TranscodeChunkInput;
      publisher.chunkDone(t.rendition, t.chunkIndex);
    }
  };
  const fanOver = (list: SubJob<ActivityName>[], offset: number) =>
    runSubJobs<unknown>(list, {
      parentId: pipelineId,
      window: input.window,
      policy: { kind: 'fail-fast' },
      onSettled: (index, ok) => settled(offset + index, ok),
    });
  let fan: { results: unknown[] };
  if (publisher && chunks.length > 1 && ladder.renditions.length > 0) {
    // What plays first goes first, on its own: a task queue's partitions hand out tasks in no set
    // order, so the lead (the audio group and every rendition's lead-in chunk) would otherwise
    // wait behind later chunks for activity slots, and so would the publishing after it. The rest
    // is dispatched once the lead is published (the stream plays), or once something failed.
    const leadCount = (media.hasAudio ? 1 : 0) + ladder.renditions.length;
    const lead = fanOver(jobs.slice(0, leadCount), 0);
    const rest = (async () => {
      await condition(() => publisher.leadPublished());
      const failed = publisher.failed();
      if (failed) throw failed;
      return fanOver(jobs.slice(leadCount), leadCount);
    })();
    const [a, b] = await Promise.all([lead, rest]);
    fan = { results: [...a.results, ...b.results] };
  } else {
    fan = await fanOver(jobs, 0);
  }
  await publisher?.drained();
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
      const renditionInput = {
        output,
        rendition: rung.name,
        chunkCount: chunks.length,
        segmentSeconds,
        // Asked for: in the activity's input only (no new command).
        ...(input.qualityCheck ? { qualityCheck: { source: media.uri } } : {}),
      };
      // Published chunk by chunk already: only closing its playlist is left.
      const r = live ? await pack.finishRendition(renditionInput) : await pack.packageRendition(renditionInput);
      progress.done++;
      return r;
    }),
  );
  setStage('manifest', `master playlist, ${renditions.length} renditions, ${thumbnails.length} thumbnails`);
  // The packaging rides in the activity's input (no new command): `dash` and `both` add the MPD.
  const packaging = input.package as StreamPackaging;
  const qualityCheck = input.qualityCheck ? summarizeQuality(renditions) : undefined;
  const {
    master,
    mpd,
    manifest,
    playbackUrl: finalPlaybackUrl,
  } = await pack.writeStreamPlaylists({
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
  if (live) {
    // From here on the whole stream (or the MPD, for `dash`) is what plays.
    playbackUrl = finalPlaybackUrl ?? master.url ?? master.uri;
    setPlaybackUrl(playbackUrl);
  }
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
    ...(playbackUrl ? { playbackUrl } : {}),
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
  const { progress, setStage, setPlaybackUrl } = stages;
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
      result = await streamPipeline(input, media, { pipelineId, runId, output, progress, setStage, setPlaybackUrl });
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
