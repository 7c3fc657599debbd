/**
 * Sluice's typed client: what apps import to start and inspect pipelines.
 *
 * ```ts
 * const sluice = await SluiceClient.connect();
 * const { workflowId } = await sluice.startVideoPipeline({ source: 'uploads/a.mp4', tenant: 'acme', idempotencyKey: 'upload-42' });
 * const result = await sluice.getResult(workflowId);
 * ```
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client';
import { fileURLToPath } from 'node:url';

import {
  ObjectNotFoundError,
  StorageAccessError,
  isObjectUri,
  openStorage,
  parseS3Uri,
  sha256File,
  type ObjectInfo,
  type Storage,
} from '../storage';
import { S3Store } from '../storage/s3';
import { ConfigError, loadConfig, type SluiceConfig } from '../config';
import { connectionSettings } from '../connection';
import { flushTracing, startTracing } from '../tracing';
import { dataConverterFor } from '../security/codec';
import { TenantLimitsError, TenantLimitsSource, capsOf, type TenantLimits } from '../ratelimit/tenant-limits';
import {
  FLOW_MEMO_KEY,
  MAX_SOURCE_LENGTH,
  Packaging,
  PRIORITY_KEY_BY_TIER,
  REQUEST_MEMO_KEY,
  PipelineKind,
  TENANT_GATE_TIER,
  Tier,
  pipelineWorkflowId,
  taskQueueFor,
  tenantGateWorkflowId,
  type TenantCaps,
  type TenantGateMemo,
} from '../shared/constants';
import { planLadder } from '../shared/ladder';
import { resolveFfmpeg, runProcess } from '../activities/media/ffmpeg';
import {
  tenantGateCapsSignal,
  tenantGateStateQuery,
  tenantGateWorkflow,
  type TenantGateState,
} from '../workflows/tenant-gate';
import { PipelineKindKey, StageKey, TenantKey } from '../shared/search-attributes';
import { progressQuery } from '../workflows/progress';
import { pipelineStartOptions, type StartSpec, type WorkflowOf } from './start-options';
import type { WebhookTarget } from '../shared/webhook';
import { assertSafeWebhookUrl, parseAllowList, type AllowList } from '../security/ssrf';
import { JobsPipelineInputSchema, type JobsPipelineInput } from '../shared/jobs';
import type { JobsPipelineResult } from '../workflows/jobs-pipeline';
import {
  VideoPipelineInputSchema,
  zodIssues,
  type InputIssue,
  type PipelineProgress,
  type ValidVideoPipelineInput,
  type VideoPipelineResult,
} from '../shared/video';
import type { FailurePolicy } from '../shared/fan-out';
import {
  ReportPipelineInputSchema,
  type ReportFormat,
  type ReportPipelineResult,
  type ValidReportPipelineInput,
} from '../shared/report';

export type { ReportPipelineResult, ReportPipelineInput, MissingPartition, Measure, GroupBy } from '../shared/report';
export { MEASURE_NAMES, GROUP_BY_NAMES, REPORT_FORMATS } from '../shared/report';

/** What apps pass to {@link SluiceClient.startReportPipeline}. */
export interface StartReportOptions {
  /** First month `YYYY-MM` (with `to`), or use `lastMonths`. */
  from?: string;
  /** Last month `YYYY-MM`, inclusive. */
  to?: string;
  /** The last N complete months before the run starts (instead of from/to). */
  lastMonths?: number;
  /** @default ['orders', 'revenue'] */
  measures?: string[];
  /** @default ['month'] */
  groupBy?: string[];
  /** @default 'html' */
  format?: ReportFormat;
  /** `fail-fast`, `retry-failed[:N]`, `partial`, `deadline-partial[:S]`, `quorum:K`, or the parsed object. @default 'fail-fast' */
  policy?: string | FailurePolicy;
  /** @default 'default' */
  tier?: Tier;
  /** @default 'default' */
  tenant?: string;
  /** Only this data tenant's orders. @default all */
  tenantFilter?: string;
  /** @default a hash of the options, so the same request is the same run */
  idempotencyKey?: string;
  /** Sub-jobs in flight. @default 12 */
  window?: number;
  /** Sub-jobs per partition. @default 1 */
  shards?: number;
  /** 1 (first) to 5 within the tier's queue. @default from the tier */
  priorityKey?: number;
  /** Completion callback: a signed POST once the artifacts are written. @default none */
  webhook?: WebhookTarget;
}

export type { VideoPipelineResult, PipelineProgress, InputIssue } from '../shared/video';
export { Tier, TIERS, TASK_QUEUES, RENDITION_NAMES } from '../shared/constants';

