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
import { fileURLToPath } from 'node:url';
import { loadConfig, type SluiceConfig } from '../config';
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
import { connectionSettings } from '../connection';
import { dataConverterFor } from '../security/codec';
import {
  MAX_SOURCE_LENGTH,
  PRIORITY_KEY_BY_TIER,
  PipelineKind,
  Tier,
  VIDEO_LIMITS,
  pipelineWorkflowId,
  taskQueueFor,
} from '../shared/constants';
import { PipelineKindKey, StageKey, TenantKey, TierKey } from '../shared/search-attributes';
import type { WebhookTarget } from '../shared/webhook';
import { assertSafeWebhookUrl, parseAllowList, type AllowList } from '../security/ssrf';
import { FLOW_MEMO_KEY, IDEMPOTENCY_KEY_PATTERN, MAX_PACK, TENANT_PATTERN, type FlowMemo } from '../shared/constants';
import type { JobsPipelineInput, JobsPipelineResult } from '../workflows/jobs-pipeline';
import {
  VideoPipelineInputSchema,
  zodIssues,
  type InputIssue,
  type PipelineProgress,
  type ValidVideoPipelineInput,
  type VideoPipelineResult,
} from '../shared/video';
import { parseFailurePolicy, type FailurePolicy } from '../shared/fan-out';
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
  startTime: string | undefined;
  closeTime: string | undefined;
}

export interface SluiceClientOptions {
  config?: SluiceConfig;
}

/** Option names of {@link SluiceClient.startVideoPipeline} (the HTTP API derives its body fields from these). */
export const VIDEO_OPTION_KEYS = [
  'source',
  'renditions',
  'chunkSeconds',
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

/**
 * Issues with the options object itself: not an object, or fields that are not options. Apps in
 * plain JavaScript (and the HTTP API) can send anything; a misspelt option must not be ignored.
 */
function shapeIssues(opts: unknown, allowed: readonly string[]): InputIssue[] {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts))
    return [{ path: '(input)', message: 'must be an object' }];
  return Object.keys(opts)
    .filter((k) => !allowed.includes(k))
    .map((k) => ({ path: k, message: `unknown field; expected one of ${allowed.join(', ')}` }));
}

export class SluiceClient {
  private constructor(
    readonly temporal: Client,
    private readonly connection: Connection,
    readonly config: SluiceConfig,
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
    const dataConverter = dataConverterFor(config);
    let connection: Connection;
    try {
      connection = await Connection.connect({
        address: settings.address,
        tls: settings.tls,
        apiKey: settings.apiKey,
        connectTimeout: 5_000,
      });
    } catch (err) {
      const hint = config.temporal.address ? '' : ' (no TEMPORAL_ADDRESS: is `sluice up` running?)';
      throw new Error(`cannot connect to Temporal at ${settings.address}${hint}: ${(err as Error).message}`);
    }
    return new SluiceClient(
      new Client({ connection, namespace: settings.namespace, dataConverter }),
      connection,
      config,
    );
  }

