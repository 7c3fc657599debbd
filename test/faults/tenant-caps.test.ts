/**
 * Hard per-tenant caps with real processes: two `sluice worker` processes on the run's dev
 * server, tenants capped by a limits file (SLUICE_TENANT_LIMITS).
 *
 * - A flooding tenant (one big jobs pipeline of tiny sub-jobs, `maxInFlight: 4`) never has more
 *   than 4 sub-jobs running at once, measured at the activity (each attempt reports when it began
 *   and ended its work); a second pipeline of the tenant (`maxRunning: 1`) waits with
 *   Stage="queued" and starts only after the first closed; a third asked with rejectWhenFull is
 *   refused with a Retry-After. A trickling tenant meanwhile sends one-sub-job pipelines; its
 *   p99 schedule-to-start is printed (no timing target is asserted here).
 * - A worker SIGKILLed while it runs sub-jobs holding permits does not shrink the cap: the
 *   killed sub-jobs are retried under the same permits after their heartbeat timeout, the gate
 *   ends with nothing held, and the next fan-out runs exactly `maxInFlight` at once.
 *
 * SLUICE_CAPS_FLOOD_JOBS sets the flood's size: 600 by default (through batch children), since at
 * a cap of 4 the flood drains at about 15 sub-jobs/s here and the 2,000 would keep this file
 * over two minutes longer in CI; `npm run soak:caps` runs the 2,000.
 */
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BurstSleepResult } from '../../src/activities/burst';
import { TenantAtCapacityError, type JobsPipelineResult, type SluiceClient } from '../../src/client';
import { StageKey } from '../../src/shared/search-attributes';
import { createApiServer, listen } from '../../src/api/server';
import { oneJson, runSluice } from '../helpers/cli';
import { connectClient, makeTestEnv, type TestEnv } from '../helpers/env';
import { spawnWorker, until, type WorkerProcess } from '../helpers/processes';
import { maxOverlap, scheduleToStartMs, percentile } from '../helpers/caps';

const FLOOD_JOBS = Number(process.env.SLUICE_CAPS_FLOOD_JOBS ?? 600);
const FLOOD_CAP = 4;
const KILL_CAP = 3;

let t: TestEnv;
let client: SluiceClient;
let api: http.Server;
let apiBase: string;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  const limits = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-caps-limits-')), 'limits.yaml');
  fs.writeFileSync(
    limits,
    [
      'default: { maxRunning: 0, maxInFlight: 0 }',
      'tenants:',
      `  flood: { maxRunning: 1, maxInFlight: ${FLOOD_CAP} }`,
      '  trickle: { weight: 1 }',
      `  killcap: { maxInFlight: ${KILL_CAP} }`,
      '',
    ].join('\n'),
  );
  t = makeTestEnv('caps', {
    SLUICE_TENANT_LIMITS: limits,
    // Plenty of default slots, so what holds the flood back is its cap and nothing else.
    SLUICE_SLOTS_DEFAULT: '8',
    SLUICE_SLOTS_CRITICAL: '1',
    SLUICE_SLOT_WEIGHTS: 'critical=1,default=8',
  });
  client = await connectClient(t);
  api = createApiServer({ client, bodyLimitBytes: t.config.api.bodyLimitBytes });
  apiBase = `http://127.0.0.1:${await listen(api, 0)}`;
  // The gates run on the critical queue; the sub-jobs on default.
  workers.push(await spawnWorker(t, ['critical', 'default']), await spawnWorker(t, ['critical', 'default']));
});

afterAll(async () => {
  for (const w of workers) w.child.kill('SIGKILL');
  await new Promise<void>((r) => (api ? api.close(() => r()) : r()));
  await client?.close();
});

const sleeps = (n: number, ms: number) =>
  Array.from({ length: n }, (_, index) => ({ activity: 'burstSleep', input: { index, ms } }));

const results = (r: JobsPipelineResult) => r.results as BurstSleepResult[];

