/**
 * Local autoscaler: the embedded default for horizontal scaling on one machine. Runs worker
 * child processes (`node bin/sluice worker --tiers <tier>`) per tier, between min and max, and
 * each poll interval acts on the capacity planner's decision:
 *
 * - scale-up waits for a stabilization window: a higher recommendation must still hold when the
 *   queue is read again after `upStabilizationMs`; it then goes to the lowest recommendation seen
 *   in that window;
 * - scale-down waits for a cooldown after the last scaling action and goes to the highest
 *   recommendation seen during the cooldown (HPA's scale-down stabilization), so it never flaps;
 * - scale-down sends SIGTERM and waits for the worker to drain (it stops polling, finishes
 *   in-flight activities within SLUICE_SHUTDOWN_GRACE_MS and exits 0): nothing fails or is lost;
 * - a worker that exits by itself (recycled after SLUICE_WORKER_MAX_TASKS, or crashed) is replaced;
 * - the last worker of a tier is never stopped while an activity runs on it (its /metrics shows
 *   `sluice_activities_in_flight` > 0, or it does not answer): backlog alone cannot see running
 *   work, and 1 → 0 would cancel it once the grace time ran out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import client from 'prom-client';
import type { SluiceConfig } from '../config';
import { freePort } from '../devserver/dev-server';
import type { Logger } from '../logger';
import { type Tier } from '../shared/constants';
import { workerProcessEnv } from '../shared/node-options';
import { BacklogExporter, type BacklogStatsService, type ObservedDuration } from './exporter';
import type { CapacityPlan } from './planner';
import { mergeDurations, scrapeDurationTotals, scrapeInFlight } from './scrape';

/** What the autoscaler reports as it works (the demo and the bench print these). */
export type AutoscalerEvent =
  | { type: 'plan'; at: number; tier: Tier; plan: CapacityPlan; replicas: number }
  | { type: 'scale-up' | 'scale-down'; at: number; tier: Tier; from: number; to: number; reason: string }
  | { type: 'started'; at: number; tier: Tier; pid: number; port: number }
  | {
      type: 'exited';
      at: number;
      tier: Tier;
      pid: number;
      code: number | null;
      signal: string | null;
      drained: boolean;
    }
  | { type: 'replaced'; at: number; tier: Tier; pid: number; reason: 'recycled' | 'crashed' }
  | { type: 'held'; at: number; tier: Tier; pid: number; inFlight: number | undefined };

/** Starts a worker process for a tier; the default runs `node bin/sluice worker --tiers <tier>`. */
export type SpawnWorker = (tier: Tier, env: NodeJS.ProcessEnv) => ChildProcess;

/** Options of {@link LocalAutoscaler}. */
export interface LocalAutoscalerOptions {
  config: SluiceConfig;
  tiers: readonly Tier[];
  log: Logger;
  /** Where task-queue stats come from (a client's workflowService). */
  service: BacklogStatsService;
  /** Environment the workers inherit (config travels this way). @default process.env */
  baseEnv?: NodeJS.ProcessEnv;
  spawnWorker?: SpawnWorker;
  onEvent?: (event: AutoscalerEvent) => void;
  /** Serve this autoscaler's /metrics (backlog, desired and current replicas) on SLUICE_METRICS_PORT. @default true */
  serveHttp?: boolean;
}

interface WorkerChild {
  tier: Tier;
  proc: ChildProcess;
  port: number;
  draining: boolean;
  exited: Promise<void>;
}

interface TierState {
  /** Planner recommendations with their time, newest last. */
  recs: { at: number; n: number }[];
  /** When a recommendation above the current count was first seen. */
  upSince: number | undefined;
  lastScaleAt: number;
}

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'sluice');

/** The default worker command: the compiled CLI, one tier per process. */
export const defaultSpawnWorker: SpawnWorker = (tier, env) =>
  spawn(process.execPath, [BIN, 'worker', '--tiers', tier], { env, stdio: ['ignore', 'inherit', 'inherit'] });

/**
 * Worker child processes per tier, scaled between `SLUICE_SCALE_MIN` and `SLUICE_SCALE_MAX` on the
 * capacity planner's answer; see the module comment for the stabilization, cooldown and drain rules.
 */
export class LocalAutoscaler {
  private readonly children = new Set<WorkerChild>();
  private readonly state = new Map<Tier, TierState>();
  private readonly registry = new client.Registry();
  private readonly exporter: BacklogExporter;
  private readonly replicasGauge: client.Gauge<'tier'>;
  private readonly eventsCounter: client.Counter<'tier' | 'action'>;
  /** Last observed average durations per tier (kept when the workers that saw them are gone). */
  private durations: Partial<Record<Tier, ObservedDuration>> = {};
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /** The control step in progress (it may outlive {@link ticking} when it hangs). */
  private step: Promise<number> | undefined;
  private stopping = false;
  private server: http.Server | undefined;
  /** If this process exits without {@link stop} (a crash, a test runner tearing down), no worker is orphaned. */
  private readonly onExit = () => {
    for (const c of this.children) c.proc.kill('SIGTERM');
  };

