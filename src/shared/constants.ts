/**
 * The one constants module. Code, tests and `deploy/` all derive tier, queue and attribute
 * names from here (a test keeps `deploy/` equal to it). Safe to import from workflow code:
 * no Node built-ins, no I/O.
 */

/** Priority tiers, highest first. */
export const Tier = {
  critical: 'critical',
  high: 'high',
  default: 'default',
  low: 'low',
} as const;
export type Tier = (typeof Tier)[keyof typeof Tier];

/** Tiers in dispatch order (most urgent first). */
export const TIERS: readonly Tier[] = [Tier.critical, Tier.high, Tier.default, Tier.low];

/** Task-queue prefix; the queue for a tier is `sluice-<tier>`. */
export const TASK_QUEUE_PREFIX = 'sluice';

/** Task queue name per tier. */
export const TASK_QUEUES: Readonly<Record<Tier, string>> = {
  critical: `${TASK_QUEUE_PREFIX}-critical`,
  high: `${TASK_QUEUE_PREFIX}-high`,
  default: `${TASK_QUEUE_PREFIX}-default`,
  low: `${TASK_QUEUE_PREFIX}-low`,
};

/** Schedule-to-start SLA per tier, in seconds (see DESIGN.md, "Tiers"). */
export const TIER_SLA_SECONDS: Readonly<Record<Tier, number>> = {
  critical: 30,
  high: 120,
  default: 900,
  low: 3600,
};

/**
 * Task queue for a tier, with an optional suffix. Tests pass a suffix so that each test file
 * polls its own queues on the shared dev server.
 */
export function taskQueueFor(tier: Tier, suffix = ''): string {
  return suffix ? `${TASK_QUEUES[tier]}-${suffix}` : TASK_QUEUES[tier];
}

/** Worker Deployment name prefix: a tier's workers form the deployment `sluice-<tier>`. */
export const DEPLOYMENT_PREFIX = 'sluice';

/**
 * Worker Deployment of a tier (`sluice-<tier>`, plus the task-queue suffix when set, so tests and
 * deployments sharing a namespace stay apart). Never contains `.`, the server's version separator.
 */
export function deploymentNameFor(tier: Tier, suffix = ''): string {
  return suffix ? `${DEPLOYMENT_PREFIX}-${tier}-${suffix}` : `${DEPLOYMENT_PREFIX}-${tier}`;
}

/**
 * A build ID Sluice accepts: a Kubernetes label value (it names each version's Deployment and
 * ScaledObject), which the server also accepts (no `.`-only names, at most 255 characters).
 */
export const BUILD_ID_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
/** Prefix of a build ID derived from the workflow bundle's hash (SLUICE_BUILD_ID unset). */
export const BUNDLE_BUILD_ID_PREFIX = 'bundle-';

export function isTier(value: unknown): value is Tier {
  return typeof value === 'string' && (TIERS as readonly string[]).includes(value);
}

/** Activity type of the pack runner: several tiny sub-jobs in one activity task (src/activities/pack). */
export const PACKED_ACTIVITY = 'runPacked';

/** Most sub-jobs in one pack: keeps a pack's heartbeat checkpoint and result small. */
export const MAX_PACK = 100;

/** Pipeline kinds; also the first part of every workflow ID. */
export const PipelineKind = {
  video: 'video',
  report: 'report',
  /** Generic sub-job pipelines (`jobsPipelineWorkflow`): webhooks, benchmarks, DLQ replays of sub-jobs. */
  jobs: 'jobs',
} as const;
export type PipelineKind = (typeof PipelineKind)[keyof typeof PipelineKind];

/** Custom search attributes, registered on the embedded dev server at start. */
export const SearchAttribute = {
  PipelineKind: 'PipelineKind',
  Tier: 'Tier',
  Tenant: 'Tenant',
  Stage: 'Stage',
  Partial: 'Partial',
} as const;
export type SearchAttribute = (typeof SearchAttribute)[keyof typeof SearchAttribute];

