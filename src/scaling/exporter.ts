/**
 * Backlog exporter: reads every tier × {workflow, activity} queue's stats at a fixed interval and
 * publishes them, with the planner's desired replicas per tier, as prom-client gauges on the
 * process's registry (the one WorkerHost serves on /metrics). KEDA, an HPA on an External
 * metric, Grafana and the alerts all read these names. With versioning on it also publishes each
 * Worker Deployment version's own backlog (one series per build ID), read as `sluice capacity`
 * reads it (./versions).
 */
import client from 'prom-client';
import type { ScalingConfig, SluiceConfig } from '../config';
import type { Logger } from '../logger';
import { TIER_SLA_SECONDS, TIERS, type Tier } from '../shared/constants';
import { planCapacity, type CapacityPlan, type PlannerSettings } from './planner';
import { describeAllQueues, tierLoad, type DescribeTaskQueueService, type QueueStats } from './stats';
import { versionBacklogs, type VersionBacklog, type VersionStatsService } from './versions';

/** What the exporter reads: queue stats, and per-version stats when versioning is on. */
export type BacklogStatsService = DescribeTaskQueueService & VersionStatsService;

/** Metric names the exporter publishes (deploy/ rules and the dashboard use these). */
export const BACKLOG_METRICS = {
  backlog: 'sluice_task_queue_backlog',
  backlogAge: 'sluice_task_queue_backlog_age_seconds',
  addRate: 'sluice_task_queue_add_rate',
  dispatchRate: 'sluice_task_queue_dispatch_rate',
  versionBacklog: 'sluice_task_queue_version_backlog',
  versionBacklogAge: 'sluice_task_queue_version_backlog_age_seconds',
  desiredReplicas: 'sluice_desired_replicas',
  pollErrors: 'sluice_backlog_poll_errors_total',
  lastPoll: 'sluice_backlog_last_poll_timestamp_seconds',
} as const;

/** Average task duration of a tier, observed by the caller (e.g. from a duration histogram). */
export interface ObservedDuration {
  avgSeconds: number;
  count: number;
}

/** Planner settings for a tier from config, with an observed average when there is one. */
export function plannerSettingsFor(
  tier: Tier,
  config: Pick<SluiceConfig, 'slots'> & { scaling: ScalingConfig },
  observed?: ObservedDuration,
): PlannerSettings {
  const s = config.scaling;
  const useObserved = observed !== undefined && observed.count > 0 && observed.avgSeconds > 0;
  return {
    slotsPerReplica: config.slots[tier],
    avgTaskSeconds: useObserved ? observed.avgSeconds : s.defaultTaskSeconds,
    avgTaskSource: useObserved
      ? `observed over ${observed.count} tasks`
      : 'SLUICE_SCALE_TASK_SECONDS default, nothing observed yet',
    drainTargetSeconds: s.targetSeconds ?? TIER_SLA_SECONDS[tier],
    reactionSeconds: s.reactionSeconds,
    buffer: s.buffer,
    minReplicas: s.minReplicas,
    maxReplicas: s.maxReplicas,
  };
}

/**
 * Average activity duration per tier from a registry's `sluice_activity_duration_seconds`
 * histogram (sum ÷ count). Tiers this process never ran are absent.
 */
export async function observedDurations(registry: client.Registry): Promise<Partial<Record<Tier, ObservedDuration>>> {
  const metric = registry.getSingleMetric('sluice_activity_duration_seconds');
  if (!metric) return {};
  const data = await metric.get();
  const acc: Partial<Record<Tier, { sum: number; count: number }>> = {};
  for (const v of data.values) {
    const tier = v.labels.tier as Tier | undefined;
    if (!tier) continue;
    const name = (v as { metricName?: string }).metricName ?? '';
    const entry = (acc[tier] ??= { sum: 0, count: 0 });
    if (name.endsWith('_sum')) entry.sum += v.value;
    else if (name.endsWith('_count')) entry.count += v.value;
  }
  const out: Partial<Record<Tier, ObservedDuration>> = {};
  for (const [tier, { sum, count }] of Object.entries(acc) as [Tier, { sum: number; count: number }][]) {
    if (count > 0) out[tier] = { avgSeconds: sum / count, count };
  }
  return out;
}

/** Options of {@link BacklogExporter}. */
export interface BacklogExporterOptions {
  service: BacklogStatsService;
  config: SluiceConfig;
  registry: client.Registry;
  log: Logger;
  tiers?: readonly Tier[];
  /** Observed average durations per tier; default: this registry's duration histogram. */
  durations?: () => Promise<Partial<Record<Tier, ObservedDuration>>>;
}

/** Publishes backlog gauges and desired replicas; {@link start} polls, {@link pollOnce} reads now. */
export class BacklogExporter {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private stopped = false;
  private readonly gauges;
  /** The plans of the last successful poll, by tier. */
  lastPlans: Partial<Record<Tier, CapacityPlan>> = {};

