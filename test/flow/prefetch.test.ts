/**
 * Prefetch (SLUICE_PREFETCH): the gate's order and cancellation, and on the real server a worker
 * that holds more tasks than it runs, yet never runs more than its slots at once, and whose held
 * tasks outlive their heartbeat timeout.
 */
import { Context } from '@temporalio/activity';
import { afterAll, describe, expect, it } from 'vitest';
import { RunGate } from '../../src/ratelimit/run-gate';
import type { WorkerHost } from '../../src/workers/host';
import type { JobsPipelineResult } from '../../src/workflows/jobs-pipeline';
import { connectClient, makeTestEnv } from '../helpers/env';
import { startFlowHost, waitFor } from './helpers';

describe('run gate', () => {
  it('runs up to its capacity, then hands freed places most urgent tier first, then in arrival order', async () => {
    const gate = new RunGate(1);
    const order: string[] = [];
    await gate.acquire('low');
    const waits = [
      gate.acquire('low').then(() => order.push('low-2')),
      gate.acquire('default').then(() => order.push('default-1')),
      gate.acquire('critical').then(() => order.push('critical-1')),
      gate.acquire('default').then(() => order.push('default-2')),
    ];
    expect(gate.waiting).toBe(4);
    for (let i = 0; i < 4; i++) {
      gate.release();
      await new Promise((r) => setImmediate(r));
      expect(order).toHaveLength(i + 1);
    }
    await Promise.all(waits);
    expect(order).toEqual(['critical-1', 'default-1', 'default-2', 'low-2']);
    gate.release();
    // All places free again: two callers pass at once with capacity 2.
    const wide = new RunGate(2);
    await Promise.all([wide.acquire('low'), wide.acquire('low')]);
    expect(wide.waiting).toBe(0);
  });

  it('a cancelled waiter leaves the queue with the cancellation, and does not take a place', async () => {
    const gate = new RunGate(1);
    await gate.acquire('default');
    const abort = new AbortController();
    const cancelled = gate.acquire('default', abort.signal);
    const after = gate.acquire('default');
    abort.abort(new Error('activity cancelled'));
    await expect(cancelled).rejects.toThrow('activity cancelled');
    expect(gate.waiting).toBe(1);
    gate.release();
    await after;
    expect(gate.waiting).toBe(0);
    await expect(gate.acquire('default', abort.signal)).rejects.toThrow('activity cancelled');
  });
});

describe('prefetch on the real server', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  async function gauge(host: WorkerHost, name: string): Promise<number> {
    const metric = (await host.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
    return ((metric?.values ?? []) as { value: number }[]).reduce((s, v) => s + v.value, 0);
  }

  it('holds up to slots + prefetch tasks but runs at most its slots, and every sub-job completes once', async () => {
    const t = makeTestEnv('prefetch', { SLUICE_SLOTS_DEFAULT: '2', SLUICE_PREFETCH: '2' });
    const client = await connectClient(t);
    let running = 0;
    let peak = 0;
    const ran: number[] = [];
    const host = await startFlowHost(t, ['default'], {
      async work(input: { index: number; ms: number }): Promise<number> {
        running++;
        peak = Math.max(peak, running);
        try {
          await Context.current().sleep(input.ms);
        } finally {
          running--;
        }
        ran.push(input.index);
        return input.index;
      },
    });
    cleanups.push(
      () => client.close(),
      () => host.shutdown(),
    );
    const jobs = 12;
    const handle = await client.startJobsPipeline({
      tier: 'default',
      tenant: 'acme',
      idempotencyKey: `prefetch-${t.suffix}`,
      window: jobs,
      jobs: Array.from({ length: jobs }, (_, index) => ({ activity: 'work', input: { index, ms: 400 } })),
    });
    // While the backlog lasts, the worker holds tasks beyond its two running ones.
    let heldPeak = 0;
    let inFlightPeak = 0;
    const sampling = (async () => {
      while (ran.length < jobs) {
        heldPeak = Math.max(heldPeak, await gauge(host, 'sluice_activities_prefetched'));
        inFlightPeak = Math.max(inFlightPeak, await gauge(host, 'sluice_activities_in_flight'));
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    await client.getResult(handle.workflowId);
    await sampling;
    expect(heldPeak).toBeGreaterThanOrEqual(1);
    expect(heldPeak).toBeLessThanOrEqual(2);
    expect(peak).toBe(2);
    expect(inFlightPeak).toBeLessThanOrEqual(2);
    expect([...ran].sort((a, b) => a - b)).toEqual(Array.from({ length: jobs }, (_, i) => i));
    // The slots gauge (the utilisation denominator) counts running places, not held ones.
    expect(await gauge(host, 'sluice_activity_slots')).toBe(2);
    await waitFor(
      'nothing held once the backlog is gone',
      async () => (await gauge(host, 'sluice_activities_prefetched')) === 0,
      5_000,
    );
  });

  it('a held task keeps heartbeating: held longer than its heartbeat timeout, it still runs on its first attempt', async () => {
    const t = makeTestEnv('prefetch-held', { SLUICE_SLOTS_DEFAULT: '1', SLUICE_PREFETCH: '1' });
    const client = await connectClient(t);
    const started: string[] = [];
    // Registered under a type whose heartbeat timeout is 10 s (see ACTIVITY_OPTIONS).
    const host = await startFlowHost(t, ['default'], {
      async aggregatePartition(input: { name: string; ms: number }): Promise<{ name: string; attempt: number }> {
        const ctx = Context.current();
        started.push(input.name);
        for (let waited = 0; waited < input.ms; waited += 500) {
          ctx.heartbeat(waited);
          await ctx.sleep(500);
        }
        return { name: input.name, attempt: ctx.info.attempt };
      },
    });
    cleanups.push(
      () => client.close(),
      () => host.shutdown(),
    );
    const start = (name: string, ms: number) =>
      client.startJobsPipeline({
        tier: 'default',
        idempotencyKey: `held-${name}-${t.suffix}`,
        jobs: [{ activity: 'aggregatePartition', input: { name, ms } }],
      });
    const long = await start('long', 12_000);
    await waitFor('the long sub-job to run', () => started.includes('long'), 10_000, 50);
    const held = await start('held', 0);
    await waitFor(
      'the second task to be held',
      async () => (await gauge(host, 'sluice_activities_prefetched')) === 1,
      10_000,
      50,
    );
    expect(started).toEqual(['long']);
    const [a, b] = await Promise.all([
      client.getResult<JobsPipelineResult>(long.workflowId),
      client.getResult<JobsPipelineResult>(held.workflowId),
    ]);
    expect(started).toEqual(['long', 'held']);
    expect(a.results).toEqual([{ name: 'long', attempt: 1 }]);
    // Held about 11 s, past its 10 s heartbeat timeout: no timeout, no retry.
    expect(b.results).toEqual([{ name: 'held', attempt: 1 }]);
  }, 40_000);
});
