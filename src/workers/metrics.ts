/**
 * Worker metrics (prom-client) and the activity interceptor that records them. The same
 * interceptor turns retryable failures into failures with a fully jittered `nextRetryDelay`,
 * because Temporal's RetryPolicy has no jitter.
 */
import { ApplicationFailure, CancelledFailure, type Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import v8 from 'node:v8';
import client from 'prom-client';
import type { ActivityRetryConfig } from '../config';
import { FailureType, isNonRetryableFailureType, type Tier } from '../shared/constants';

export interface WorkerMetrics {
  registry: client.Registry;
  started: client.Counter<'activity_type' | 'tier'>;
  completed: client.Counter<'activity_type' | 'tier'>;
  failed: client.Counter<'activity_type' | 'tier' | 'failure_type'>;
  duration: client.Histogram<'activity_type' | 'tier'>;
  inFlight: client.Gauge<'tier'>;
  /** Tasks held by the process beyond its slots, waiting to run (SLUICE_PREFETCH). */
  prefetched: client.Gauge<'tier'>;
  slots: client.Gauge<'tier'>;
  /** Sub-jobs dispatched again on a more urgent tier after waiting too long (age-based promotion). */
  promotions: client.Counter<'from_tier' | 'to_tier' | 'activity_type'>;
  /** Attempts that ended with a retry delay chosen by the worker (full jitter or Retry-After). */
  retryDelay: client.Histogram<'activity_type'>;
}

/** A registry with Sluice's worker metrics and Node's default process metrics. */
export function createWorkerMetrics(): WorkerMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'sluice_' });
  new client.Gauge({
    name: 'sluice_v8_heap_limit_bytes',
    help: "V8's heap size limit of the worker's main thread (set by WORKER_V8_FLAGS through NODE_OPTIONS)",
    registers: [registry],
    collect() {
      this.set(v8.getHeapStatistics().heap_size_limit);
    },
  });
  const labels = ['activity_type', 'tier'] as const;
  return {
    registry,
    started: new client.Counter({
      name: 'sluice_activities_started_total',
      help: 'Activity attempts started',
      labelNames: labels,
      registers: [registry],
    }),
    completed: new client.Counter({
      name: 'sluice_activities_completed_total',
      help: 'Activity attempts completed',
      labelNames: labels,
      registers: [registry],
    }),
    failed: new client.Counter({
      name: 'sluice_activities_failed_total',
      help: 'Activity attempts failed (including cancelled)',
      labelNames: [...labels, 'failure_type'],
      registers: [registry],
    }),
    duration: new client.Histogram({
      name: 'sluice_activity_duration_seconds',
      help: 'Activity attempt duration',
      labelNames: labels,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600],
      registers: [registry],
    }),
    inFlight: new client.Gauge({
      name: 'sluice_activities_in_flight',
      help: 'Activities running now',
      labelNames: ['tier'],
      registers: [registry],
    }),
    prefetched: new client.Gauge({
      name: 'sluice_activities_prefetched',
      help: 'Activity tasks this process holds beyond its slots, waiting for one to free (SLUICE_PREFETCH)',
      labelNames: ['tier'],
      registers: [registry],
    }),
    slots: new client.Gauge({
      name: 'sluice_activity_slots',
      help: 'Activity slots configured',
      labelNames: ['tier'],
      registers: [registry],
    }),
    promotions: new client.Counter({
      name: 'sluice_promotions_total',
      help: 'Sub-jobs re-dispatched on the next tier up after waiting longer than their promotion age',
      labelNames: ['from_tier', 'to_tier', 'activity_type'],
      registers: [registry],
    }),
    retryDelay: new client.Histogram({
      name: 'sluice_retry_delay_seconds',
      help: 'Delay before the next attempt, as set by the worker (jittered backoff or Retry-After)',
      labelNames: ['activity_type'],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
  };
}

export interface RetryJitter {
  /** Base delay of the first retry. @default 1000 ms */
  baseMs: number;
  /** Cap on any delay. @default 30000 ms */
  capMs: number;
  /** Per-activity-type overrides and attempt budgets (SLUICE_RETRY_POLICIES). */
  byActivity?: Readonly<Record<string, ActivityRetryConfig>>;
}