  constructor(private readonly opts: LocalAutoscalerOptions) {
    this.exporter = new BacklogExporter({
      service: opts.service,
      config: opts.config,
      registry: this.registry,
      log: opts.log,
      tiers: opts.tiers,
      durations: () => this.observe(),
    });
    this.replicasGauge = new client.Gauge({
      name: 'sluice_autoscaler_replicas',
      help: 'Worker processes the local autoscaler runs per tier (not counting draining ones)',
      labelNames: ['tier'],
      registers: [this.registry],
    });
    this.eventsCounter = new client.Counter({
      name: 'sluice_autoscaler_scale_events_total',
      help: 'Scaling actions of the local autoscaler',
      labelNames: ['tier', 'action'],
      registers: [this.registry],
    });
    for (const tier of opts.tiers) this.state.set(tier, { recs: [], upSince: undefined, lastScaleAt: 0 });
  }

  /** Starts the minimum number of workers per tier and the control loop. */
  async start(): Promise<void> {
    process.once('exit', this.onExit);
    const min = Math.max(0, this.opts.config.scaling.minReplicas);
    for (const tier of this.opts.tiers) {
      for (let i = 0; i < min; i++) await this.spawnOne(tier);
    }
    if (this.opts.serveHttp !== false) await this.listen(this.opts.config.metricsPort);
    this.schedule(0);
  }

  /** Worker processes per tier, not counting draining ones. */
  replicas(tier: Tier): number {
    let n = 0;
    for (const c of this.children) if (c.tier === tier && !c.draining) n++;
    return n;
  }

  /** Every worker process, draining ones included. */
  get processCount(): number {
    return this.children.size;
  }