  async close(): Promise<void> {
    await this.connection.close();
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
    const tier = opts.tier ?? Tier.default;
    const candidate = {
      source: source ?? (typeof opts.source === 'string' && opts.source ? opts.source : ''),
      renditions: opts.renditions ?? ['360p', '720p'],
      chunkSeconds: opts.chunkSeconds ?? VIDEO_LIMITS.defaultChunkSeconds,
      thumbnails: opts.thumbnails ?? VIDEO_LIMITS.defaultThumbnails,
      tier,
      tenant: opts.tenant ?? 'default',
      idempotencyKey: opts.idempotencyKey ?? 'pending',
      ...(opts.window !== undefined ? { window: opts.window } : {}),
      ...(opts.priorityKey !== undefined ? { priorityKey: opts.priorityKey } : {}),
      ...(opts.webhook !== undefined ? { webhook: opts.webhook } : {}),
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
    const root = fs.realpathSync(this.config.mediaRoot);
    const abs = path.resolve(root, source);
    let real: string;
    try {
      real = fs.realpathSync(abs);
    } catch {
      issues.push({ path: 'source', message: `${source} does not exist` });
      return undefined;
    }
    if (real !== root && !real.startsWith(root + path.sep)) {
      issues.push({ path: 'source', message: `${source} resolves outside the media root ${root}` });
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

  /** Same file (path, size, mtime) and same options → same key → same run. */
  private defaultKey(input: ValidVideoPipelineInput): string {
    if (isObjectUri(input.source)) {
      const identity = JSON.stringify([
        input.source,
        input.renditions,
        input.chunkSeconds,
        input.thumbnails,
        input.tier,
      ]);
      return crypto.createHash('sha256').update(identity).digest('hex').slice(0, 20);
    }
    const stat = fs.statSync(path.resolve(this.config.mediaRoot, input.source));
    const identity = JSON.stringify([
      input.source,
      stat.size,
      stat.mtimeMs,
      input.renditions,
      input.chunkSeconds,
      input.thumbnails,
      input.tier,
    ]);
    return crypto.createHash('sha256').update(identity).digest('hex').slice(0, 20);
  }

  /**
   * Starts a video pipeline on its tier's queue. A duplicate (same tenant and idempotency key)
   * returns the existing run, running or finished; it never starts a second one.
   */
  async startVideoPipeline(opts: StartVideoOptions): Promise<StartedPipeline> {
    const input = this.validateVideo(opts);
    await this.checkWebhook(input.webhook);
    input.source = await this.checkObjectSource(input.source);
    const workflowId = pipelineWorkflowId(PipelineKind.video, input.tenant, input.idempotencyKey);
    return this.startPipeline(PipelineKind.video, 'videoPipelineWorkflow', workflowId, input, {
      summary: `video ${input.source} → ${input.renditions.join(', ')} (${input.tier}, ${input.tenant})`,
    });
  }

  /**
   * Validates a report request: months, measures and group-by from the allow-lists, format,
   * policy, tenant and key. Returns the workflow input. Throws {@link InvalidInputError}.
   */
  validateReport(opts: StartReportOptions): ValidReportPipelineInput {
    const issues = shapeIssues(opts, REPORT_OPTION_KEYS);
    if (typeof opts !== 'object' || opts === null) throw new InvalidInputError(issues);
    let policy: FailurePolicy | undefined;
    const rawPolicy = opts.policy ?? 'fail-fast';
    if (typeof rawPolicy === 'string') {
      const p = parseFailurePolicy(rawPolicy);
      if ('error' in p) issues.push({ path: 'policy', message: p.error });
      else policy = p;
    } else policy = rawPolicy;
    const candidate = {
      ...(opts.from !== undefined ? { from: opts.from } : {}),
      ...(opts.to !== undefined ? { to: opts.to } : {}),
      ...(opts.lastMonths !== undefined ? { lastMonths: opts.lastMonths } : {}),
      measures: opts.measures ?? ['orders', 'revenue'],
      groupBy: opts.groupBy ?? ['month'],
      format: opts.format ?? 'html',
      tier: opts.tier ?? Tier.default,
      tenant: opts.tenant ?? 'default',
      ...(opts.tenantFilter !== undefined ? { tenantFilter: opts.tenantFilter } : {}),
      idempotencyKey: opts.idempotencyKey ?? 'pending',
      policy: policy ?? { kind: 'fail-fast' },
      ...(opts.window !== undefined ? { window: opts.window } : {}),
      ...(opts.shards !== undefined ? { shards: opts.shards } : {}),
      ...(opts.priorityKey !== undefined ? { priorityKey: opts.priorityKey } : {}),
      ...(opts.webhook !== undefined ? { webhook: opts.webhook } : {}),
    };
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
  async startReportPipeline(opts: StartReportOptions): Promise<StartedPipeline> {
    const input = this.validateReport(opts);
    await this.checkWebhook(input.webhook);
    const workflowId = pipelineWorkflowId(PipelineKind.report, input.tenant, input.idempotencyKey);
    const range = input.lastMonths ? `last ${input.lastMonths} months` : `${input.from} … ${input.to}`;
    return this.startPipeline(PipelineKind.report, 'reportPipelineWorkflow', workflowId, input, {
      summary: `report ${range}: ${input.measures.join(', ')} by ${input.groupBy.join(', ') || 'all'} (${input.policy.kind}, ${input.tier}, ${input.tenant})`,
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

  private async startPipeline(
    kind: PipelineKind,
    workflowType: string,
    workflowId: string,
    input: { tier: Tier; tenant: string; priorityKey?: number },
    meta: { summary: string },
  ): Promise<StartedPipeline> {
    try {
      const handle = await this.temporal.workflow.start(workflowType, {
        workflowId,
        taskQueue: taskQueueFor(input.tier, this.config.taskQueueSuffix),
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        // A finished run is not started again either: the key names one piece of work.
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: PipelineKindKey, value: kind },
          { key: TierKey, value: input.tier },
          { key: TenantKey, value: input.tenant },
        ],
        // Priority and fairness go with the run; the workflow passes them on to every activity
        // and child, and the memo carries the flow settings workflows cannot read from config.
        ...flowStartOptions(this.config, input.tier, input.tenant, input.priorityKey),
        staticSummary: meta.summary,
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
   * Starts a generic sub-job pipeline (`jobsPipelineWorkflow`) on its tier's queue: any
   * registered activities under a failure policy, then an optional completion webhook.
   */
  async startJobsPipeline(opts: StartJobsOptions): Promise<StartedPipeline> {
    const tier = opts.tier ?? Tier.default;
    const tenant = opts.tenant ?? 'default';
    const issues: InputIssue[] = [];
    if (!TENANT_PATTERN.test(tenant))
      issues.push({ path: 'tenant', message: 'must be 1-63 characters of a-z, 0-9, _ or -' });
    if (!IDEMPOTENCY_KEY_PATTERN.test(opts.idempotencyKey))
      issues.push({ path: 'idempotencyKey', message: 'must be 1-128 characters of A-Z, a-z, 0-9, ., _ or -' });
    if (!Array.isArray(opts.jobs) || opts.jobs.length === 0)
      issues.push({ path: 'jobs', message: 'at least one sub-job' });
    if (
      opts.priorityKey !== undefined &&
      !(Number.isInteger(opts.priorityKey) && opts.priorityKey >= 1 && opts.priorityKey <= 5)
    )
      issues.push({ path: 'priorityKey', message: 'must be a whole number from 1 to 5' });
    if (opts.pack !== undefined && !(Number.isInteger(opts.pack) && opts.pack >= 1 && opts.pack <= MAX_PACK))
      issues.push({ path: 'pack', message: `must be a whole number from 1 to ${MAX_PACK}` });
    if (issues.length > 0) throw new InvalidInputError(issues);
    const input: JobsPipelineInput = { ...opts, tier, tenant };
    const workflowId = pipelineWorkflowId(PipelineKind.jobs, tenant, opts.idempotencyKey);
    return this.startPipeline(
      PipelineKind.jobs,
      'jobsPipelineWorkflow',
      workflowId,
      { ...input, tier },
      {
        summary: opts.summary ?? `${opts.jobs.length} sub-jobs (${tier}, ${tenant})`,
      },
    );
  }

  /** Status, stage and (while running) the progress query's answer. */
  async getStatus(workflowId: string): Promise<PipelineState> {
    const handle = this.temporal.workflow.getHandle(workflowId);
    const d = await handle.describe();
    const attrs = d.typedSearchAttributes;
    let progress: PipelineProgress | undefined;
    if (d.status.name === 'RUNNING') {
      progress = await handle.query<PipelineProgress>('progress').catch(() => undefined);
    }
    return {
      workflowId,
      kind: attrs.get(PipelineKindKey),
      status: d.status.name as PipelineStatus,
      stage: progress?.stage ?? attrs.get(StageKey),
      progress,
      startTime: d.startTime?.toISOString(),
      closeTime: d.closeTime?.toISOString(),
    };
  }

  /** The `progress` query of a running pipeline. */
  async getProgress(workflowId: string): Promise<PipelineProgress> {
    return this.temporal.workflow.getHandle(workflowId).query<PipelineProgress>('progress');
  }

  /** Waits for the result; throws the workflow's failure. */
  async getResult<R = VideoPipelineResult>(workflowId: string): Promise<R> {
    return this.withFreshUrls((await this.temporal.workflow.getHandle(workflowId).result()) as R);
  }

  /** Requests cancellation; the pipeline stops its sub-jobs and removes partial outputs. */
  async cancel(workflowId: string): Promise<void> {
    await this.temporal.workflow.getHandle(workflowId).cancel();
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

/**
 * Start options every pipeline gets: `priority` (priority key from the tier unless given, the
 * tenant as fairness key, its weight from SLUICE_FAIRNESS_WEIGHTS) and the flow memo (promotion
 * ages from SLUICE_PROMOTION_AGE_SECONDS). Also used when the DLQ replays a run.
 */
export function flowStartOptions(
  config: SluiceConfig,
  tier: Tier,
  tenant: string,
  priorityKey?: number,
): { priority: { priorityKey: number; fairnessKey: string; fairnessWeight?: number }; memo: Record<string, FlowMemo> } {
  const weight = config.fairnessWeights[tenant];
  return {
    priority: {
      priorityKey: priorityKey ?? PRIORITY_KEY_BY_TIER[tier],
      fairnessKey: tenant,
      ...(weight !== undefined ? { fairnessWeight: weight } : {}),
    },
    memo: { [FLOW_MEMO_KEY]: { promoteAfterSeconds: config.promoteAfterSeconds } },
  };
}