  constructor(private readonly opts: BacklogExporterOptions) {
    const registers = [opts.registry];
    const queueLabels = ['tier', 'task_queue', 'queue_type'] as const;
    const gauge = (name: string, help: string) =>
      (opts.registry.getSingleMetric(name) as client.Gauge<(typeof queueLabels)[number]> | undefined) ??
      new client.Gauge({ name, help, labelNames: queueLabels, registers });
    const versionLabels = [...queueLabels, 'deployment', 'build_id'] as const;
    const versionGauge = (name: string, help: string) =>
      (opts.registry.getSingleMetric(name) as client.Gauge<(typeof versionLabels)[number]> | undefined) ??
      new client.Gauge({ name, help, labelNames: versionLabels, registers });
    this.gauges = {
      backlog: gauge(BACKLOG_METRICS.backlog, 'Approximate tasks waiting in the task queue (describeTaskQueue)'),
      backlogAge: gauge(BACKLOG_METRICS.backlogAge, 'Age of the oldest waiting task in the task queue, seconds'),
      addRate: gauge(BACKLOG_METRICS.addRate, 'Tasks added to the task queue per second (30 s average)'),
      dispatchRate: gauge(
        BACKLOG_METRICS.dispatchRate,
        'Tasks dispatched from the task queue per second (30 s average)',
      ),
      versionBacklog: versionGauge(
        BACKLOG_METRICS.versionBacklog,
        "Approximate tasks waiting for one Worker Deployment version (build) of the tier's deployment",
      ),
      versionBacklogAge: versionGauge(
        BACKLOG_METRICS.versionBacklogAge,
        'Age of the oldest task waiting for one Worker Deployment version (build), seconds',
      ),
      desired:
        (opts.registry.getSingleMetric(BACKLOG_METRICS.desiredReplicas) as client.Gauge<'tier'> | undefined) ??
        new client.Gauge({
          name: BACKLOG_METRICS.desiredReplicas,
          help: 'Worker replicas the capacity planner wants for the tier',
          labelNames: ['tier'],
          registers,
        }),
      errors:
        (opts.registry.getSingleMetric(BACKLOG_METRICS.pollErrors) as client.Counter | undefined) ??
        new client.Counter({ name: BACKLOG_METRICS.pollErrors, help: 'Failed task-queue stats polls', registers }),
      lastPoll:
        (opts.registry.getSingleMetric(BACKLOG_METRICS.lastPoll) as client.Gauge | undefined) ??
        new client.Gauge({
          name: BACKLOG_METRICS.lastPoll,
          help: 'Unix time of the last successful task-queue stats poll',
          registers,
        }),
    };
  }

  /** Polls now, then every `SLUICE_SCALE_POLL_MS`. */
  start(): void {
    const interval = this.opts.config.scaling.pollMs;
    if (interval <= 0 || this.timer) return;
    const tick = () => {
      if (this.stopped) return;
      this.inFlight = this.pollOnce().then(
        () => undefined,
        (err: unknown) => {
          this.gauges.errors.inc();
          this.opts.log.warn({ err: (err as Error).message }, 'task-queue stats poll failed');
        },
      );
      void this.inFlight.finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, interval);
      });
    };
    tick();
  }

  /** Reads every queue once (and every version's backlog with versioning on), updates the gauges and returns the plans. */
  async pollOnce(): Promise<{ stats: QueueStats[]; plans: CapacityPlan[]; versions: VersionBacklog[] }> {
    const { config } = this.opts;
    const tiers = this.opts.tiers ?? TIERS;
    const stats = await describeAllQueues(this.opts.service, config.temporal.namespace, config.taskQueueSuffix, tiers);
    for (const s of stats) {
      const labels = { tier: s.tier, task_queue: s.taskQueue, queue_type: s.queueType };
      this.gauges.backlog.set(labels, s.backlog);
      this.gauges.backlogAge.set(labels, s.backlogAgeSeconds);
      this.gauges.addRate.set(labels, s.addRate);
      this.gauges.dispatchRate.set(labels, s.dispatchRate);
    }
    const versions = config.versioning.enabled
      ? await versionBacklogs(
          { service: this.opts.service, namespace: config.temporal.namespace, suffix: config.taskQueueSuffix },
          tiers,
        )
      : [];
    // A retired version's series go away with it: start from none at every poll.
    this.gauges.versionBacklog.reset();
    this.gauges.versionBacklogAge.reset();
    for (const v of versions) {
      const labels = {
        tier: v.tier,
        task_queue: v.taskQueue,
        queue_type: v.queueType,
        deployment: v.deploymentName,
        build_id: v.buildId,
      };
      this.gauges.versionBacklog.set(labels, v.backlog);
      this.gauges.versionBacklogAge.set(labels, v.backlogAgeSeconds);
    }
    const durations = await (this.opts.durations ?? (() => observedDurations(this.opts.registry)))();
    const plans = tiers.map((tier) =>
      planCapacity(tierLoad(tier, stats), plannerSettingsFor(tier, config, durations[tier])),
    );
    for (const plan of plans) {
      this.gauges.desired.set({ tier: plan.tier }, plan.desiredReplicas);
      this.lastPlans[plan.tier] = plan;
    }
    this.gauges.lastPoll.set(Date.now() / 1000);
    return { stats, plans, versions };
  }

  /** Stops polling; waits for a poll in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }
}