/** Invalid input, caught before anything starts. Each issue names its field. */
export class InvalidInputError extends Error {
  constructor(readonly issues: InputIssue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('; '));
    this.name = 'InvalidInputError';
  }
}

/** What apps pass to {@link SluiceClient.startVideoPipeline}; everything but `source` has a default. */
export interface StartVideoOptions {
  /** Path of the input, relative to (or inside) SLUICE_MEDIA_ROOT. */
  source: string;
  /** @default ['360p', '720p'] */
  renditions?: string[];
  /** @default 30 */
  chunkSeconds?: number;
  /** `hls` (CMAF segments, master playlist), `dash` (MPD), `both` or `mp4` (progressive files). @default 'hls' */
  package?: string;
  /** Seconds per streaming segment, 1 to 10. @default 4 */
  segmentSeconds?: number;
  /** Score each rendition's first segment with ffmpeg's libvmaf (streaming packages). @default false */
  qualityCheck?: boolean;
  /** @default 3 */
  thumbnails?: number;
  /** @default 'default' */
  tier?: Tier;
  /** @default 'default' */
  tenant?: string;
  /** @default a hash of the source file's identity and the options, so re-running the same request is idempotent */
  idempotencyKey?: string;
  /** 1 (first) to 5 within the tier's queue. @default from the tier */
  priorityKey?: number;
  /** Sub-jobs in flight. @default 16 */
  window?: number;
  /** Completion callback: a signed POST once the outputs are written. @default none */
  webhook?: WebhookTarget;
}

/** A cancel (or other change) asked of a run that has already closed. */
export class PipelineClosedError extends Error {
  constructor(
    readonly workflowId: string,
    readonly status: PipelineStatus,
  ) {
    super(`${workflowId} is already ${status.toLowerCase().replace(/_/g, ' ')}: nothing to cancel`);
    this.name = 'PipelineClosedError';
  }
}

/** What an edge (the CLI, the HTTP API) says about a start. */
export interface StartRequestMeta {
  /** The request's fingerprint, kept in the memo. */
  requestHash?: string;
  /**
   * Refuse the start ({@link TenantAtCapacityError}) when the tenant already has `maxRunning`
   * pipelines running or queued, instead of queueing it. A duplicate of an existing run is never
   * refused. @default false — the run waits in order with Stage="queued"
   */
  rejectWhenFull?: boolean;
}

/** A start refused with `rejectWhenFull`: the tenant is at its `maxRunning` cap. */
export class TenantAtCapacityError extends Error {
  constructor(
    readonly tenant: string,
    readonly maxRunning: number,
    readonly running: number,
    readonly queued: number,
    /** When to try again (the gate's estimate from its recent runs). */
    readonly retryAfterSeconds: number,
  ) {
    super(
      `tenant ${tenant} is at its cap of ${maxRunning} running pipelines (${running} running, ${queued} queued); ` +
        `try again in ${retryAfterSeconds} s, or start without --reject-when-full to wait in order`,
    );
    this.name = 'TenantAtCapacityError';
  }
}

/** See {@link SluiceClient.describePipeline}. */
export interface PipelineDescription {
  workflowId: string;
  runId: string;
  workflowType: string;
  status: PipelineStatus;
  kind: string | undefined;
  tenant: string | undefined;
  requestHash: string | undefined;
}

export interface StartedPipeline {
  workflowId: string;
  runId: string | undefined;
}

export type PipelineStatus =
  'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TERMINATED' | 'CONTINUED_AS_NEW' | 'TIMED_OUT' | 'UNKNOWN';

export interface PipelineState {
  workflowId: string;
  kind: string | undefined;
  status: PipelineStatus;
  stage: string | undefined;
  progress: PipelineProgress | undefined;
  /**
   * A video run with a streaming package: what a player loads, once it plays (while running:
   * the progress query's; completed: the result's).
   */
  playbackUrl?: string;
  startTime: string | undefined;
  closeTime: string | undefined;
}

export interface SluiceClientOptions {
  config?: SluiceConfig;
  /** Hears of every re-read of the tenant limits file (SLUICE_TENANT_LIMITS). @default a line on stderr */
  onTenantLimitsReload?: (event: { limits?: TenantLimits; error?: TenantLimitsError }) => void;
  /**
   * `service.name` of this process's spans when tracing is on and OTEL_SERVICE_NAME is unset
   * (the first of the process's clients and worker hosts to start tracing names it).
   * @default 'sluice-cli'
   */
  tracingService?: string;
}

