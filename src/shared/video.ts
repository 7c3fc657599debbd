/**
 * Video pipeline contract: input schema (checked at the edge and again inside the workflow),
 * result and progress types. Sandbox-safe: no Node built-ins.
 */
import { z } from 'zod';
import {
  DEFAULT_TENANT,
  DEFAULT_TIER,
  IDEMPOTENCY_KEY_PATTERN,
  RENDITION_NAMES,
  TENANT_PATTERN,
  TIERS,
  MAX_SOURCE_LENGTH,
  PACKAGINGS,
  SEGMENT_LIMITS,
  VIDEO_DEFAULTS,
  type Packaging,
  VIDEO_LIMITS,
  type RenditionName,
  type Tier,
} from './constants';
import type { AfterFinalStatus, Artifact } from './artifact';
import type { DroppedRendition } from './ladder';
import { PromoteAfterSecondsSchema } from './flow';
import type { DeadLetterStatus } from './fan-out';
import { WebhookTargetSchema, type WebhookOutcome } from './webhook';

// An enum (not a refined string) so the generated JSON Schema lists the names.
const renditionName = z.enum(RENDITION_NAMES as [RenditionName, ...RenditionName[]], {
  errorMap: () => ({ message: `unknown rendition; expected one of ${RENDITION_NAMES.join(', ')}` }),
});

/** Schema of {@link VideoPipelineInput}. `source` is only checked for shape here; the file checks need Node. */
export const VideoPipelineInputSchema = z
  .object({
    source: z
      .string()
      .min(1, 'must not be empty')
      .max(MAX_SOURCE_LENGTH, `must be at most ${MAX_SOURCE_LENGTH} characters`)
      .refine((v) => !v.includes('\0'), 'must not contain NUL'),
    /** Renditions to make. @default ['360p', '720p'] */
    renditions: z
      .array(renditionName)
      .min(1, 'at least one rendition')
      .max(RENDITION_NAMES.length)
      .refine((list) => new Set(list).size === list.length, 'renditions must not repeat')
      .default([...VIDEO_DEFAULTS.renditions]),
    /** Seconds of source per transcode chunk. @default 30 */
    chunkSeconds: z
      .number({ invalid_type_error: 'must be a number' })
      .finite()
      .min(VIDEO_LIMITS.minChunkSeconds, `must be at least ${VIDEO_LIMITS.minChunkSeconds}`)
      .max(VIDEO_LIMITS.maxChunkSeconds, `must be at most ${VIDEO_LIMITS.maxChunkSeconds}`)
      .default(VIDEO_LIMITS.defaultChunkSeconds),
    /**
     * How the renditions are delivered: `hls` (CMAF segments, master and media playlists, one
     * shared audio group), `dash` (the same segments under an MPD), `both` (the master playlist
     * and the MPD over one set of segments) or `mp4` (one progressive file per rendition).
     * @default 'hls'
     */
    package: z
      .enum(PACKAGINGS as [Packaging, ...Packaging[]], {
        errorMap: () => ({ message: `unknown packaging; expected one of ${PACKAGINGS.join(', ')}` }),
      })
      .default(VIDEO_DEFAULTS.package),
    /** Seconds per streaming segment (`hls`); every rendition has a keyframe on each boundary. @default 4 */
    segmentSeconds: z
      .number({ invalid_type_error: 'must be a number' })
      .int('must be a whole number')
      .min(SEGMENT_LIMITS.minSeconds, `must be at least ${SEGMENT_LIMITS.minSeconds}`)
      .max(SEGMENT_LIMITS.maxSeconds, `must be at most ${SEGMENT_LIMITS.maxSeconds}`)
      .default(SEGMENT_LIMITS.defaultSeconds),
    /**
     * Score each rendition's first segment against the source with ffmpeg's `libvmaf` (a streaming
     * package only; ignored for `mp4`). When the ffmpeg in use cannot, the result says why.
     */
    qualityCheck: z.boolean({ invalid_type_error: 'must be true or false' }).optional(),
    /** Thumbnails to extract. @default 3 */
    thumbnails: z
      .number({ invalid_type_error: 'must be a number' })
      .int('must be a whole number')
      .min(0, 'must not be negative')
      .max(VIDEO_LIMITS.maxThumbnails, `must be at most ${VIDEO_LIMITS.maxThumbnails}`)
      .default(VIDEO_LIMITS.defaultThumbnails),
    /** Priority tier; the run must be started on this tier's task queue. @default 'default' */
    tier: z.enum(TIERS as [Tier, ...Tier[]]).default(DEFAULT_TIER),
    /** Tenant: the second part of the workflow ID and the fairness key. @default 'default' */
    tenant: z
      .string()
      .regex(TENANT_PATTERN, 'must be 1-63 characters of a-z, 0-9, _ or -, starting with a letter or digit')
      .default(DEFAULT_TENANT),
    /** The third part of the workflow ID (`video:<tenant>:<idempotencyKey>`). */
    idempotencyKey: z.string().regex(IDEMPOTENCY_KEY_PATTERN, 'must be 1-128 characters of A-Z, a-z, 0-9, ., _ or -'),
    /** Sub-jobs in flight at once (activities, or child batches for large fan-outs). @default 16 */
    window: z.number().int().min(1).max(500).default(16),
    /** Priority key within the tier's queue, 1 (first) to 5. @default from the tier */
    priorityKey: z.number().int().min(1).max(5).optional(),
    /** Completion callback, POSTed once the renditions and manifest are written. */
    webhook: WebhookTargetSchema.optional(),
    /** Promotion ages by tier, used when the start carries no flow memo. @default { low: 1800 } */
    promoteAfterSeconds: PromoteAfterSecondsSchema.optional(),
  })
  .strict();

