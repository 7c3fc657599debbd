/**
 * Starvation prevention across tiers: the weighted slot split (and lending) of a process serving
 * several tiers, age-based promotion of waiting low sub-jobs, and critical work starting within
 * its SLA under a 2,000-sub-job low backlog. Real dev server, real workers.
 */
import { Context } from '@temporalio/activity';
import { afterAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { WeightedSlotPool, splitSlots } from '../../src/ratelimit/slot-pool';
import { DEFAULT_SLOT_WEIGHTS, TIER_SLA_SECONDS, TIERS, taskQueueFor, type Tier } from '../../src/shared/constants';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, type TestEnv } from '../helpers/env';
import { startFlowHost, waitFor } from './helpers';

interface Run {
  label: string;
  taskQueue: string;
  start: number;
  end: number;
  scheduleToStartMs: number;
}

function timedActivities(runs: Run[], started: string[]) {
  return {
    async work(input: { label: string; ms: number }): Promise<Run> {
      const info = Context.current().info;
      const start = Date.now();
      started.push(input.label);
      await Context.current().sleep(input.ms);
      const run: Run = {
        label: input.label,
        taskQueue: info.taskQueue,
        start,
        end: Date.now(),
        scheduleToStartMs: start - info.currentAttemptScheduledTimestampMs,
      };
      runs.push(run);
      return run;
    },
  };
}

/** Most runs overlapping at any moment, among those matching `pred`. */
function peakConcurrency(runs: Run[], pred: (r: Run) => boolean): number {
  const events = runs.filter(pred).flatMap((r) => [
    { t: r.start, d: 1 },
    { t: r.end, d: -1 },
  ]);
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let cur = 0;
  let peak = 0;
  for (const e of events) peak = Math.max(peak, (cur += e.d));
  return peak;
}

async function metricValue(host: WorkerHost, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await host.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((s, v) => s + v.value, 0);
}

describe('weighted slot pool', () => {
  it('splits slots 6:3:2:1 by default and keeps at least one per tier', () => {
    expect(splitSlots(12, TIERS, DEFAULT_SLOT_WEIGHTS)).toEqual({ critical: 6, high: 3, default: 2, low: 1 });
    expect(splitSlots(4, TIERS, DEFAULT_SLOT_WEIGHTS)).toEqual({ critical: 1, high: 1, default: 1, low: 1 });
    expect(splitSlots(7, ['critical', 'low'], DEFAULT_SLOT_WEIGHTS)).toEqual({ critical: 6, low: 1 });
  });

  it('a pool serving one tier hands its Worker the SDK fixed-size supplier, several tiers the lending one', () => {
    const one = new WeightedSlotPool({ total: 5, tiers: ['default'], weights: DEFAULT_SLOT_WEIGHTS });
    expect(one.singleTier).toBe(true);
    expect(one.workerSupplierFor('default')).toEqual({ type: 'fixed-size', numSlots: 5 });
    const two = new WeightedSlotPool({ total: 5, tiers: ['critical', 'low'], weights: DEFAULT_SLOT_WEIGHTS });
    expect(two.singleTier).toBe(false);
    expect(two.workerSupplierFor('low')).toMatchObject({ type: 'custom' });
  });

  it('an idle tier lends its share and gets it back first once busy', async () => {
    let now = 0;
    const pool = new WeightedSlotPool({
      total: 4,
      tiers: ['critical', 'low'],
      weights: DEFAULT_SLOT_WEIGHTS,
      now: () => now,
    });
    const critical = pool.supplierFor('critical');
    const low = pool.supplierFor('low');
    const signal = new AbortController().signal;
    const ctx = {
      slotType: 'activity' as const,
      taskQueue: 'q',
      workerIdentity: 'w',
      workerBuildId: '',
      isSticky: false,
    };
    const used = { type: 'activity' as const, activityType: 'work' };
    // Both idle: each holds one slot (its poller), and an idle tier borrows nothing.
    const c1 = await critical.reserveSlot(ctx, signal);
    const l1 = await low.reserveSlot(ctx, signal);
    expect(critical.tryReserveSlot(ctx)).toBeNull();
    // Low gets work: busy now, it borrows the two slots idle critical is not using.
    low.markSlotUsed({ permit: l1, slotInfo: used });
    const lows = [l1, await low.reserveSlot(ctx, signal), await low.reserveSlot(ctx, signal)];
    for (const p of lows.slice(1)) low.markSlotUsed({ permit: p, slotInfo: used });
    expect(pool.snapshot()).toMatchObject({ critical: { reserved: 1 }, low: { reserved: 3, used: 3 } });
    // The pool is full: a fourth low reservation waits.
    let lowWaiting = false;
    const lowNext = low.reserveSlot(ctx, signal).then((p) => ((lowWaiting = false), p));
    lowWaiting = true;
    // Critical work arrives: its one slot is used, it turns busy and is owed its share of 3.
    critical.markSlotUsed({ permit: c1, slotInfo: { type: 'activity', activityType: 'work' } });
    const criticalNext = critical.reserveSlot(ctx, signal);
    // A low activity finishes: the freed slot goes to critical (under its share), not to low.
    low.releaseSlot({ permit: lows[0]!, slotInfo: { type: 'activity', activityType: 'work' } });
    const c2 = await criticalNext;
    expect(c2).toBeDefined();
    expect(lowWaiting).toBe(true);
    expect(pool.snapshot()).toMatchObject({ critical: { reserved: 2 }, low: { reserved: 2 } });
    // Critical goes idle again (nothing used for longer than idleAfterMs): low may borrow again.
    critical.releaseSlot({ permit: c1, slotInfo: { type: 'activity', activityType: 'work' } });
    critical.releaseSlot({ permit: c2 });
    now += 5_000;
    low.releaseSlot({ permit: lows[1]!, slotInfo: { type: 'activity', activityType: 'work' } });
    await lowNext;
    expect(lowWaiting).toBe(false);
    pool.close();
  });
});