/** Search attribute types, in the dev server's `--search-attribute KEY=TYPE` spelling. */
export const SEARCH_ATTRIBUTE_TYPES: Readonly<Record<SearchAttribute, 'Keyword' | 'Bool'>> = {
  PipelineKind: 'Keyword',
  Tier: 'Keyword',
  Tenant: 'Keyword',
  Stage: 'Keyword',
  Partial: 'Bool',
};

/**
 * Failure `type` strings. Activities throw `ApplicationFailure`s with these types; the ones in
 * {@link NON_RETRYABLE_FAILURE_TYPES} are never retried by any activity retry policy.
 */
export const FailureType = {
  InvalidInput: 'InvalidInput',
  InvalidMedia: 'InvalidMedia',
  NotFound: 'NotFound',
  Forbidden: 'Forbidden',
  OutputUnwritable: 'OutputUnwritable',
  RateLimited: 'RateLimited',
  DownstreamUnavailable: 'DownstreamUnavailable',
  TranscodeFailed: 'TranscodeFailed',
  /** The worker is draining; the attempt stopped at a safe point and resumes on another worker. */
  WorkerShutdown: 'WorkerShutdown',
  SubJobsFailed: 'SubJobsFailed',
  /** 401 from a downstream: credentials are wrong; retrying cannot help. */
  Unauthorized: 'Unauthorized',
  /** Any other 4xx from a downstream (the request itself is wrong). */
  DownstreamRejected: 'DownstreamRejected',
  /** A downstream answered 5xx (other than 503) or the connection failed: worth a retry. */
  DownstreamError: 'DownstreamError',
  /**
   * A downstream's answer was not usable HTTP: a status outside 200-599, a 1xx or protocol
   * upgrade as the final answer, or a garbled response. Retried: the receiver may be fixed.
   */
  BadResponse: 'BadResponse',
  /** An object (or its bucket) in the store does not exist: a missing source, or outputs already removed. */
  ObjectNotFound: 'ObjectNotFound',
  /** The object store is unreachable or answered 5xx / SlowDown: retried with backoff. */
  StorageUnavailable: 'StorageUnavailable',
  /** An attempt ran out of time (for example an HTTP request timeout): worth a retry. */
  Timeout: 'Timeout',
  /** The per-activity retry budget from config is spent: the last failure is attached as the cause. */
  RetriesExhausted: 'RetriesExhausted',
  /** A data file is corrupt or not what it claims (a Parquet partition DuckDB cannot read): a retry reads the same bytes. */
  InvalidData: 'InvalidData',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Failure types that no retry can fix: listed once, used by every retry policy. */
export const NON_RETRYABLE_FAILURE_TYPES: readonly FailureType[] = [
  FailureType.InvalidInput,
  FailureType.InvalidMedia,
  FailureType.NotFound,
  FailureType.ObjectNotFound,
  FailureType.Forbidden,
  FailureType.OutputUnwritable,
  FailureType.Unauthorized,
  FailureType.DownstreamRejected,
  FailureType.RetriesExhausted,
  FailureType.InvalidData,
];

/** True when no retry can fix a failure of this `type`. */
export function isNonRetryableFailureType(type: string | null | undefined): boolean {
  return type != null && (NON_RETRYABLE_FAILURE_TYPES as readonly string[]).includes(type);
}

/**
 * The ladder: video renditions by name. `height` is the rendition's short side (the height of a
 * landscape source, the width of a portrait one); `videoKbps` is the bitrate cap of the capped
 * CRF encode (x264 `-maxrate`) and `bufsizeKbits` its rate-control buffer (`-bufsize`);
 * `audioKbps` is the audio bitrate of the rendition's own track in `mp4` packaging. A streaming
 * package (`hls`) drops a rendition whose short side exceeds the source's: it never upscales.
 */
export const RENDITIONS = {
  '240p': { height: 240, videoKbps: 400, bufsizeKbits: 800, audioKbps: 64 },
  '360p': { height: 360, videoKbps: 800, bufsizeKbits: 1600, audioKbps: 96 },
  '480p': { height: 480, videoKbps: 1400, bufsizeKbits: 2800, audioKbps: 128 },
  '720p': { height: 720, videoKbps: 2800, bufsizeKbits: 5600, audioKbps: 128 },
  '1080p': { height: 1080, videoKbps: 5000, bufsizeKbits: 10000, audioKbps: 160 },
} as const;
export type RenditionName = keyof typeof RENDITIONS;
export const RENDITION_NAMES = Object.keys(RENDITIONS) as RenditionName[];

/**
 * V8 flags a worker process runs with: the Kubernetes manifests, the local autoscaler and the
 * benchmarks add them to NODE_OPTIONS (flags already there win). A small young generation and a
 * 256 MB old-generation cap per isolate (the main thread and the workflow thread) keep V8 from
 * growing heaps it does not need, so a busy worker stays under 300 MB RSS (bench:fanout); DuckDB
 * and ffmpeg memory is native and outside these caps.
 */
export const WORKER_V8_FLAGS: Readonly<Record<string, string>> = {
  '--max-semi-space-size': '1',
  '--max-old-space-size': '256',
};

/** glibc malloc arenas of a worker process (MALLOC_ARENA_MAX), set where {@link WORKER_V8_FLAGS} are. */
export const WORKER_MALLOC_ARENA_MAX = '2';

/** Limits on video input, checked at the edge and again in the workflow. */
export const VIDEO_LIMITS = {
  /** @default 30 — seconds of source per transcode chunk. */
  defaultChunkSeconds: 30,
  minChunkSeconds: 1,
  maxChunkSeconds: 3600,
  /** @default 3 */
  defaultThumbnails: 3,
  maxThumbnails: 100,
  /** Sub-job count above which the fan-out goes through batched child workflows. */
  childBatchThreshold: 500,
  /** Sub-jobs per child workflow batch. */
  childBatchSize: 250,
  /**
   * Batch children running at once; the run's window is split between them. A running child holds
   * the state of all its sub-jobs in the worker's workflow cache until it ends, so running every
   * batch at once makes the worker's memory grow with the whole fan-out instead of with a batch.
   */
  childBatchParallelism: 2,
} as const;

/** Longest accepted input path (Linux PATH_MAX); keeps payloads far below Temporal's 2 MiB blob limit. */
export const MAX_SOURCE_LENGTH = 4096;

/** Tenant names: safe as path parts, IDs and label values. */
export const TENANT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Idempotency keys: safe as workflow-ID parts and path parts. */
export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Workflow type of each pipeline kind (the HTTP API refuses IDs whose run is of another type). */
export const PIPELINE_WORKFLOW_TYPE: Readonly<Record<PipelineKind, string>> = {
  video: 'videoPipelineWorkflow',
  report: 'reportPipelineWorkflow',
  jobs: 'jobsPipelineWorkflow',
};

/** Parses `<kind>:<tenant>:<idempotency key>`; undefined when `id` is not a pipeline's workflow ID. */
export function parsePipelineWorkflowId(id: string): { kind: PipelineKind; tenant: string; key: string } | undefined {
  const m = /^([a-z]+):([^:]+):([^:]+)$/.exec(id);
  if (!m) return undefined;
  const [, kind, tenant, key] = m as unknown as [string, string, string, string];
  if (!Object.hasOwn(PIPELINE_WORKFLOW_TYPE, kind)) return undefined;
  if (!TENANT_PATTERN.test(tenant) || !IDEMPOTENCY_KEY_PATTERN.test(key)) return undefined;
  return { kind: kind as PipelineKind, tenant, key };
}

/** Memo key of the request fingerprint the HTTP API starts a run with (same key, other body → 422). */
export const REQUEST_MEMO_KEY = 'sluiceRequest';

/** Longest completion-webhook URL a pipeline accepts. */
export const MAX_WEBHOOK_URL_LENGTH = 2048;
/** Workflow ID of a pipeline: `<kind>:<tenant>:<idempotency key>`. */
export function pipelineWorkflowId(kind: PipelineKind, tenant: string, key: string): string {
  return `${kind}:${tenant}:${key}`;
}

/** Priority keys: 1 runs first, 5 last; Temporal's default is 3. */
export const PRIORITY_KEY_BY_TIER: Readonly<Record<Tier, number>> = {
  critical: 1,
  high: 2,
  default: 3,
  low: 4,
};

/** Tier one step more urgent (`low` → `default` → `high` → `critical`); undefined for `critical`. */
export function nextTierUp(tier: Tier): Tier | undefined {
  const i = TIERS.indexOf(tier);
  return i > 0 ? TIERS[i - 1] : undefined;
}

/** The tier and suffix of a task-queue name built by {@link taskQueueFor}; undefined for foreign queues. */
export function parseTaskQueue(taskQueue: string): { tier: Tier; suffix: string } | undefined {
  for (const tier of TIERS) {
    const base = TASK_QUEUES[tier];
    if (taskQueue === base) return { tier, suffix: '' };
    if (taskQueue.startsWith(`${base}-`)) return { tier, suffix: taskQueue.slice(base.length + 1) };
  }
  return undefined;
}

/**
 * Default weights of the activity slots a process shares between the tiers it serves
 * (critical 6 : high 3 : default 2 : low 1). Configurable with SLUICE_SLOT_WEIGHTS.
 */
export const DEFAULT_SLOT_WEIGHTS: Readonly<Record<Tier, number>> = {
  critical: 6,
  high: 3,
  default: 2,
  low: 1,
};

/**
 * Memo key under which the client hands flow-control settings to a pipeline workflow
 * ({@link FlowMemo}); workflows cannot read config, the memo travels with the run.
 */
export const FLOW_MEMO_KEY = 'sluiceFlow';

/** Flow-control settings of one pipeline run, set by the client at start. */
export interface FlowMemo {
  /**
   * Seconds a sub-job may wait on a tier's queue before it is dispatched again on the next tier
   * up, by tier. Only tiers listed here promote. @default { low: 1800 }
   */
  promoteAfterSeconds?: Partial<Record<Tier, number>>;
  /**
   * The tenant's gate ({@link tenantGateWorkflowId}) when its limits file sets caps: `running`
   * makes the run wait for one of the tenant's `maxRunning` places, `inFlight` makes each sub-job
   * wait for one of its `maxInFlight` permits. @default unset: no caps
   */
  gate?: TenantGateMemo;
}

/** Which of a tenant's caps a run obeys, and where its gate is. */
export interface TenantGateMemo {
  workflowId: string;
  running: boolean;
  inFlight: boolean;
}

/** A tenant's hard caps (0 = none). */
export interface TenantCaps {
  /** Pipelines running at once; the rest wait in order (Stage="queued"). */
  maxRunning: number;
  /** Sub-jobs (activity tasks of a fan-out) in flight at once, across every worker. */
  maxInFlight: number;
}

/** Tier whose queue runs the tenant gates (`sluice-critical`): served wherever pipelines are. */
export const TENANT_GATE_TIER: Tier = Tier.critical;

/** Workflow ID of a tenant's gate; the queue suffix keeps deployments sharing a namespace apart. */
export function tenantGateWorkflowId(tenant: string, suffix = ''): string {
  return `sluice-tenant-gate:${tenant}${suffix ? `:${suffix}` : ''}`;
}

/** Retry-After of a start refused because the tenant is full, before the gate has seen a run finish. @default 30 */
export const TENANT_FULL_RETRY_AFTER_SECONDS = 30;

/** Tier of a pipeline whose input names none. */
export const DEFAULT_TIER: Tier = Tier.default;

/** Tenant of a pipeline whose input names none. */
export const DEFAULT_TENANT = 'default';

/** How a video pipeline delivers its renditions. */
export const Packaging = {
  /** HLS over CMAF (fragmented MP4) segments: a master playlist, one media playlist per rendition, one shared audio group. */
  hls: 'hls',
  /** DASH over the same CMAF segments: an MPD (`manifest.mpd`) in place of the master playlist. */
  dash: 'dash',
  /** Both the HLS master playlist and the DASH MPD, over one set of CMAF segments. */
  both: 'both',
  /** Today's progressive files: one MP4 per rendition (audio muxed in) and `manifest.json`. */
  mp4: 'mp4',
} as const;
export type Packaging = (typeof Packaging)[keyof typeof Packaging];
export const PACKAGINGS: readonly Packaging[] = [Packaging.hls, Packaging.dash, Packaging.both, Packaging.mp4];

/** Streaming segments (`hls`): their length, checked at the edge and again in the workflow. */
export const SEGMENT_LIMITS = {
  /** @default 4 — seconds per segment; every rendition has a keyframe exactly on each boundary. */
  defaultSeconds: 4,
  minSeconds: 1,
  maxSeconds: 10,
} as const;

/** The one AAC audio rendition that every video rendition of a streaming package shares. */
export const STREAM_AUDIO = { kbps: 128, channels: 2, sampleRate: 48000, codecs: 'mp4a.40.2' } as const;

/** Scrubbing previews of a streaming package: one sprite sheet of thumbnails and a WebVTT map of it. */
export const SPRITE = {
  /** @default 5 — seconds between two thumbnails (each covers that much of the timeline). */
  intervalSeconds: 5,
  /** Width of one thumbnail in px; its height keeps the source's aspect ratio (even). */
  tileWidth: 160,
  /** Thumbnails per row of the sheet. */
  columns: 10,
} as const;

/** Defaults of the video input that are not limits. */
export const VIDEO_DEFAULTS = {
  /** @default ['360p', '720p'] */
  renditions: ['360p', '720p'] as readonly RenditionName[],
  /** @default 'hls' */
  package: Packaging.hls as Packaging,
} as const;

/**
 * Promotion ages a pipeline uses when its start carries no flow memo and its input none: the
 * same as SLUICE_PROMOTION_AGE_SECONDS' default, so a run started by any client promotes alike.
 */
export const DEFAULT_PROMOTE_AFTER_SECONDS: Readonly<Partial<Record<Tier, number>>> = { low: 1800 };

/** Crash points both video packages reach: the probe and every chunk's encode. */
const VIDEO_CHUNK_POINTS = [
  'probeMedia:start',
  'probeMedia:end',
  'transcodeChunk:start',
  'transcodeChunk:put .work/{rendition}/chunk-#/owner.json',
  'transcodeChunk:putFile .work/{rendition}/chunk-#/seg-#.ts',
  'transcodeChunk:put .work/{rendition}/chunk-#/progress.json',
  'transcodeChunk:put .work/{rendition}/chunk-#/segments.json',
  'transcodeChunk:put .work/{rendition}/chunk-#/done.json',
  'transcodeChunk:end',
] as const;
/** …each poster thumbnail. */
const THUMBNAIL_POINTS = [
  'extractThumbnail:start',
  'extractThumbnail:putFile thumb-#.jpg (before rename)',
  'extractThumbnail:putFile thumb-#.jpg',
  'extractThumbnail:end',
] as const;
/** …and removing `.work/` at the end. */
const VIDEO_CLEANUP_POINTS = [
  'cleanupPipeline:start',
  'cleanupPipeline:deletePrefix .work',
  'cleanupPipeline:end',
] as const;

/**
 * Crash points of the test-only crash hooks (SLUICE_TEST_CRASH_HOOKS=1 with SLUICE_CRASH_AT; see
 * src/crash-point.ts): every place where `test/faults/crash-points.test.ts` SIGKILLs a worker, by
 * pipeline, in the order a run reaches them. A worker with hooks on reaches `<activity>:start` as
 * an activity begins, `<activity>:end` once it returned (before Temporal hears of it), and
 * `<activity>:<op> <key>` right after each write or delete in the artifacts store (the run's
 * prefix dropped, rendition names as `{rendition}`, runs of two or more digits as `#`). An
 * artifact's write (not under `.work/`) on the `file` backend also reaches `… (before rename)`:
 * its temp file written, not yet renamed into place. The test fails when a clean run reaches a
 * point that is not listed here (a new activity or a new write) or misses one that is, so no
 * write point is forgotten silently.
 */
export const CRASH_POINTS = {
  /** The video pipeline with `--package mp4`: progressive files joined by stream copy. */
  video: [
    ...VIDEO_CHUNK_POINTS,
    'encodeAudio:start',
    'encodeAudio:putFile .work/{rendition}/audio.m4a',
    'encodeAudio:end',
    ...THUMBNAIL_POINTS,
    'concatRendition:start',
    'concatRendition:putFile {rendition}.mp4 (before rename)',
    'concatRendition:putFile {rendition}.mp4',
    'concatRendition:end',
    'writeManifest:start',
    'writeManifest:put manifest.json (before rename)',
    'writeManifest:put manifest.json',
    'writeManifest:end',
    ...VIDEO_CLEANUP_POINTS,
  ],
  report: [
    'listPartitions:start',
    'listPartitions:end',
    'aggregatePartition:start',
    'aggregatePartition:put .work/#-#-s#.json',
    'aggregatePartition:end',
    'mergeReport:start',
    'mergeReport:put report.csv (before rename)',
    'mergeReport:put report.csv',
    'mergeReport:put report.json (before rename)',
    'mergeReport:put report.json',
    'mergeReport:put report.html (before rename)',
    'mergeReport:put report.html',
    'mergeReport:end',
    'cleanupReport:start',
    'cleanupReport:deletePrefix .work',
    'cleanupReport:end',
  ],
  /** The video pipeline with `--package hls` (the default): CMAF segments, playlists, previews. */
  hls: [
    ...VIDEO_CHUNK_POINTS,
    'packageAudio:start',
    'packageAudio:putFile hls/audio/init.mp4 (before rename)',
    'packageAudio:putFile hls/audio/init.mp4',
    'packageAudio:putFile hls/audio/seg-#.m4s (before rename)',
    'packageAudio:putFile hls/audio/seg-#.m4s',
    'packageAudio:put hls/audio/playlist.m3u8 (before rename)',
    'packageAudio:put hls/audio/playlist.m3u8',
    'packageAudio:put .work/hls/audio.json',
    'packageAudio:end',
    'extractSprite:start',
    'extractSprite:putFile sprite.jpg (before rename)',
    'extractSprite:putFile sprite.jpg',
    'extractSprite:put sprite.vtt (before rename)',
    'extractSprite:put sprite.vtt',
    'extractSprite:end',
    ...THUMBNAIL_POINTS,
    'publishChunk:start',
    'publishChunk:putFile hls/{rendition}/init.mp4 (before rename)',
    'publishChunk:putFile hls/{rendition}/init.mp4',
    'publishChunk:putFile hls/{rendition}/seg-#.m4s (before rename)',
    'publishChunk:putFile hls/{rendition}/seg-#.m4s',
    'publishChunk:put .work/hls/{rendition}/chunk-#.json',
    'publishChunk:put hls/{rendition}/playlist.m3u8 (before rename)',
    'publishChunk:put hls/{rendition}/playlist.m3u8',
    'publishChunk:end',
    'publishMaster:start',
    'publishMaster:put master.m3u8 (before rename)',
    'publishMaster:put master.m3u8',
    'publishMaster:end',
    'finishRendition:start',
    'finishRendition:put hls/{rendition}/playlist.m3u8 (before rename)',
    'finishRendition:put hls/{rendition}/playlist.m3u8',
    'finishRendition:put .work/hls/{rendition}.json',
    'finishRendition:end',
    'writeStreamPlaylists:start',
    'writeStreamPlaylists:put master.m3u8 (before rename)',
    'writeStreamPlaylists:put master.m3u8',
    'writeStreamPlaylists:put manifest.json (before rename)',
    'writeStreamPlaylists:put manifest.json',
    'writeStreamPlaylists:end',
    ...VIDEO_CLEANUP_POINTS,
  ],
  jobs: ['burstSleep:start', 'burstSleep:end'],
} as const satisfies Record<string, readonly string[]>;
export type CrashPoint = (typeof CRASH_POINTS)[keyof typeof CRASH_POINTS][number];

/** Every crash point, for checking SLUICE_CRASH_AT. */
export const ALL_CRASH_POINTS: readonly CrashPoint[] = Object.values(CRASH_POINTS).flat();