/** Option names of {@link SluiceClient.startVideoPipeline} (the HTTP API derives its body fields from these). */
export const VIDEO_OPTION_KEYS = [
  'source',
  'renditions',
  'chunkSeconds',
  'package',
  'segmentSeconds',
  'qualityCheck',
  'thumbnails',
  'tier',
  'tenant',
  'idempotencyKey',
  'priorityKey',
  'window',
  'webhook',
] as const satisfies readonly (keyof StartVideoOptions)[];
/** Option names of {@link SluiceClient.startReportPipeline}. */
export const REPORT_OPTION_KEYS = [
  'from',
  'to',
  'lastMonths',
  'measures',
  'groupBy',
  'format',
  'policy',
  'tier',
  'tenant',
  'tenantFilter',
  'idempotencyKey',
  'window',
  'shards',
  'priorityKey',
  'webhook',
] as const satisfies readonly (keyof StartReportOptions)[];

/** Option names of {@link SluiceClient.startJobsPipeline}: the workflow input's fields and `summary`. */
const JOBS_OPTION_KEYS = [...Object.keys(JobsPipelineInputSchema.shape), 'summary'];

/**
 * Issues with the options object itself: not an object, or fields that are not options. Apps in
 * plain JavaScript (and the HTTP API) can send anything; a misspelt option must not be ignored.
 */
/** The options among `keys` that are set (undefined means "use the schema's default"). */
function definedOptions(opts: object, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(opts).filter(([k, v]) => keys.includes(k) && v !== undefined));
}

function shapeIssues(opts: unknown, allowed: readonly string[]): InputIssue[] {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts))
    return [{ path: '(input)', message: 'must be an object' }];
  return Object.keys(opts)
    .filter((k) => !allowed.includes(k))
    .map((k) => ({ path: k, message: `unknown field; expected one of ${allowed.join(', ')}` }));
}

/** The one message for a source that is missing or resolves outside the media root. */
const notInMediaRoot = (source: string) => `${source} is not a file in the media root`;

export class SluiceClient {
  private constructor(
    readonly temporal: Client,
    private readonly connection: Connection,
    readonly config: SluiceConfig,
    /** The tenant limits file, followed live (SLUICE_TENANT_LIMITS); undefined when unset. */
    readonly tenantLimits: TenantLimitsSource | undefined,
  ) {
    this.webhookAllow = parseAllowList(config.webhook.allow);
  }

  /** SLUICE_WEBHOOK_ALLOW: hosts and ranges exempt from the SSRF guard. */
  private readonly webhookAllow: AllowList;