describe('tiers on the real server', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  async function setup(name: string, env: Record<string, string>, tiers: Tier[]) {
    const t: TestEnv = makeTestEnv(name, env);
    const client: SluiceClient = await connectClient(t);
    const runs: Run[] = [];
    const started: string[] = [];
    const host = await startFlowHost(t, tiers, timedActivities(runs, started));
    cleanups.push(
      () => client.close(),
      async () => {
        const t0 = Date.now();
        await host.shutdown();
        process.stderr.write(`[tiers] host ${name} shut down in ${Date.now() - t0} ms\n`);
      },
    );
    return { t, client, runs, host, started };
  }

  it('a process serving critical and low lends critical’s idle slots to low, and critical still starts at once', async () => {
    // 4 slots, weights 6:1 → critical 3, low 1.
    const { t, client, runs } = await setup('lend', { SLUICE_SLOTS_TOTAL: '4' }, ['critical', 'low']);
    const low = await client.startJobsPipeline({
      tier: 'low',
      tenant: 'batch',
      idempotencyKey: `lend-low-${t.suffix}`,
      window: 12,
      jobs: Array.from({ length: 12 }, (_, i) => ({ activity: 'work', input: { label: `low-${i}`, ms: 1_500 } })),
    });
    await waitFor('low running', () => runs.length > 0 || peakConcurrency(runs, () => true) > 0, 30_000, 100).catch(
      () => undefined,
    );
    await waitFor('three low jobs done', () => runs.filter((r) => r.label.startsWith('low')).length >= 3, 60_000);
    const critical = await client.startJobsPipeline({
      tier: 'critical',
      tenant: 'acme',
      idempotencyKey: `lend-crit-${t.suffix}`,
      jobs: Array.from({ length: 3 }, (_, i) => ({ activity: 'work', input: { label: `crit-${i}`, ms: 200 } })),
    });
    await client.getResult(critical.workflowId);
    await client.getResult(low.workflowId);
    const lowQueue = taskQueueFor('low', t.suffix);
    // Lending: low ran more at once than its own share of 1.
    expect(peakConcurrency(runs, (r) => r.taskQueue === lowQueue)).toBeGreaterThanOrEqual(2);
    // Critical was not stuck behind low's backlog: each started well within its SLA.
    const crit = runs.filter((r) => r.label.startsWith('crit'));
    expect(crit).toHaveLength(3);
    for (const r of crit) expect(r.scheduleToStartMs).toBeLessThan(TIER_SLA_SECONDS.critical * 1000);
  });

  it('a low sub-job waiting past its promotion age is dispatched on default, and counted', async () => {
    // One slot each for default and low; default idle keeps its one, so low cannot borrow it.
    const { t, client, runs, host, started } = await setup(
      'promote',
      { SLUICE_SLOTS_TOTAL: '2', SLUICE_SLOT_WEIGHTS: 'default=1,low=1', SLUICE_PROMOTION_AGE_SECONDS: '2' },
      ['default', 'low'],
    );
    const blocker = await client.startJobsPipeline({
      tier: 'low',
      tenant: 'batch',
      idempotencyKey: `promote-blocker-${t.suffix}`,
      jobs: [{ activity: 'work', input: { label: 'blocker', ms: 8_000 } }],
    });
    await waitFor('the blocker holding low’s slot', () => started.includes('blocker'), 30_000, 100);
    const waiting = await client.startJobsPipeline({
      tier: 'low',
      tenant: 'batch',
      idempotencyKey: `promote-waiting-${t.suffix}`,
      window: 2,
      jobs: [
        { activity: 'work', input: { label: 'waiting-1', ms: 100 } },
        { activity: 'work', input: { label: 'waiting-2', ms: 100 } },
      ],
    });
    await client.getResult(waiting.workflowId);
    // The two waiting sub-jobs completed while the blocker still held low's only slot.
    expect(runs.map((r) => r.label).sort()).toEqual(['waiting-1', 'waiting-2']);
    const defaultQueue = taskQueueFor('default', t.suffix);
    expect(runs.every((r) => r.taskQueue === defaultQueue)).toBe(true);
    expect(await metricValue(host, 'sluice_promotions_total', { from_tier: 'low', to_tier: 'default' })).toBe(2);
    await client.getResult(blocker.workflowId);
    expect(runs.find((r) => r.label === 'blocker')?.taskQueue).toBe(taskQueueFor('low', t.suffix));
  });

  it('under a 2,000-sub-job low backlog, critical work still starts within its SLA', async () => {
    const { t, client, runs } = await setup('backlog', { SLUICE_SLOTS_TOTAL: '4' }, ['critical', 'low']);
    const lowIds: string[] = [];
    // 2,000 low sub-jobs, all scheduled at once (each pipeline's window is its size).
    for (let p = 0; p < 4; p++) {
      const { workflowId } = await client.startJobsPipeline({
        tier: 'low',
        tenant: `batch-${p}`,
        idempotencyKey: `backlog-${t.suffix}-${p}`,
        window: 500,
        jobs: Array.from({ length: 500 }, (_, i) => ({ activity: 'work', input: { label: `low-${p}-${i}`, ms: 50 } })),
      });
      lowIds.push(workflowId);
    }
    const terminateLow = async () => {
      const t0 = Date.now();
      await Promise.all(lowIds.map((id) => client.temporal.workflow.getHandle(id).terminate('test done')));
      process.stderr.write(`[tiers] low pipelines terminated in ${Date.now() - t0} ms\n`);
    };
    // Pending low sub-jobs (scheduled, not yet done) across the four pipelines.
    const backlog = async () => {
      const ds = await Promise.all(lowIds.map((id) => client.temporal.workflow.getHandle(id).describe()));
      return ds.reduce((n, d) => n + (d.raw.pendingActivities?.length ?? 0), 0);
    };
    await waitFor('a large low backlog', async () => (await backlog()) >= 1_500, 60_000, 500);
    const critIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { workflowId } = await client.startJobsPipeline({
        tier: 'critical',
        tenant: 'acme',
        idempotencyKey: `backlog-crit-${t.suffix}-${i}`,
        jobs: [{ activity: 'work', input: { label: `crit-${i}`, ms: 50 } }],
      });
      critIds.push(workflowId);
    }
    const started = Date.now();
    await Promise.all(critIds.map((id) => client.getResult(id)));
    const backlogAfter = await backlog();
    await terminateLow();
    const crit = runs.filter((r) => r.label.startsWith('crit'));
    expect(crit).toHaveLength(3);
    for (const r of crit) expect(r.scheduleToStartMs).toBeLessThan(TIER_SLA_SECONDS.critical * 1000);
    expect(Date.now() - started).toBeLessThan(TIER_SLA_SECONDS.critical * 1000);
    // The low backlog was still there while critical ran: critical did not wait for it to drain.
    expect(backlogAfter).toBeGreaterThan(200);
  });
});