/** Full jitter: a uniform delay in [0, min(cap, base·2^(attempt-1))]. */
export function fullJitterDelayMs(attempt: number, jitter: RetryJitter, random: () => number = Math.random): number {
  const ceiling = Math.min(jitter.capMs, jitter.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/** The sum of a counter's or gauge's values over all its label sets. */
export async function metricTotal(metric: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await metric.get()).values.reduce((n, v) => n + v.value, 0);
}

/** The full-jitter delay before `attempt` + 1 of `activityType`, with its per-type base and cap. */
export function jitteredRetryDelayMs(attempt: number, jitter: RetryJitter, activityType: string): number {
  const policy = jitter.byActivity?.[activityType];
  return fullJitterDelayMs(attempt, { baseMs: policy?.baseMs ?? jitter.baseMs, capMs: policy?.capMs ?? jitter.capMs });
}

/** False for failures no retry can fix: marked non-retryable, or of a non-retryable type. */
export function isRetryableFailure(err: unknown): boolean {
  if (err instanceof ApplicationFailure) return !err.nonRetryable && !isNonRetryableFailureType(err.type);
  return true;
}

/**
 * The message of a RetriesExhausted failure: the activity type, the budget spent and the last
 * failure, with that failure's own type when it has one (`last (Timeout): …`).
 */
export function retriesExhaustedMessage(activityType: string, attempts: number, budget: number, err: unknown): string {
  const lastType = err instanceof ApplicationFailure && err.type ? ` (${err.type})` : '';
  return `${activityType}: ${attempts} of ${budget} attempts failed; last${lastType}: ${err instanceof Error ? err.message : String(err)}`;
}

function failureType(err: unknown): string {
  if (err instanceof ApplicationFailure) return err.type ?? 'ApplicationFailure';
  if (err instanceof CancelledFailure) return 'Cancelled';
  return err instanceof Error ? err.name : 'Error';
}

/** Records metrics around each activity attempt and jitters retryable failures. */
export class ActivityMetricsInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: Context,
    private readonly tier: Tier,
    private readonly metrics: WorkerMetrics,
    private readonly jitter: RetryJitter,
  ) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const labels = { activity_type: this.ctx.info.activityType, tier: this.tier };
    this.metrics.started.inc(labels);
    this.metrics.inFlight.inc({ tier: this.tier });
    const stop = this.metrics.duration.startTimer(labels);
    try {
      const result = await next(input);
      this.metrics.completed.inc(labels);
      return result;
    } catch (err) {
      this.metrics.failed.inc({ ...labels, failure_type: failureType(err) });
      throw this.withJitter(err);
    } finally {
      stop();
      this.metrics.inFlight.dec({ tier: this.tier });
    }
  }

  private withJitter(err: unknown): unknown {
    if (err instanceof CancelledFailure || !isRetryableFailure(err)) return err;
    const { activityType, attempt } = this.ctx.info;
    const policy = this.jitter.byActivity?.[activityType];
    if (policy?.maxAttempts !== undefined && attempt >= policy.maxAttempts) {
      // The configured budget is spent: stop here, whatever the workflow's own limit says.
      return ApplicationFailure.create({
        type: FailureType.RetriesExhausted,
        nonRetryable: true,
        message: retriesExhaustedMessage(activityType, attempt, policy.maxAttempts, err),
        cause: err instanceof Error ? err : undefined,
        details: [{ attempts: attempt }],
      });
    }
    if (err instanceof ApplicationFailure && err.nextRetryDelay != null) {
      // The activity knows better (a Retry-After header): keep its delay.
      return err;
    }
    const delayMs = jitteredRetryDelayMs(attempt, this.jitter, activityType);
    this.metrics.retryDelay.observe({ activity_type: activityType }, delayMs / 1000);
    return ApplicationFailure.create({
      type: failureType(err),
      message: err instanceof Error ? err.message : String(err),
      cause: err instanceof Error ? err : undefined,
      details: err instanceof ApplicationFailure ? (err.details as unknown[] | undefined) : undefined,
      nextRetryDelay: delayMs,
    });
  }
}

/** `sluice_storage_bytes_total{direction="read"|"written"}`: bytes this process moved through the store. */
export function registerStorageMeter(
  registry: client.Registry,
  storage: { meter: { read: number; written: number } },
): void {
  const seen = { read: 0, written: 0 };
  new client.Counter({
    name: 'sluice_storage_bytes_total',
    help: 'Bytes this process read from and wrote to the object store (SLUICE_STORAGE_URL).',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      for (const direction of ['read', 'written'] as const) {
        const now = storage.meter[direction];
        if (now > seen[direction]) this.inc({ direction }, now - seen[direction]);
        seen[direction] = now;
      }
    },
  });
}