  /** Connects to Temporal (TEMPORAL_ADDRESS, or the embedded dev server's port). */
  static async connect(opts: SluiceClientOptions = {}): Promise<SluiceClient> {
    const config = opts.config ?? loadConfig();
    const settings = connectionSettings(config);
    // Payload encryption when keys are configured (SLUICE_CODEC_KEYS): the workers use the same converter.
    const dataConverter = dataConverterFor(config.codec);
    let tenantLimits: TenantLimitsSource | undefined;
    if (config.tenantLimitsFile) {
      try {
        tenantLimits = TenantLimitsSource.open(
          config.tenantLimitsFile,
          opts.onTenantLimitsReload ??
            ((e) => {
              if (e.error)
                process.stderr.write(`tenant limits not reloaded (the last good ones stay): ${e.error.message}\n`);
            }),
        );
      } catch (err) {
        if (err instanceof TenantLimitsError)
          throw new ConfigError(
            err.problems.map(
              (p) => `SLUICE_TENANT_LIMITS: ${err.file}:${p.line ?? '?'}: ${p.path ? `${p.path}: ` : ''}${p.message}`,
            ),
          );
        throw err;
      }
    }
    let connection: Connection;
    try {
      connection = await Connection.connect({
        address: settings.address,
        tls: settings.tls,
        apiKey: settings.apiKey,
        connectTimeout: 5_000,
      });
    } catch (err) {
      tenantLimits?.close();
      const hint = config.temporal.address ? '' : ' (no TEMPORAL_ADDRESS: is `sluice up` running?)';
      throw new Error(`cannot connect to Temporal at ${settings.address}${hint}: ${(err as Error).message}`);
    }
    // Tracing on (OTEL_EXPORTER_OTLP_ENDPOINT): every start, signal and query gets a span, and the
    // run gets its trace context in a header (src/workflows/tracing.ts traces only such runs).
    const tracing = startTracing(config.tracing, opts.tracingService ?? 'sluice-cli');
    return new SluiceClient(
      new Client({
        connection,
        namespace: settings.namespace,
        dataConverter,
        ...(tracing ? { interceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } } : {}),
      }),
      connection,
      config,
      tenantLimits,
    );
  }

  async close(): Promise<void> {
    this.tenantLimits?.close();
    await this.connection.close();
    // This client's spans leave now (a CLI command exits right after).
    await flushTracing().catch(() => undefined);
  }

  /**
   * Validates a video request: the shape (renditions, numbers, tenant, key) and the file (it
   * exists, is a regular file, and resolves inside the media root after symlinks). Returns the
   * workflow input with `source` relative to the media root. Throws {@link InvalidInputError}.
   */
  validateVideo(opts: StartVideoOptions): ValidVideoPipelineInput {
    const issues = shapeIssues(opts, VIDEO_OPTION_KEYS);
    if (typeof opts !== 'object' || opts === null) throw new InvalidInputError(issues);
    if (opts.source !== undefined && typeof opts.source !== 'string')
      issues.push({ path: 'source', message: 'must be a string' });
    const source = typeof opts.source === 'string' ? this.checkSource(opts.source, issues) : undefined;
    // The schema owns every default (the workflow applies the same ones to any client's input).
    const candidate = {
      ...definedOptions(opts, VIDEO_OPTION_KEYS),
      source: source ?? (typeof opts.source === 'string' && opts.source ? opts.source : ''),
      idempotencyKey: opts.idempotencyKey ?? 'pending',
    };
    const parsed = VideoPipelineInputSchema.safeParse(candidate);
    if (!parsed.success) {
      for (const issue of zodIssues(parsed.error)) {
        if (!(issue.path === 'source' && issues.some((i) => i.path === 'source'))) issues.push(issue);
      }
    }
    if (issues.length > 0 || !parsed.success) throw new InvalidInputError(issues);
    const input = parsed.data;
    if (opts.idempotencyKey === undefined) input.idempotencyKey = this.defaultKey(input);
    return input;
  }

  private checkSource(source: string, issues: InputIssue[]): string | undefined {
    if (!source) {
      issues.push({ path: 'source', message: 'must not be empty' });
      return undefined;
    }
    if (isObjectUri(source)) {
      // An object: its shape here; whether it exists is asked of the store at start (checkObjectSource).
      if (source.startsWith('file://')) {
        try {
          source = fileURLToPath(source);
        } catch {
          issues.push({ path: 'source', message: `${source} is not a file:///absolute/path URI` });
          return undefined;
        }
      } else if (parseS3Uri(source)) {
        return source;
      } else {
        const scheme = source.slice(0, source.indexOf(':'));
        issues.push({
          path: 'source',
          message: `unsupported scheme ${scheme}; expected s3://bucket/key or a path under SLUICE_MEDIA_ROOT`,
        });
        return undefined;
      }
    }
    if (source.includes('\0')) {
      issues.push({ path: 'source', message: 'must not contain NUL' });
      return undefined;
    }
    if (source.length > MAX_SOURCE_LENGTH) {
      issues.push({ path: 'source', message: `must be at most ${MAX_SOURCE_LENGTH} characters` });
      return undefined;
    }
    const root = this.mediaRoot();
    const abs = path.resolve(root, source);
    let real: string;
    try {
      real = fs.realpathSync(abs);
    } catch {
      issues.push({ path: 'source', message: notInMediaRoot(source) });
      return undefined;
    }
    // The same words as a missing file, and no root path: the answer must not tell an outside
    // caller whether a path exists outside the media root, nor where the root is.
    if (real !== root && !real.startsWith(root + path.sep)) {
      issues.push({ path: 'source', message: notInMediaRoot(source) });
      return undefined;
    }
    const stat = fs.statSync(real);
    if (!stat.isFile()) {
      issues.push({
        path: 'source',
        message: `${source} is ${stat.isDirectory() ? 'a directory' : 'not a regular file'}`,
      });
      return undefined;
    }
    return path.relative(root, real);
  }

  /** The configured store (opened on first use). */
  private get storage(): Storage {
    this.openedStorage ??= openStorage(this.config.storage, {
      outputDir: this.config.outputDir,
      partitionsDir: this.config.reports.partitionsDir,
    });
    return this.openedStorage;
  }
  private openedStorage: Storage | undefined;

  /**
   * Makes the source readable by every worker: an `s3://` source must exist and be readable
   * with these credentials (else InvalidInputError naming `source`: nothing starts); a local
   * source, when the store is `s3`, is uploaded first (content-addressed, once) and replaced by
   * its URI, since workers on other hosts cannot see this host's files.
   */
  private async checkObjectSource(source: string): Promise<string> {
    const fail = (message: string) => new InvalidInputError([{ path: 'source', message }]);
    const ref = parseS3Uri(source) ? this.storage.objectAt(source) : undefined;
    if (ref) {
      let info: ObjectInfo | undefined;
      try {
        info = await ref.store.head(ref.key);
      } catch (err) {
        if (err instanceof ObjectNotFoundError) throw fail(`${source}: the bucket does not exist`);
        if (err instanceof StorageAccessError)
          throw fail(`${source}: the store refused these credentials (${err.message})`);
        throw err;
      }
      if (!info && ref.store instanceof S3Store && !(await ref.store.bucketExists())) {
        throw fail(`${source}: the bucket does not exist`);
      }
      if (!info) throw fail(`${source} does not exist`);
      if (info.bytes === 0) throw fail(`${source} is empty (0 bytes)`);
      return source;
    }
    if (this.storage.kind !== 's3') return source;
    const file = path.resolve(this.config.mediaRoot, source);
    const sha256 = await sha256File(file);
    const key = `${sha256}/${path.basename(file)}`;
    if (!(await this.storage.uploads.head(key))) await this.storage.uploads.putFile(key, file, { sha256 });
    return this.storage.uploads.uri(key);
  }

  /**
   * A streaming package never upscales: when every requested rendition is larger than the
   * source, the request is refused here (naming `renditions`) and nothing starts. A source
   * ffprobe cannot read is left to the pipeline, which fails it once as InvalidMedia.
   */
  private async checkLadder(input: ValidVideoPipelineInput): Promise<void> {
    if (input.package === Packaging.mp4) return;
    const size = await this.probeVideoSize(input.source);
    if (!size) return;
    const ladder = planLadder(input.renditions, size.width, size.height);
    if (ladder.renditions.length > 0) return;
    throw new InvalidInputError([
      {
        path: 'renditions',
        message: `none of ${input.renditions.join(', ')} fits the ${size.width}x${size.height} source (a streaming package never upscales); ask for a rendition no larger than ${Math.min(size.width, size.height)}p`,
      },
    ]);
  }

  /** The first video stream's size, or undefined when ffprobe cannot tell. */
  private async probeVideoSize(source: string): Promise<{ width: number; height: number } | undefined> {
    let input: string | undefined;
    if (parseS3Uri(source)) {
      const ref = this.storage.objectAt(source);
      input = ref ? await ref.store.presign(ref.key, this.config.storage.presignTtlSec) : undefined;
    } else {
      input = path.resolve(this.config.mediaRoot, source);
    }
    if (!input) return undefined;
    const { ffprobe } = resolveFfmpeg({ ffmpeg: this.config.ffmpegPath, ffprobe: this.config.ffprobePath });
    try {
      const { stdout } = await runProcess(ffprobe, [
        '-v',
        'error',
        '-select_streams',
        'v:0',
        '-show_entries',
        'stream=width,height',
        '-of',
        'json',
        input,
      ]);
      const stream = (JSON.parse(stdout) as { streams?: { width?: number; height?: number }[] }).streams?.[0];
      return stream?.width && stream.height ? { width: stream.width, height: stream.height } : undefined;
    } catch {
      return undefined;
    }
  }

  /** Every artifact of a result with a fresh presigned `url` (on `s3`): stored URLs expire. */
  private async withFreshUrls<R>(result: R): Promise<R> {
    const visit = async (value: unknown): Promise<void> => {
      if (Array.isArray(value)) {
        for (const v of value) await visit(v);
        return;
      }
      if (typeof value !== 'object' || value === null) return;
      const record = value as Record<string, unknown>;
      if (typeof record.uri === 'string' && typeof record.sha256 === 'string') {
        const ref = parseS3Uri(record.uri) ? this.storage.objectAt(record.uri) : undefined;
        if (ref) record.url = await ref.store.presign(ref.key, this.config.storage.presignTtlSec);
      }
      for (const v of Object.values(record)) await visit(v);
    };
    await visit(result);
    return result;
  }

  /**
   * The media root, resolved; a root that is missing, not a directory or not readable is a
   * configuration error naming SLUICE_MEDIA_ROOT (exit 2), not a raw ENOENT, and never reported
   * as the source not existing.
   */
  private mediaRoot(): string {
    const configured = this.config.mediaRoot;
    try {
      const root = fs.realpathSync(configured);
      if (!fs.statSync(root).isDirectory())
        throw new ConfigError([`SLUICE_MEDIA_ROOT: ${configured} is not a directory`]);
      fs.accessSync(root, fs.constants.R_OK | fs.constants.X_OK);
      return root;
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConfigError([
        code === 'ENOENT'
          ? `SLUICE_MEDIA_ROOT: ${configured} does not exist`
          : `SLUICE_MEDIA_ROOT: ${configured} is not readable (${code ?? (err as Error).message})`,
      ]);
    }
  }

  /** Same file (path, size, mtime) and same options → same key → same run. */
  private defaultKey(input: ValidVideoPipelineInput): string {
    // A local file also by its size and mtime; an object by its URI alone.
    let file: number[] = [];
    if (!isObjectUri(input.source)) {
      const stat = fs.statSync(path.resolve(this.config.mediaRoot, input.source));
      file = [stat.size, stat.mtimeMs];
    }
    const identity = JSON.stringify([
      input.source,
      ...file,
      input.renditions,
      input.chunkSeconds,
      input.thumbnails,
      input.tier,
      ...packagingIdentity(input),
    ]);
    return crypto.createHash('sha256').update(identity).digest('hex').slice(0, 20);
  }

  /**
   * Starts a video pipeline on its tier's queue. A duplicate (same tenant and idempotency key)
   * returns the existing run, running or finished; it never starts a second one.
   */
  async startVideoPipeline(opts: StartVideoOptions, request?: StartRequestMeta): Promise<StartedPipeline> {
    const input = this.validateVideo(opts);
    await this.checkWebhook(input.webhook);
    input.source = await this.checkObjectSource(input.source);
    await this.checkLadder(input);
    const workflowId = pipelineWorkflowId(PipelineKind.video, input.tenant, input.idempotencyKey);
    return this.startPipeline('videoPipelineWorkflow', workflowId, input, {
      kind: PipelineKind.video,
      tier: input.tier,
      tenant: input.tenant,
      priorityKey: input.priorityKey,
      summary: `video ${input.source} → ${input.renditions.join(', ')} (${input.tier}, ${input.tenant})`,
      ...request,
    });
  }

  /**
   * Validates a report request: months, measures and group-by from the allow-lists, format,
   * policy, tenant and key. Returns the workflow input. Throws {@link InvalidInputError}.
   */
  validateReport(opts: StartReportOptions): ValidReportPipelineInput {
    const issues = shapeIssues(opts, REPORT_OPTION_KEYS);
    if (typeof opts !== 'object' || opts === null) throw new InvalidInputError(issues);
    // The schema owns every default and parses the policy's CLI spelling.
    const candidate = { ...definedOptions(opts, REPORT_OPTION_KEYS), idempotencyKey: opts.idempotencyKey ?? 'pending' };
    const parsed = ReportPipelineInputSchema.safeParse(candidate);
    if (!parsed.success) issues.push(...zodIssues(parsed.error));
    if (issues.length > 0 || !parsed.success) throw new InvalidInputError(issues);
    const input = parsed.data;
    if (opts.idempotencyKey === undefined) {
      const { idempotencyKey: _pending, ...rest } = input;
      input.idempotencyKey = crypto.createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 20);
    }
    return input;
  }

  /**
   * Starts a report pipeline on its tier's queue. A duplicate (same tenant and idempotency key)
   * returns the existing run, running or finished.
   */
  async startReportPipeline(opts: StartReportOptions, request?: StartRequestMeta): Promise<StartedPipeline> {
    const input = this.validateReport(opts);
    await this.checkWebhook(input.webhook);
    const workflowId = pipelineWorkflowId(PipelineKind.report, input.tenant, input.idempotencyKey);
    const range = input.lastMonths ? `last ${input.lastMonths} months` : `${input.from} … ${input.to}`;
    return this.startPipeline('reportPipelineWorkflow', workflowId, input, {
      kind: PipelineKind.report,
      tier: input.tier,
      tenant: input.tenant,
      priorityKey: input.priorityKey,
      summary: `report ${range}: ${input.measures.join(', ')} by ${input.groupBy.join(', ') || 'all'} (${input.policy.kind}, ${input.tier}, ${input.tenant})`,
      ...request,
    });
  }

  /** Waits for a report's result; throws the workflow's failure. */
  async getReportResult(workflowId: string): Promise<ReportPipelineResult> {
    return this.getResult<ReportPipelineResult>(workflowId);
  }

  /**
   * The SSRF guard at the edge, so a webhook the workers would refuse fails the request now
   * (nothing started) rather than after the pipeline's work. The activity checks again at send
   * time, after its own DNS resolution.
   */
  private async checkWebhook(webhook: WebhookTarget | undefined): Promise<void> {
    if (!webhook) return;
    try {
      await assertSafeWebhookUrl(webhook.url, { allow: this.webhookAllow });
    } catch (err) {
      const message = (err as Error).message.replace(/^url: /, '');
      throw new InvalidInputError([{ path: 'webhook.url', message }]);
    }
  }

  private async startPipeline<N extends 'videoPipelineWorkflow' | 'reportPipelineWorkflow' | 'jobsPipelineWorkflow'>(
    workflowType: N,
    workflowId: string,
    input: Parameters<WorkflowOf<N>>[0],
    spec: StartSpec & { rejectWhenFull?: boolean },
  ): Promise<StartedPipeline> {
    const { rejectWhenFull, ...startSpec } = spec;
    // The tenant's caps as the limits file says now: its gate gets them before the run asks it.
    const caps = this.tenantLimits ? capsOf(this.tenantLimits.current(), spec.tenant) : undefined;
    const gate =
      caps && (caps.maxRunning > 0 || caps.maxInFlight > 0) ? await this.ensureGate(spec.tenant, caps) : undefined;
    if (gate && rejectWhenFull && caps && caps.maxRunning > 0 && !(await this.exists(workflowId))) {
      const state = await this.gateState(spec.tenant);
      if (state && state.running.length + state.queued.length >= caps.maxRunning)
        throw new TenantAtCapacityError(
          spec.tenant,
          caps.maxRunning,
          state.running.length,
          state.queued.length,
          state.retryAfterSeconds,
        );
    }
    try {
      const options = pipelineStartOptions(this.configWithLiveWeights(spec.tenant), startSpec);
      if (gate) options.memo[FLOW_MEMO_KEY] = { ...options.memo[FLOW_MEMO_KEY], gate };
      const handle = await this.temporal.workflow.start<WorkflowOf<N>>(workflowType, {
        workflowId,
        args: [input] as Parameters<WorkflowOf<N>>,
        workflowIdConflictPolicy: 'USE_EXISTING',
        // A finished run is not started again either: the key names one piece of work.
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        // Queue, priority, fairness, flow memo and search attributes: the one builder (start-options.ts),
        // with a tenant's weight (and its gate) as the limits file says now.
        ...options,
      });
      return { workflowId, runId: handle.firstExecutionRunId };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        const description = await this.temporal.workflow.getHandle(workflowId).describe();
        return { workflowId, runId: description.runId };
      }
      throw err;
    }
  }

  /**
   * Starts the tenant's gate if it is not running, and gives it the caps in force (signal-with-start:
   * one call either way). Returns what the run's flow memo says about it.
   */
  private async ensureGate(tenant: string, caps: TenantCaps): Promise<TenantGateMemo> {
    const workflowId = tenantGateWorkflowId(tenant, this.config.taskQueueSuffix);
    await this.temporal.workflow.signalWithStart(tenantGateWorkflow, {
      workflowId,
      taskQueue: taskQueueFor(TENANT_GATE_TIER, this.config.taskQueueSuffix),
      args: [{ tenant, caps }],
      signal: tenantGateCapsSignal,
      signalArgs: [caps],
      priority: { priorityKey: PRIORITY_KEY_BY_TIER[TENANT_GATE_TIER], fairnessKey: tenant },
      staticSummary: `tenant gate of ${tenant}`,
    });
    return { workflowId, running: caps.maxRunning > 0, inFlight: caps.maxInFlight > 0 };
  }

  /** What the tenant's gate holds now; undefined when it has none (no caps, or never started). */
  async gateState(tenant: string): Promise<TenantGateState | undefined> {
    try {
      return await this.temporal.workflow
        .getHandle(tenantGateWorkflowId(tenant, this.config.taskQueueSuffix))
        .query(tenantGateStateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  /** The config with the tenant's weight from the limits file as it is now (it wins over SLUICE_FAIRNESS_WEIGHTS). */
  private configWithLiveWeights(tenant: string): SluiceConfig {
    const weight = this.tenantLimits?.weightOf(tenant);
    return weight === undefined
      ? this.config
      : { ...this.config, fairnessWeights: { ...this.config.fairnessWeights, [tenant]: weight } };
  }

  /**
   * Validates a jobs request against the workflow's own schema (src/shared/jobs.ts). Returns the
   * workflow input. Throws {@link InvalidInputError} naming each field.
   */
  validateJobs(opts: StartJobsOptions): JobsPipelineInput {
    if (typeof opts !== 'object' || opts === null || Array.isArray(opts))
      throw new InvalidInputError([{ path: '(input)', message: 'must be an object' }]);
    const { summary, ...rest } = opts;
    const issues = shapeIssues(opts, JOBS_OPTION_KEYS);
    if (summary !== undefined && typeof summary !== 'string')
      issues.push({ path: 'summary', message: 'must be a string' });
    const parsed = JobsPipelineInputSchema.safeParse({
      ...rest,
      tier: opts.tier ?? Tier.default,
      tenant: opts.tenant ?? 'default',
    });
    // Unknown fields are named by shapeIssues; zod's strict check would only repeat them.
    if (!parsed.success) issues.push(...zodIssues(parsed.error).filter((i) => i.path !== '(input)'));
    if (issues.length > 0 || !parsed.success) throw new InvalidInputError(issues);
    return parsed.data as JobsPipelineInput;
  }

  /**
   * Starts a generic sub-job pipeline (`jobsPipelineWorkflow`) on its tier's queue: any
   * registered activities under a failure policy, then an optional completion webhook.
   */
  async startJobsPipeline(opts: StartJobsOptions, request?: StartRequestMeta): Promise<StartedPipeline> {
    const input = this.validateJobs(opts);
    const { tier, tenant } = input;
    const workflowId = pipelineWorkflowId(PipelineKind.jobs, tenant, input.idempotencyKey);
    return this.startPipeline('jobsPipelineWorkflow', workflowId, input, {
      kind: PipelineKind.jobs,
      tier,
      tenant,
      priorityKey: input.priorityKey,
      summary: opts.summary ?? `${opts.jobs.length} sub-jobs (${tier}, ${tenant})`,
      ...request,
    });
  }

  /** Status, stage and (while running) the progress query's answer. */
  async getStatus(workflowId: string): Promise<PipelineState> {
    const handle = this.temporal.workflow.getHandle(workflowId);
    const d = await handle.describe();
    const attrs = d.typedSearchAttributes;
    let progress: PipelineProgress | undefined;
    if (d.status.name === 'RUNNING') {
      progress = await handle.query(progressQuery).catch(() => undefined);
    }
    const kind = attrs.get(PipelineKindKey);
    let playbackUrl = progress?.playbackUrl;
    if (d.status.name === 'COMPLETED' && kind === PipelineKind.video) {
      playbackUrl = ((await handle.result().catch(() => undefined)) as VideoPipelineResult | undefined)?.playbackUrl;
    }
    return {
      workflowId,
      kind,
      status: d.status.name as PipelineStatus,
      stage: progress?.stage ?? attrs.get(StageKey),
      progress,
      ...(playbackUrl ? { playbackUrl } : {}),
      startTime: d.startTime?.toISOString(),
      closeTime: d.closeTime?.toISOString(),
    };
  }

  /** The `progress` query of a running pipeline. */
  async getProgress(workflowId: string): Promise<PipelineProgress> {
    return this.temporal.workflow.getHandle(workflowId).query(progressQuery);
  }

  /** Waits for the result; throws the workflow's failure. */
  async getResult<R = VideoPipelineResult>(workflowId: string): Promise<R> {
    return this.withFreshUrls((await this.temporal.workflow.getHandle(workflowId).result()) as R);
  }

  /**
   * Requests cancellation; the pipeline stops its sub-jobs and removes partial outputs. Throws
   * {@link PipelineClosedError} when the run has already closed (nothing to cancel).
   */
  async cancel(workflowId: string): Promise<void> {
    const handle = this.temporal.workflow.getHandle(workflowId);
    const closed = async () => {
      const status = (await handle.describe()).status.name as PipelineStatus;
      return status === 'RUNNING' ? undefined : new PipelineClosedError(workflowId, status);
    };
    const before = await closed();
    if (before) throw before;
    try {
      await handle.cancel();
    } catch (err) {
      // It closed between the describe and the request.
      throw (await closed()) ?? err;
    }
  }

  /**
   * What the HTTP API checks before it answers for a run: type, status, the kind and tenant the
   * run was started with (search attributes) and its request fingerprint. Undefined when no
   * workflow has this ID.
   */
  async describePipeline(workflowId: string): Promise<PipelineDescription | undefined> {
    try {
      const d = await this.temporal.workflow.getHandle(workflowId).describe();
      const hash = d.memo?.[REQUEST_MEMO_KEY];
      return {
        workflowId,
        runId: d.runId,
        workflowType: d.type,
        status: d.status.name as PipelineStatus,
        kind: d.typedSearchAttributes.get(PipelineKindKey),
        tenant: d.typedSearchAttributes.get(TenantKey),
        requestHash: typeof hash === 'string' ? hash : undefined,
      };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  /** True when a workflow with this ID exists. */
  async exists(workflowId: string): Promise<boolean> {
    try {
      await this.temporal.workflow.getHandle(workflowId).describe();
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }
}

/** What apps pass to {@link SluiceClient.startJobsPipeline}. */
export interface StartJobsOptions extends Omit<JobsPipelineInput, 'tier' | 'tenant'> {
  /** @default 'default' */
  tier?: Tier;
  /** @default 'default' */
  tenant?: string;
  /** Shown in the UI. */
  summary?: string;
}
export type { JobsPipelineInput, JobsPipelineResult };

/** The packaging options in a default idempotency key; none for `mp4`, so its keys stay as they were. */
function packagingIdentity(input: ValidVideoPipelineInput): unknown[] {
  if (input.package === Packaging.mp4) return [];
  // `qualityCheck` only when asked, so the keys of runs without it stay as they were.
  return [input.package, input.segmentSeconds, ...(input.qualityCheck ? ['quality-check'] : [])];
}
