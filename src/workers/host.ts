/**
 * A worker process: one Temporal Worker per tier it serves, sharing one connection, one
 * workflow bundle, one ffmpeg limiter and one HTTP port for /metrics, /healthz and /readyz.
 * Drains gracefully: stop polling, let in-flight activities finish within the grace time,
 * then cancel the rest.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { NativeConnection, Worker, type InjectedSinks, type WorkflowBundleOption } from '@temporalio/worker';
import type { Context } from '@temporalio/activity';
import Bottleneck from 'bottleneck';
import { createActivities } from '../activities';
import { createNotifyActivities, type NotifyDeps } from '../activities/notify';
import { createPackActivities } from '../activities/pack';
import { ActivityRetryInterceptor, ActivityRetryPolicy } from '../activities/retry';
import { registerDlqDepthGauge, registerDlqWriteFailureCounter } from '../dlq/metrics';
import { openDlqStore } from '../dlq/store';
import { RunGate, RunGateInterceptor } from '../ratelimit/run-gate';
import { WeightedSlotPool, splitSlots } from '../ratelimit/slot-pool';
import { WebhookLimiter } from '../ratelimit/webhook-limiter';
import { registerRateLimiterMetrics } from '../ratelimit/metrics';
import type { FlowSinks } from '../workflows/flow-control';
import {
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  makeWorkflowExporter,
  type OpenTelemetrySinks,
} from '@temporalio/interceptors-opentelemetry';
import { flushTracing, startTracing } from '../tracing';
import { resolveFfmpeg } from '../activities/media/ffmpeg';
import { createReportSource } from '../data';
import type { SluiceConfig } from '../config';
import { connectionSettings } from '../connection';
import { dataConverterFor } from '../security/codec';
import type { Logger } from '../logger';
import { deploymentNameFor, taskQueueFor, type Tier } from '../shared/constants';
import { BacklogExporter } from '../scaling/exporter';
import { openStorage, type Storage } from '../storage';
import { claimScratch, type ScratchClaim } from '../storage/scratch';
import { armCrashHooks } from '../crash-point';
import { CrashPointInterceptor, withCrashPoints } from './crash-hooks';
import { RangeBridge } from '../storage/range-bridge';
import { bundleWorkflows } from './bundle';
import { buildIdentity, registerVersion, workerDeploymentOptionsFor, type BuildIdentity } from './versioning';
import {
  ActivityMetricsInterceptor,
  createWorkerMetrics,
  metricTotal,
  registerStorageMeter,
  type WorkerMetrics,
} from './metrics';

export interface WorkerHostOptions {
  config: SluiceConfig;
  tiers: readonly Tier[];
  log: Logger;
  /** Activities to register instead of the real ones (tests). */
  activities?: object;
  /** Reuse a bundle across hosts in one process (tests, benchmarks). */
  workflowBundle?: WorkflowBundleOption;
  /** Serve /metrics etc. @default true */
  serveHttp?: boolean;
  /** Publish task-queue backlog gauges on this host's /metrics (SLUICE_SCALE_POLL_MS > 0). @default true */
  exportBacklog?: boolean;
  /** A dependency that must be up for /readyz to answer 200 (`sluice up`: its dev server). @default none */
  dependencyReady?: () => boolean;
}

/** The workflows entry next to this file: `.ts` under vitest/tsx, `.js` when compiled. */
const WORKFLOWS_PATH = path.join(__dirname, '..', 'workflows', `index${path.extname(__filename)}`);
/** Prebuilt bundle written by `npm run build` (used by the container image); bundling at start is the fallback. */
const PREBUILT_BUNDLE = path.resolve(__dirname, '..', 'workflow-bundle.js');

/** Longest wait at shutdown for a moment with no activity poll in flight (see untilNoPollInFlight). */
const QUIESCE_MAX_MS = 2_000;

/** The workflow bundle: prebuilt if present next to the compiled code, else bundled now. */
export async function loadWorkflowBundle(): Promise<WorkflowBundleOption> {
  if (WORKFLOWS_PATH.endsWith('.js') && fs.existsSync(PREBUILT_BUNDLE)) return { codePath: PREBUILT_BUNDLE };
  return bundleWorkflows(WORKFLOWS_PATH);
}

