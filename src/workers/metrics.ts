/**
 * Worker metrics (prom-client) and the activity interceptor that records them. Retry rules (jitter,
 * attempt budgets) are not here: see src/activities/retry.ts.
 */
import type { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import v8 from 'node:v8';
import client from 'prom-client';
import { failureTypeOf } from '../activities/retry';
import type { Tier } from '../shared/constants';

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
  /** 1 per tier this process serves, labelled with its Worker Deployment and build ID. */
  buildInfo: client.Gauge<'tier' | 'deployment' | 'build_id'>;
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
    buildInfo: new client.Gauge({
      name: 'sluice_worker_build_info',
      help: 'Worker Deployment and build ID of each tier this worker serves (always 1)',
      labelNames: ['tier', 'deployment', 'build_id'],
      registers: [registry],
    }),
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

/** The sum of a counter's or gauge's values over all its label sets. */
export async function metricTotal(metric: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await metric.get()).values.reduce((n, v) => n + v.value, 0);
}

/** Records metrics around each activity attempt (the retry interceptor, outside it, sees the same failure). */
export class ActivityMetricsInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: Context,
    private readonly tier: Tier,
    private readonly metrics: WorkerMetrics,
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
      this.metrics.failed.inc({ ...labels, failure_type: failureTypeOf(err) });
      throw err;
    } finally {
      stop();
      this.metrics.inFlight.dec({ tier: this.tier });
    }
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
