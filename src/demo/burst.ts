/**
 * A burst run: worker processes under the local autoscaler, a burst of short sub-jobs on one
 * tier, and a timeline of what the autoscaler did. Shared by `sluice demo burst` and
 * `npm run bench:autoscale`.
 */
import { temporal } from '@temporalio/proto';
import { SluiceClient } from '../client';
import { pipelineStartOptions, type WorkflowOf } from '../client/start-options';
import type { SluiceConfig } from '../config';
import type { Logger } from '../logger';
import { LocalAutoscaler, type AutoscalerEvent, type SpawnWorker } from '../scaling/autoscaler';
import { taskQueueFor, type Tier } from '../shared/constants';
import type { BurstResult } from '../workflows/burst';

/** Options of {@link runBurst}. */
export interface BurstRunOptions {
  /** Config of the run (its `scaling` bounds the autoscaler; min = max gives a fixed pool). */
  config: SluiceConfig;
  /** Environment of the worker processes; must describe the same config. @default process.env */
  env?: NodeJS.ProcessEnv;
  log: Logger;
  tier: Tier;
  jobs: number;
  ms: number;
  /** Sub-jobs per activity task (the burst workflow's `pack`). @default 1 */
  pack?: number;
  /** Lines for a human (the demo prints them to stderr). */
  print?: (line: string) => void;
  spawnWorker?: SpawnWorker;
  /** After the burst drained, how long to wait for the scale-down to the minimum. @default 60 s + cooldown */
  scaleDownTimeoutMs?: number;
  /** Once at the minimum (or timed out), how long to keep watching for flapping. @default cooldown + 2 polls */
  watchMs?: number;
}

/** What a burst run measured. */
export interface BurstRunReport {
  workflowId: string;
  result: BurstResult;
  /** Burst start to the last sub-job done. */
  drainMs: number;
  /** Burst start to the first scale-up; undefined when it never scaled up. */
  firstScaleUpMs: number | undefined;
  maxReplicas: number;
  /** Scaling actions after the burst drained (a scale-down to the minimum is expected; more is flapping). */
  changesAfterDrain: { type: 'scale-up' | 'scale-down'; from: number; to: number; atMs: number }[];
  /** Failed activity attempts: sub-jobs that failed plus attempts that were retried. */
  failedActivities: number;
  /** Workers that exited during the run, and how (0 = drained cleanly). */
  exits: { pid: number; code: number | null; signal: string | null; drained: boolean }[];
  events: AutoscalerEvent[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `fn` is true, checking every `everyMs`, for at most `timeoutMs`. */
async function until(fn: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return true;
    await sleep(everyMs);
  }
  return fn();
}

/** Runs one burst under the local autoscaler and reports drain time, scaling and failures. */
export async function runBurst(opts: BurstRunOptions): Promise<BurstRunReport> {
  const { config, tier, print = () => undefined } = opts;
  const s = config.scaling;
  const events: AutoscalerEvent[] = [];
  let burstAt = 0;
  let lastPlanLine = '';
  const client = await SluiceClient.connect({ config });
  const autoscaler = new LocalAutoscaler({
    config,
    tiers: [tier],
    log: opts.log,
    service: client.temporal.workflowService,
    baseEnv: opts.env,
    spawnWorker: opts.spawnWorker,
    serveHttp: false,
    onEvent: (e) => {
      events.push(e);
      const t = burstAt ? `t=${((e.at - burstAt) / 1000).toFixed(1).padStart(5)}s` : 't=  pre ';
      if (e.type === 'plan') {
        const q = e.plan.inputs;
        const line = `backlog ${String(q.backlog).padStart(4)}  oldest ${q.backlogAgeSeconds.toFixed(1)} s  workers ${e.replicas}  desired ${e.plan.desiredReplicas}`;
        if (line !== lastPlanLine) print(`${t}  ${line}`);
        lastPlanLine = line;
      } else if (e.type === 'scale-up' || e.type === 'scale-down') {
        print(`${t}  ${e.type.toUpperCase()} ${e.from} → ${e.to}   (${e.reason})`);
      } else if (e.type === 'exited') {
        print(`${t}  worker ${e.pid} exited ${e.code ?? e.signal}${e.drained ? ' after draining' : ''}`);
      } else if (e.type === 'replaced') {
        print(`${t}  worker ${e.pid} ${e.reason}: replaced`);
      }
    },
  });
  try {
    await autoscaler.start();
    // Workers are up when their queue has pollers; wait for the minimum before the burst.
    const ready = await until(async () => {
      const res = await client.temporal.workflowService.describeTaskQueue({
        namespace: config.temporal.namespace,
        taskQueue: { name: taskQueueFor(tier, config.taskQueueSuffix) },
        taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      });
      return (res.pollers?.length ?? 0) >= Math.min(1, s.minReplicas);
    }, 60_000);
    if (!ready) throw new Error('worker processes did not start polling within 60 s');

    const workflowId = `burst:${tier}:${Date.now()}`;
    burstAt = Date.now();
    const pack = opts.pack !== undefined && opts.pack > 1 ? opts.pack : undefined;
    print(
      `burst: ${opts.jobs} sub-jobs × ${opts.ms} ms${pack ? `, ${pack} per activity task` : ''} on ${taskQueueFor(tier, config.taskQueueSuffix)} (${workflowId})`,
    );
    const handle = await client.temporal.workflow.start<WorkflowOf<'burstWorkflow'>>('burstWorkflow', {
      workflowId,
      args: [{ jobs: opts.jobs, ms: opts.ms, ...(pack ? { pack } : {}) }],
      ...pipelineStartOptions(config, {
        tier,
        tenant: 'burst',
        summary: `burst of ${opts.jobs} sub-jobs × ${opts.ms} ms`,
      }),
    });
    const result = await handle.result();
    const drainedAt = Date.now();
    print(
      `t=${((drainedAt - burstAt) / 1000).toFixed(1).padStart(5)}s  burst drained: ${result.succeeded} succeeded, ${result.failed} failed, ${result.retriedAttempts} retried attempts`,
    );

    await until(
      () => autoscaler.replicas(tier) <= s.minReplicas,
      opts.scaleDownTimeoutMs ?? 60_000 + s.downCooldownMs,
      250,
    );
    await autoscaler.drained();
    // Keep watching: a flapping autoscaler would scale up again here.
    await sleep(opts.watchMs ?? s.downCooldownMs + 2 * s.pollMs);

    const scaleEvents = events.filter(
      (e): e is Extract<AutoscalerEvent, { type: 'scale-up' | 'scale-down' }> =>
        e.type === 'scale-up' || e.type === 'scale-down',
    );
    const firstUp = scaleEvents.find((e) => e.type === 'scale-up' && e.at >= burstAt);
    const exits = events.flatMap((e) =>
      e.type === 'exited' ? [{ pid: e.pid, code: e.code, signal: e.signal, drained: e.drained }] : [],
    );
    return {
      workflowId,
      result,
      drainMs: drainedAt - burstAt,
      firstScaleUpMs: firstUp ? firstUp.at - burstAt : undefined,
      maxReplicas: Math.max(s.minReplicas, ...scaleEvents.map((e) => e.to)),
      changesAfterDrain: scaleEvents
        .filter((e) => e.at > drainedAt)
        .map((e) => ({ type: e.type, from: e.from, to: e.to, atMs: e.at - burstAt })),
      failedActivities: result.failed + result.retriedAttempts,
      exits,
      events,
    };
  } finally {
    await autoscaler.stop();
    await client.close();
  }
}