/** Input of `videoPipelineWorkflow`. */
export type VideoPipelineInput = z.input<typeof VideoPipelineInputSchema>;
export type ValidVideoPipelineInput = z.output<typeof VideoPipelineInputSchema>;

export interface RenditionArtifact extends Artifact {
  name: RenditionName;
  width: number;
  height: number;
  durationSec: number;
}

export interface ThumbnailArtifact extends Artifact {
  atSec: number;
}

/**
 * One rendition of a streaming package: its media playlist (the artifact itself), its init
 * segment, and what was measured from its encoded segments (the master playlist's attributes).
 * The segments themselves, each with its size and checksum, are listed in `manifest.json`.
 */
export interface StreamRenditionArtifact extends RenditionArtifact {
  /** Frames per second, measured from the encoded stream. */
  frameRate: number;
  /** RFC 6381 codecs of the video track, from its `avcC` (e.g. `avc1.64001f`). */
  codecs: string;
  /** Peak segment bitrate of the video, bits per second. */
  peakBitsPerSec: number;
  /** Average bitrate of the video over the whole rendition, bits per second. */
  averageBitsPerSec: number;
  init: Artifact;
  segments: number;
  /** Bytes of the init segment, the media segments and the playlist together. */
  totalBytes: number;
  /** `qualityCheck`: the VMAF of the first segment against the source, or why there is none. */
  quality?: QualityScore;
}

/** A rendition's `qualityCheck` outcome. */
export type QualityScore =
  { available: true; vmaf: number; segment: string; durationSec: number } | { available: false; reason: string };

/** What a run's `qualityCheck` came to: available, or the reason it is not. */
export interface QualityCheck {
  available: boolean;
  reason?: string;
}

/** The shared audio rendition of a streaming package. */
export interface StreamAudioArtifact extends Artifact {
  codecs: string;
  durationSec: number;
  peakBitsPerSec: number;
  averageBitsPerSec: number;
  init: Artifact;
  segments: number;
  totalBytes: number;
}

/** A streaming packaging: every one but `mp4`. */
export type StreamPackaging = Exclude<Packaging, 'mp4'>;

/** What a streaming package (`hls`, `dash`, `both`) adds to a result. */
export interface StreamPackage {
  package: StreamPackaging;
  segmentSeconds: number;
  /**
   * What a player loads: the HLS master playlist (`hls`, `both`), or the DASH MPD (`dash`).
   * Every package keeps the per-rendition media playlists under `hls/`.
   */
  master: Artifact;
  /** The DASH MPD (`manifest.mpd`) over the same CMAF segments (`dash`, `both`). */
  mpd?: Artifact;
  /** One entry per rendition kept, lowest first. */
  renditions: StreamRenditionArtifact[];
  /** The shared audio group, when the source has audio. */
  audio?: StreamAudioArtifact;
  /** Requested renditions left out (never upscale), with the reason. */
  dropped: DroppedRendition[];
  /** Scrubbing previews: a sprite sheet and the WebVTT file that maps time ranges to its tiles. */
  sprite?: SpriteArtifacts;
  /** Asked with `qualityCheck`: whether the scores could be made (each rendition has its `quality`). */
  qualityCheck?: QualityCheck;
}

/** `sprite.jpg` (a grid of thumbnails) and `sprite.vtt` (cues `sprite.jpg#xywh=x,y,w,h`). */
export interface SpriteArtifacts {
  image: Artifact;
  vtt: Artifact;
  intervalSeconds: number;
  tiles: number;
  tileWidth: number;
  tileHeight: number;
}

/** Result of `videoPipelineWorkflow`. */
export interface VideoPipelineResult {
  workflowId: string;
  /** Run whose outputs these are: artifacts live under `<workflowId>/<runId>/` in the store. */
  runId: string;
  /** `manifest.json`: the renditions and thumbnails, without presigned URLs. */
  manifest: Artifact;
  /** URI of the source as the workers read it. */
  source: string;
  sourceBytes: number;
  /**
   * Bytes of the source the chunk encoders fetched from the store, summed over every chunk
   * (ranged reads); undefined when the source is a local file.
   */
  sourceBytesRead?: number;
  sourceDurationSec: number;
  /** `mp4`: one progressive file per rendition. `hls`: each rendition's media playlist (detailed in `stream`). */
  renditions: RenditionArtifact[];
  thumbnails: ThumbnailArtifact[];
  /** The streaming package (`hls`); absent for `mp4`. */
  stream?: StreamPackage;
  /**
   * What a player loads (a streaming package): the master playlist, or the MPD for `dash`. A
   * presigned URL on `s3` (signed playlists: see the README), else its URI.
   */
  playbackUrl?: string;
  /** The completion webhook, when one was given. */
  webhook?: WebhookOutcome;
  /** Set when a dead letter of this run could not be written (the record is lost). */
  deadLetter?: DeadLetterStatus;
  /**
   * Set when a step after the artifacts were final failed (removing `.work/`): the run still
   * completes, and its artifacts are in place.
   */
  afterFinal?: AfterFinalStatus;
}

/** What the `progress` query returns. */
export interface PipelineProgress {
  stage: string;
  done: number;
  total: number;
  failed: number;
  /**
   * A streaming video package, once it plays (the master playlist and every rendition's first
   * segments are in the store): what a player loads. A presigned URL on `s3`, else the master
   * playlist's URI.
   */
  playbackUrl?: string;
}

/** One problem with an input, named by its field path. */
export interface InputIssue {
  path: string;
  message: string;
}

/** Issues of a zod error as `path: message` pairs. */
export function zodIssues(error: z.ZodError): InputIssue[] {
  return error.issues.map((i) => ({ path: i.path.length ? i.path.join('.') : '(input)', message: i.message }));
}