export class WorkerHost {
  readonly metrics: WorkerMetrics = createWorkerMetrics();
  private workers: { tier: Tier; worker: Worker }[] = [];
  private connection: NativeConnection | undefined;
  /** This host's scratch folder under SLUICE_SCRATCH_DIR (see storage/scratch.ts). */
  private scratch: ScratchClaim | undefined;
  private server: http.Server | undefined;
  private running: Promise<void> | undefined;
  private draining = false;
  private pool: WeightedSlotPool | undefined;
  private notify: NotifyDeps | undefined;
  /** Aborted shortly before the shutdown grace ends; long activities stop at a safe point on it. */
  private readonly drain = new AbortController();
  private drainTimer: NodeJS.Timeout | undefined;
  /** Serves store objects to ffmpeg by byte ranges; closed at shutdown. */
  private readonly bridge = new RangeBridge();
  /** Backlog exporter publishing on {@link metrics}' registry; undefined when off. */
  exporter: BacklogExporter | undefined;
  /** This process's build ID (Worker Deployment Versioning) and its source. */
  build: BuildIdentity | undefined;
  /** Per tier: a SLUICE_BUILD_ID mismatch with the tier's other version, logged at start. */
  readonly versionMismatches: Partial<Record<Tier, string>> = {};

  private constructor(private readonly opts: WorkerHostOptions) {}

  /** Connects, creates one Worker per tier and starts polling. */
  static async start(opts: WorkerHostOptions): Promise<WorkerHost> {
    const host = new WorkerHost(opts);
    await host.init();
    return host;
  }