describe('hard per-tenant caps', () => {
  it('a flooding tenant never exceeds its sub-job cap; its next pipeline queues in order; a trickle tenant runs alongside', async () => {
    const big = await client.startJobsPipeline({
      tenant: 'flood',
      idempotencyKey: 'flood-big',
      tier: 'default',
      window: 64,
      jobs: sleeps(FLOOD_JOBS, 20),
    });
    // The big one holds the tenant's one running place before the next one asks.
    await until(
      'the flood pipeline to hold its running place',
      () => client.gateState('flood'),
      (g) => g?.running[0] === big.workflowId,
      30_000,
    );
    const next = await client.startJobsPipeline({
      tenant: 'flood',
      idempotencyKey: 'flood-next',
      tier: 'default',
      window: 8,
      jobs: sleeps(8, 20),
    });
    // maxRunning 1: the second run waits, and says so.
    await until(
      'the second flood pipeline to show Stage=queued',
      async () =>
        (await client.temporal.workflow.getHandle(next.workflowId).describe()).typedSearchAttributes.get(StageKey),
      (stage) => stage === 'queued',
      30_000,
    );
    // Refused instead of queued when asked: nothing starts, and the caller is told when to come back.
    const refused = await client
      .startJobsPipeline(
        { tenant: 'flood', idempotencyKey: 'flood-refused', tier: 'default', jobs: sleeps(1, 1) },
        { rejectWhenFull: true },
      )
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(refused).toBeInstanceOf(TenantAtCapacityError);
    expect((refused as TenantAtCapacityError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(await client.exists('jobs:flood:flood-refused')).toBe(false);
    // The same over HTTP (429 with Retry-After) and from the CLI (exit 2), for a report of the tenant.
    const res = await fetch(`${apiBase}/v1/reports?rejectWhenFull=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'refused-http' },
      body: JSON.stringify({ tenant: 'flood', from: '2025-01', to: '2025-02' }),
    });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await res.json()).toMatchObject({ error: 'tenant at capacity', tenant: 'flood', maxRunning: 1 });
    const cli = await runSluice(t, [
      'report',
      '--from',
      '2025-01',
      '--to',
      '2025-02',
      '--tenant',
      'flood',
      '--id',
      'refused-cli',
      '--reject-when-full',
      '--json',
    ]);
    expect(cli.code, cli.stderr).toBe(2);
    expect(oneJson(cli)).toMatchObject({ error: 'tenant at capacity', tenant: 'flood' });
    expect(cli.stderr).toMatch(/tenant flood is at its cap of 1 running pipelines/);
    // Operators see it: `sluice limits show` prints what each capped tenant's gate holds.
    const show = await runSluice(t, ['limits', 'show', '--json']);
    expect(show.code, show.stderr).toBe(0);
    expect((oneJson(show).gates as Record<string, unknown>).flood).toMatchObject({
      caps: { maxRunning: 1, maxInFlight: FLOOD_CAP },
      running: [big.workflowId],
      queued: [next.workflowId],
    });
    expect(await client.exists('report:flood:refused-http')).toBe(false);
    expect(await client.exists('report:flood:refused-cli')).toBe(false);

    // The trickle: a one-sub-job pipeline every 250 ms while the flood runs.
    const trickle: string[] = [];
    let bigDone = false;
    const bigResult = client.getResult<JobsPipelineResult>(big.workflowId).finally(() => (bigDone = true));
    while (!bigDone) {
      const { workflowId } = await client.startJobsPipeline({
        tenant: 'trickle',
        idempotencyKey: `trickle-${trickle.length}`,
        tier: 'default',
        jobs: sleeps(1, 5),
      });
      trickle.push(workflowId);
      await new Promise((r) => setTimeout(r, 250));
    }
    const bigOut = await bigResult;
    const nextOut = await client.getResult<JobsPipelineResult>(next.workflowId);
    expect(bigOut.succeeded).toBe(FLOOD_JOBS);
    expect(nextOut.succeeded).toBe(8);

    // Measured at the activity: every attempt's own start and end, across both worker processes.
    const flood = [...results(bigOut), ...results(nextOut)];
    expect(new Set(flood.map((r) => r.pid)).size).toBe(2);
    const peak = maxOverlap(flood);
    console.log(`flood: ${FLOOD_JOBS + 8} sub-jobs, at most ${peak} running at once (cap ${FLOOD_CAP})`);
    expect(peak).toBeLessThanOrEqual(FLOOD_CAP);
    expect(peak).toBeGreaterThanOrEqual(2);

    // In order: the queued pipeline's first sub-job began after the first pipeline closed.
    const bigClosed = (await client.temporal.workflow.getHandle(big.workflowId).describe()).closeTime!.getTime();
    expect(Math.min(...results(nextOut).map((r) => r.startedAt))).toBeGreaterThanOrEqual(bigClosed);

    // The trickle tenant's schedule-to-start, printed for the closing note (not asserted).
    const waits: number[] = [];
    for (const id of trickle) {
      const out = await client.getResult<JobsPipelineResult>(id);
      waits.push(...(await scheduleToStartMs(client, id, results(out))));
    }
    expect(waits.length).toBe(trickle.length);
    console.log(
      `trickle: ${waits.length} sub-jobs during the flood, schedule-to-start p50 ${percentile(waits, 50)} ms, ` +
        `p99 ${percentile(waits, 99)} ms, max ${Math.max(...waits)} ms`,
    );
  });

  it('a worker killed while its sub-jobs hold permits does not shrink the cap', async () => {
    const first = await client.startJobsPipeline({
      tenant: 'killcap',
      idempotencyKey: 'kill-first',
      tier: 'default',
      window: 6,
      jobs: sleeps(6, 4_000),
    });
    await until(
      'the cap to be in use',
      () => client.gateState('killcap'),
      (s) => s?.inFlight === KILL_CAP,
      30_000,
    );
    // The victim: a worker running some of them right now.
    const running = async (w: WorkerProcess) => {
      const text = await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text();
      return Number(/^sluice_activities_in_flight\{tier="default"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    let victim: WorkerProcess | undefined;
    await until(
      'a worker with sub-jobs in flight',
      async () => {
        for (const w of workers) if ((await running(w)) > 0) victim = w;
        return victim;
      },
      (v) => v !== undefined,
      30_000,
    );
    victim!.child.kill('SIGKILL');
    expect(await victim!.exited).toBeNull();
    workers.splice(workers.indexOf(victim!), 1);

    // The killed sub-jobs run again elsewhere after their heartbeat timeout, under the same permits.
    const firstOut = await client.getResult<JobsPipelineResult>(first.workflowId);
    expect(firstOut.succeeded).toBe(6);
    expect(results(firstOut).some((r) => r.attempt > 1)).toBe(true);
    expect(maxOverlap(results(firstOut))).toBeLessThanOrEqual(KILL_CAP);
    const after = await until(
      'the gate to hold nothing',
      () => client.gateState('killcap'),
      (s) => s?.inFlight === 0 && s.waiting === 0,
      30_000,
    );
    expect(after?.running).toEqual([]);

    // The whole cap is usable again: the next fan-out runs exactly KILL_CAP at once.
    const second = await client.startJobsPipeline({
      tenant: 'killcap',
      idempotencyKey: 'kill-second',
      tier: 'default',
      window: 6,
      jobs: sleeps(6, 1_500),
    });
    const secondOut = await client.getResult<JobsPipelineResult>(second.workflowId);
    expect(maxOverlap(results(secondOut))).toBe(KILL_CAP);
  });
});