  /** Port of the autoscaler's own /metrics. */
  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  private emit(event: AutoscalerEvent): void {
    this.opts.onEvent?.(event);
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      // A step that never settles (a call to the server that hangs) must not stop the loop:
      // after this long it counts as failed and the next one is scheduled.
      const limitMs = Math.max(TICK_TIMEOUT_MIN_MS, 10 * this.opts.config.scaling.pollMs);
      const step = this.tick();
      this.step = step;
      this.ticking = settleWithin(step, limitMs, `autoscaler step did not finish in ${limitMs} ms`).then(
        (next) => this.schedule(next),
        (err: unknown) => {
          this.opts.log.warn({ err: (err as Error).message }, 'autoscaler poll failed');
          this.schedule(this.opts.config.scaling.pollMs);
        },
      );
    }, delayMs);
  }

  /** Average durations from the workers' /metrics, remembered across recycling. */
  private async observe(): Promise<Partial<Record<Tier, ObservedDuration>>> {
    const live = [...this.children].filter((c) => !c.draining);
    const totals = await scrapeDurationTotals(live.map((c) => `http://127.0.0.1:${c.port}/metrics`));
    const fresh = mergeDurations(totals);
    this.durations = { ...this.durations, ...fresh };
    return this.durations;
  }

  /** One control step; returns the delay until the next one. */
  private async tick(): Promise<number> {
    const { plans } = await this.exporter.pollOnce();
    const now = Date.now();
    const s = this.opts.config.scaling;
    let confirmSoon = false;
    for (const plan of plans) {
      const tier = plan.tier;
      const st = this.state.get(tier);
      if (!st) continue;
      const current = this.replicas(tier);
      this.emit({ type: 'plan', at: now, tier, plan, replicas: current });
      st.recs.push({ at: now, n: plan.desiredReplicas });
      const keepMs = Math.max(s.upStabilizationMs, s.downCooldownMs) + 2 * s.pollMs;
      st.recs = st.recs.filter((r) => r.at >= now - keepMs);

      if (plan.desiredReplicas > current) {
        st.upSince ??= now;
        if (now - st.upSince >= s.upStabilizationMs) {
          const since = st.upSince;
          const target = Math.min(...st.recs.filter((r) => r.at >= since).map((r) => r.n));
          st.upSince = undefined;
          if (target > current) {
            st.lastScaleAt = now;
            this.eventsCounter.inc({ tier, action: 'up' });
            this.emit({
              type: 'scale-up',
              at: now,
              tier,
              from: current,
              to: target,
              reason: plan.explanation[4] ?? '',
            });
            for (let i = current; i < target; i++) await this.spawnOne(tier);
          }
        } else {
          confirmSoon = true;
        }
      } else {
        st.upSince = undefined;
        if (plan.desiredReplicas < current && now - st.lastScaleAt >= s.downCooldownMs) {
          const windowStart = now - s.downCooldownMs;
          let target = Math.max(...st.recs.filter((r) => r.at >= windowStart).map((r) => r.n));
          const keep = target === 0 ? await this.holdLast(tier) : undefined;
          if (keep) target = 1;
          if (target < current) {
            st.lastScaleAt = now;
            this.eventsCounter.inc({ tier, action: 'down' });
            this.emit({
              type: 'scale-down',
              at: now,
              tier,
              from: current,
              to: target,
              reason: plan.explanation[4] ?? '',
            });
            this.drain(tier, current - target, keep);
          }
        }
      }
      this.replicasGauge.set({ tier }, this.replicas(tier));
    }
    return confirmSoon ? Math.max(100, s.upStabilizationMs) : s.pollMs;
  }

  private async spawnOne(tier: Tier): Promise<void> {
    const port = await freePort();
    // Workers run with the worker V8 flags and malloc arenas, as in the Kubernetes manifests.
    const env: NodeJS.ProcessEnv = {
      ...workerProcessEnv(this.opts.baseEnv ?? process.env),
      SLUICE_METRICS_PORT: String(port),
      // The autoscaler publishes backlog gauges itself; its workers need not poll stats too.
      SLUICE_SCALE_POLL_MS: '0',
      // One SDK metrics port per machine cannot be shared by several workers.
      SLUICE_SDK_METRICS_PORT: '',
    };
    const proc = (this.opts.spawnWorker ?? defaultSpawnWorker)(tier, env);
    const child: WorkerChild = {
      tier,
      proc,
      port,
      draining: false,
      exited: new Promise<void>((resolve) => {
        proc.once('exit', (code, signal) => {
          this.children.delete(child);
          this.replicasGauge.set({ tier }, this.replicas(tier));
          this.emit({
            type: 'exited',
            at: Date.now(),
            tier,
            pid: proc.pid ?? -1,
            code,
            signal,
            drained: child.draining,
          });
          if (!child.draining && !this.stopping) this.replace(child, code === 0 ? 'recycled' : 'crashed');
          resolve();
        });
      }),
    };
    this.children.add(child);
    this.replicasGauge.set({ tier }, this.replicas(tier));
    this.emit({ type: 'started', at: Date.now(), tier, pid: proc.pid ?? -1, port });
  }

  /**
   * Whether the tier's last worker must stay: some live worker of the tier has an activity in
   * flight (or does not say). Emits `held` with the busiest one.
   */
  private async holdLast(tier: Tier): Promise<WorkerChild | undefined> {
    const live = [...this.children].filter((c) => c.tier === tier && !c.draining);
    for (const c of live) {
      const inFlight = await scrapeInFlight(`http://127.0.0.1:${c.port}/metrics`);
      if (inFlight === undefined || inFlight > 0) {
        this.emit({ type: 'held', at: Date.now(), tier, pid: c.proc.pid ?? -1, inFlight });
        return c;
      }
    }
    return undefined;
  }

  /** A worker that left on its own is replaced at once (recycled) or after a pause (crashed: no crash loop). */
  private replace(child: WorkerChild, reason: 'recycled' | 'crashed'): void {
    const delay = reason === 'recycled' ? 0 : this.opts.config.scaling.pollMs;
    setTimeout(() => {
      if (this.stopping) return;
      this.emit({ type: 'replaced', at: Date.now(), tier: child.tier, pid: child.proc.pid ?? -1, reason });
      this.spawnOne(child.tier).catch((err: unknown) =>
        this.opts.log.error({ err: (err as Error).message, tier: child.tier }, 'could not replace worker'),
      );
    }, delay);
  }

  /** SIGTERM to the `count` youngest workers of a tier (never `keep`); they drain and exit. */
  private drain(tier: Tier, count: number, keep?: WorkerChild): void {
    const victims = [...this.children].filter((c) => c.tier === tier && !c.draining && c !== keep).slice(-count);
    for (const c of victims) {
      c.draining = true;
      c.proc.kill('SIGTERM');
    }
  }

  /** Resolves when no worker is draining any more. */
  async drained(): Promise<void> {
    await Promise.all([...this.children].filter((c) => c.draining).map((c) => c.exited));
  }

  private listen(port: number): Promise<void> {
    this.server = http.createServer((req, res) => {
      if ((req.url ?? '/').split('?')[0] === '/metrics') {
        this.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
      } else if (req.url === '/healthz' || req.url === '/readyz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: !this.stopping }));
      } else {
        res.writeHead(404).end();
      }
    });
    return new Promise((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, '0.0.0.0', () => resolve());
    });
  }

  /** Stops scaling, drains every worker (SIGTERM, then SIGKILL after the grace time), closes /metrics. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking?.catch(() => undefined);
    // A step given up on may still hold calls to the server: let it end (within the same bound)
    // before the caller closes its connection under it.
    if (this.step) {
      const limitMs = Math.max(TICK_TIMEOUT_MIN_MS, 10 * this.opts.config.scaling.pollMs);
      await settleWithin(this.step, limitMs, 'autoscaler step still running at stop').catch(() => undefined);
    }
    const all = [...this.children];
    for (const c of all) {
      c.draining = true;
      c.proc.kill('SIGTERM');
    }
    const deadline = this.opts.config.shutdownGraceMs + 10_000;
    const killer = setTimeout(() => all.forEach((c) => c.proc.kill('SIGKILL')), deadline);
    await Promise.all(all.map((c) => c.exited));
    clearTimeout(killer);
    process.removeListener('exit', this.onExit);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** Shortest time an autoscaler step may take before it counts as hung. */
const TICK_TIMEOUT_MIN_MS = 15_000;

/** `promise`, or a rejection with `message` once `ms` have passed without it settling. */
function settleWithin<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