  private async init(): Promise<void> {
    const { config, log } = this.opts;
    // Tracing (OTEL_EXPORTER_OTLP_ENDPOINT): installed before any activity or workflow runs.
    const tracing = startTracing(config.tracing, 'sluice-worker');
    if (tracing) log.info({ service: tracing.serviceName }, 'tracing on (OTLP)');
    // Test builds only (SLUICE_TEST_CRASH_HOOKS): SIGKILL at a named crash point, once.
    if (config.testCrashHooks) armCrashHooks(config.testCrashHooks);
    // This host's own scratch folder; what killed workers on this host left behind goes first.
    this.scratch = await claimScratch(config.storage.scratchDir);
    if (this.scratch.swept.length > 0) {
      log.warn(
        { swept: this.scratch.swept, killed: this.scratch.killed },
        'removed the scratch of worker processes that are gone (and stopped what they left running)',
      );
    }
    const settings = connectionSettings(config);
    this.connection = await NativeConnection.connect({
      address: settings.address,
      // `false` must stay false: undefined would let the SDK turn TLS on for an API key (TEMPORAL_TLS=false).
      tls: settings.tls,
      apiKey: settings.apiKey,
    });
    const bundle = this.opts.workflowBundle ?? (await loadWorkflowBundle());
    const build = buildIdentity(config, bundle);
    this.build = build;
    // Payload encryption when keys are configured: the same converter as the client's.
    const dataConverter = dataConverterFor(config.codec);
    // Webhook limiter and dead-letter store: always registered, so every pipeline's failure path
    // can record its dead letter, also on hosts given their own activities (tests).
    this.notify = this.notifyDeps();
    registerDlqDepthGauge(this.metrics.registry, this.notify.deadLetters!);
    const dlqWriteFailures = registerDlqWriteFailureCounter(this.metrics.registry);
    registerRateLimiterMetrics(this.metrics.registry, this.notify.limiter);
    const registered = this.opts.activities
      ? { ...createNotifyActivities(this.notify), ...this.opts.activities }
      : this.realActivities(this.notify);
    const retry = new ActivityRetryPolicy({
      baseMs: config.retry.baseMs,
      capMs: config.retry.capMs,
      byActivity: config.retry.byActivity,
    });
    // The pack runner runs any of them, several tiny sub-jobs per activity task (fan-out `pack`).
    const activities = {
      ...registered,
      ...createPackActivities({ activities: registered as Record<string, unknown>, retry }),
    };
    // One weighted slot pool for the tiers this process serves (see src/ratelimit/slot-pool.ts),
    // holding `prefetch` tasks more than may run; the gate lets `slots` of them run at once.
    const slots = config.slotPool.total ?? this.opts.tiers.reduce((n, t) => n + config.slots[t], 0);
    this.pool = new WeightedSlotPool({
      total: slots + config.prefetch,
      tiers: this.opts.tiers,
      weights: config.slotPool.weights,
    });
    const gate = config.prefetch > 0 ? new RunGate(slots) : undefined;
    const runShares = splitSlots(slots, this.opts.tiers, config.slotPool.weights);
    const sinks: InjectedSinks<FlowSinks & OpenTelemetrySinks> = {
      // Spans of traced runs (src/workflows/tracing.ts); untraced runs never call it.
      exporter: tracing
        ? makeWorkflowExporter(tracing.processor, tracing.resource)
        : { export: { fn: () => undefined, callDuringReplay: false } },
      flow: {
        promoted: {
          fn: (_info, e) =>
            this.metrics.promotions.inc({ from_tier: e.from, to_tier: e.to, activity_type: e.activityType }),
          callDuringReplay: false,
        },
        deadLetterLost: {
          fn: (_info, e) => dlqWriteFailures.inc({ kind: e.kind, workflow_type: e.workflowType }),
          callDuringReplay: false,
        },
      },
    };
    const prefetched = (tier: Tier) => (delta: number) =>
      delta > 0 ? this.metrics.prefetched.inc({ tier }) : this.metrics.prefetched.dec({ tier });
    for (const tier of this.opts.tiers) {
      const taskQueue = taskQueueFor(tier, this.opts.config.taskQueueSuffix);
      const worker = await Worker.create({
        connection: this.connection,
        namespace: settings.namespace,
        taskQueue,
        workflowBundle: bundle,
        workerDeploymentOptions: workerDeploymentOptionsFor(tier, config, build.buildId),
        activities,
        dataConverter,
        tuner: {
          activityTaskSlotSupplier: this.pool.workerSupplierFor(tier),
          workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 40 },
          localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 100 },
          nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 10 },
        },
        // Each poller holds a reserved slot while it polls: never more pollers than the pool.
        activityTaskPollerBehavior: { type: 'simple-maximum', maximum: Math.max(1, Math.min(10, this.pool.total)) },
        maxTaskQueueActivitiesPerSecond: config.maxTaskQueueActivitiesPerSecond,
        // No eager activities: they would skip the server's priority/fairness ordering, and with a
        // custom slot supplier a workflow task scheduling a few hundred activities hangs (SDK 1.24).
        maxEagerActivityReservationsPerWorkflowTask: 0,
        sinks,
        shutdownGraceTime: config.shutdownGraceMs,
        maxCachedWorkflows: config.maxCachedWorkflows,
        interceptors: {
          activity: [
            // Outermost: one span per attempt, a child of the workflow's StartActivity span,
            // covering the wait at the gate and the final outcome after the retry rules.
            ...(tracing
              ? [
                  (ctx: Context) => ({
                    inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
                    outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
                  }),
                ]
              : []),
            // Then: a held task waits at the gate before its attempt is timed.
            ...(gate
              ? [(ctx: Context) => ({ inbound: new RunGateInterceptor(ctx, gate, tier, prefetched(tier)) })]
              : []),
            // Retries outside metrics: the metrics see each attempt's own failure, as it was thrown.
            (ctx: Context) => ({
              inbound: new ActivityRetryInterceptor(ctx, retry, (activityType, ms) =>
                this.metrics.retryDelay.observe({ activity_type: activityType }, ms / 1000),
              ),
            }),
            (ctx: Context) => ({ inbound: new ActivityMetricsInterceptor(ctx, tier, this.metrics) }),
            // Innermost: `<activity>:start` / `:end` crash points around the activity itself.
            ...(config.testCrashHooks ? [(ctx: Context) => ({ inbound: new CrashPointInterceptor(ctx) })] : []),
          ],
        },
      });
      const share = runShares[tier];
      this.metrics.slots.set({ tier }, share);
      this.workers.push({ tier, worker });
      log.info(
        {
          tier,
          taskQueue,
          slots: share,
          prefetch: config.prefetch,
          poolTotal: this.pool.total,
          buildId: build.buildId,
        },
        'worker created',
      );
    }
    this.running = Promise.all(this.workers.map(({ worker }) => worker.run())).then(() => undefined);
    if (config.versioning.enabled) await this.registerVersions(build, settings.namespace);
    if (this.opts.exportBacklog !== false && config.scaling.pollMs > 0) {
      this.exporter = new BacklogExporter({
        service: this.connection.workflowService,
        config,
        registry: this.metrics.registry,
        log,
      });
      this.exporter.start();
    }
    if (this.opts.serveHttp !== false) await this.listen(config.metricsPort);
  }

  /** Each tier's version: exported as build info, made current per SLUICE_SET_CURRENT_VERSION. */
  private async registerVersions(build: BuildIdentity, namespace: string): Promise<void> {
    const { config, log } = this.opts;
    await Promise.all(
      this.opts.tiers.map(async (tier) => {
        const deploymentName = deploymentNameFor(tier, config.taskQueueSuffix);
        this.metrics.buildInfo.set({ tier, deployment: deploymentName, build_id: build.buildId }, 1);
        const outcome = await registerVersion({
          service: this.connection!.workflowService,
          namespace,
          deploymentName,
          self: build,
          setCurrent: config.versioning.setCurrent,
          log,
        });
        if (outcome.mismatch) this.versionMismatches[tier] = outcome.mismatch;
      }),
    );
  }

  private notifyDeps(): NotifyDeps {
    const { config, log } = this.opts;
    const w = config.webhook;
    return {
      limiter: new WebhookLimiter({
        ratePerSecond: w.ratePerSecond,
        localRatePerSecond: w.localRatePerSecond,
        concurrency: w.concurrency,
        tenantRates: w.tenantRates,
        defaultTenantRatePerSecond: w.defaultTenantRatePerSecond,
        redisUrl: config.redisUrl,
        redisFallback: w.redisFallback,
        fallbackRatePerSecond: w.fallbackRatePerSecond,
        id: w.limiterId,
        log,
      }),
      secret: w.secret,
      timeoutMs: w.timeoutMs,
      allow: w.allow,
      deadLetters: openDlqStore(config),
    };
  }

  private realActivities(notify: NotifyDeps): object {
    const { config, log } = this.opts;
    const binaries = resolveFfmpeg({ ffmpeg: config.ffmpegPath, ffprobe: config.ffprobePath });
    log.info({ ffmpeg: binaries.ffmpeg, source: binaries.source }, 'ffmpeg');
    const storage = this.openStorage();
    return createActivities({
      notify,
      media: {
        binaries,
        mediaRoot: config.mediaRoot,
        storage,
        bridge: this.bridge,
        limiter: new Bottleneck({ maxConcurrent: config.ffmpegConcurrency }),
        shutdownSignal: this.drain.signal,
      },
      reports: { source: createReportSource(config, storage), storage },
    });
  }

  /** The configured store, its bytes counted in `sluice_storage_bytes_total{direction}`. */
  private openStorage(): Storage {
    const { config } = this.opts;
    const scratchDir = this.scratch?.dir ?? config.storage.scratchDir;
    const storage = openStorage(
      { ...config.storage, scratchDir },
      { outputDir: config.outputDir, partitionsDir: config.reports.partitionsDir },
    );
    this.opts.log.info({ storage: config.storage.url, scratch: scratchDir }, 'storage');
    registerStorageMeter(this.metrics.registry, storage);
    return config.testCrashHooks ? withCrashPoints(storage) : storage;
  }

  /** Ready: connected, and every tier's worker is polling. False while draining. */
  isReady(): boolean {
    return (
      !this.draining &&
      this.workers.length > 0 &&
      this.workers.every(({ worker }) => worker.getState() === 'RUNNING') &&
      (this.opts.dependencyReady?.() ?? true)
    );
  }

  /** Task queues this host polls. */
  get taskQueues(): string[] {
    return this.workers.map(({ tier }) => taskQueueFor(tier, this.opts.config.taskQueueSuffix));
  }

  /** Port of the HTTP server (useful when configured as 0). */
  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  private listen(port: number): Promise<void> {
    this.server = http.createServer((req, res) => {
      void this.handle(req, res);
    });
    return new Promise((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, '0.0.0.0', () => resolve());
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      res.end(await this.metrics.registry.metrics());
    } else if (url === '/healthz') {
      const failed = this.workers.some(({ worker }) => worker.getState() === 'FAILED');
      res.writeHead(failed ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: !failed }));
    } else if (url === '/readyz') {
      const ready = this.isReady();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          ready,
          // Which process answered: a supervisor (or a test) that started it on this port checks it.
          pid: process.pid,
          workers: this.workers.map(({ tier, worker }) => ({ tier, state: worker.getState() })),
        }),
      );
    } else {
      res.writeHead(404).end();
    }
  }

  /** Resolves when every worker has stopped (after {@link shutdown} or a fatal error). */
  async done(): Promise<void> {
    await this.running;
  }

  /**
   * Waits, at most `maxMs`, for a moment when every slot of a one-tier process holds a task, and
   * so no activity poll is in flight. The server (1.29) cannot complete a poll that a shutting-down
   * worker cancels: a task it hands to such a poll is lost until its timeout, then retried. Under
   * a backlog (a recycled worker) that moment comes within a task's time; on an idle queue it may
   * not come, but then no task is on its way to the poll either.
   */
  private async untilNoPollInFlight(maxMs: number): Promise<void> {
    const pool = this.pool;
    if (!pool?.singleTier || maxMs <= 0) return;
    const held = async () => (await metricTotal(this.metrics.inFlight)) + (await metricTotal(this.metrics.prefetched));
    const started = Date.now();
    while (Date.now() - started < maxMs) {
      // Shutdown follows in the same tick: no task can finish (and free a slot) in between.
      if ((await held()) >= pool.total) {
        this.opts.log.info({ waitedMs: Date.now() - started }, 'every slot busy: no activity poll in flight');
        return;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    this.opts.log.info({ waitedMs: maxMs }, 'free slots at shutdown: their activity polls are cancelled');
  }

  /**
   * Graceful drain: readiness turns false, polling stops, in-flight activities get
   * `shutdownGraceTime`, then the rest are cancelled. Resolves when everything is closed.
   */
  async shutdown(): Promise<void> {
    if (!this.draining) {
      this.draining = true;
      const graceMs = this.opts.config.shutdownGraceMs;
      // Signal activities a little before the SDK cancels them, so they can stop at a safe
      // point and hand their progress on (the SDK has no worker-shutdown signal of its own).
      const leadMs = Math.min(5_000, Math.max(250, graceMs * 0.2));
      this.drainTimer = setTimeout(
        () => this.drain.abort(new Error('worker shutting down')),
        Math.max(0, graceMs - leadMs),
      );
      this.opts.log.info({ graceMs, signalAfterMs: Math.max(0, graceMs - leadMs) }, 'draining workers');
      await this.untilNoPollInFlight(Math.min(QUIESCE_MAX_MS, graceMs / 10));
      for (const { worker } of this.workers) {
        if (worker.getState() === 'RUNNING') worker.shutdown();
      }
    }
    try {
      await this.running;
    } finally {
      clearTimeout(this.drainTimer);
      await this.bridge.close();
      await this.exporter?.stop();
      this.pool?.close();
      await this.notify?.limiter.close();
      await this.notify?.deadLetters?.close();
      await this.connection?.close();
      this.connection = undefined;
      await this.scratch?.release();
      // Spans of the drained activities and finished runs leave before the process does.
      await flushTracing().catch((err: unknown) =>
        this.opts.log.warn({ err }, 'tracing: spans not exported at shutdown'),
      );
      await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
      this.server = undefined;
    }
  }
}
