/**
 * Live limits on the real dev server: `sluice limits set|show` over Temporal's task-queue config,
 * bad limits exiting 2 and changing nothing, the tenant limits file validated with every problem
 * named, and a weight change in that file reaching the next start of a running client within
 * 10 s, without a restart.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import { describeTaskQueueLimits } from '../../src/ratelimit/task-queue-limits';
import { oneJson, runSluice } from '../helpers/cli';
import { makeTestEnv, type TestEnv } from '../helpers/env';

let t: TestEnv;

beforeAll(() => {
  t = makeTestEnv('limits');
});

async function inForce(client: SluiceClient) {
  return describeTaskQueueLimits(
    {
      service: client.temporal.workflowService,
      namespace: client.temporal.options.namespace,
      identity: 'test',
      suffix: t.suffix,
    },
    'low',
    'activity',
  );
}

describe('sluice limits set|show', () => {
  let client: SluiceClient;
  beforeAll(async () => {
    client = await SluiceClient.connect({ config: t.config });
  });
  afterAll(async () => {
    await client?.close();
  });

  it('sets the queue and per-tenant rates on the server, shows them, and removes them with "none"', async () => {
    const set = await runSluice(t, [
      'limits',
      'set',
      '--tier',
      'low',
      '--queue-rps',
      '40',
      '--tenant-rps',
      '4',
      '--json',
    ]);
    expect(set.code, set.stderr).toBe(0);
    expect(oneJson(set)).toMatchObject({ tier: 'low', type: 'activity', queueRps: 40, tenantRps: 4 });
    expect(await inForce(client)).toMatchObject({ queueRps: 40, tenantRps: 4 });

    const show = await runSluice(t, ['limits', 'show', '--json']);
    expect(show.code, show.stderr).toBe(0);
    const queues = oneJson(show).queues as { tier: string; type: string; queueRps: number | null }[];
    expect(queues.find((q) => q.tier === 'low' && q.type === 'activity')).toMatchObject({ queueRps: 40 });
    expect(queues.find((q) => q.tier === 'critical' && q.type === 'activity')).toMatchObject({ queueRps: null });

    const clear = await runSluice(t, ['limits', 'set', '--tier', 'low', '--queue-rps', 'none']);
    expect(clear.code, clear.stderr).toBe(0);
    expect(await inForce(client)).toMatchObject({ queueRps: null, tenantRps: 4 });
    const clearTenant = await runSluice(t, ['limits', 'set', '--tier', 'low', '--tenant-rps', 'none']);
    expect(clearTenant.code, clearTenant.stderr).toBe(0);
    expect(await inForce(client)).toMatchObject({ queueRps: null, tenantRps: null });
  });

  const bad: { name: string; args: string[]; field: RegExp }[] = [
    { name: 'a negative queue rate', args: ['--queue-rps', '-5'], field: /queue-rps: must not be negative/ },
    { name: 'a queue rate that is not a number', args: ['--queue-rps', 'fast'], field: /queue-rps: must be a number/ },
    { name: 'a tenant rate that is not a number', args: ['--tenant-rps', '1e'], field: /tenant-rps: must be a number/ },
    { name: 'no rate at all', args: [], field: /queue-rps: give --queue-rps, --tenant-rps or both/ },
  ];
  for (const c of bad) {
    it(`${c.name} exits 2 naming the field and changes nothing`, async () => {
      const before = await inForce(client);
      const run = await runSluice(t, ['limits', 'set', '--tier', 'low', ...c.args, '--json']);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(c.field);
      oneJson(run);
      const after = await inForce(client);
      expect({ q: after.queueRps, t: after.tenantRps, at: after.updatedAt }).toEqual({
        q: before.queueRps,
        t: before.tenantRps,
        at: before.updatedAt,
      });
    });
  }
});

describe('the tenant limits file', () => {
  it('a file that does not parse exits 2 naming the line; a bad field is named by its path', async () => {
    const file = path.join(t.dir, 'broken.yaml');
    fs.writeFileSync(file, 'tenants:\n  acme: { weight: 2\n');
    const run = await runSluice(t, ['limits', 'check', '--file', file]);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/broken\.yaml:\d+:/);

    fs.writeFileSync(file, 'default:\n  maxRunning: 2\ntenants:\n  acme:\n    weight: -1\n    maxInFlight: many\n');
    const run2 = await runSluice(t, ['limits', 'check', '--file', file, '--json']);
    expect(run2.code, run2.stderr).toBe(2);
    expect(run2.stderr).toMatch(/tenants\.acme\.weight: .*broken\.yaml:5: must be a positive number/);
    expect(run2.stderr).toMatch(/tenants\.acme\.maxInFlight: .*must be a number/);
  });

  it('a client given a limits file that does not parse refuses to start (exit 2), nothing is started', async () => {
    const file = path.join(t.dir, 'broken-start.yaml');
    fs.writeFileSync(file, 'tenants: [\n');
    const run = await runSluice(t, ['limits', 'show'], { env: { SLUICE_TENANT_LIMITS: file } });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/SLUICE_TENANT_LIMITS/);
    await expect(
      SluiceClient.connect({ config: loadConfig({ ...t.env, SLUICE_TENANT_LIMITS: file }, t.dir) }),
    ).rejects.toThrow(/SLUICE_TENANT_LIMITS: .*broken-start\.yaml/);
  });

  it('an unknown tenant is accepted with a warning naming it', async () => {
    const file = path.join(t.dir, 'unknown.yaml');
    fs.writeFileSync(file, 'tenants:\n  nobody-ever-x1:\n    weight: 2\n');
    const run = await runSluice(t, ['limits', 'check', '--file', file, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/warning: tenants\.nobody-ever-x1: unknown tenant/);
    expect(oneJson(run)).toMatchObject({ valid: true, warnings: [{ path: 'tenants.nobody-ever-x1' }] });
  });

  it('a weight change reaches the next start of a running client within 10 s, with no restart', async () => {
    const file = path.join(t.dir, 'limits.yaml');
    fs.writeFileSync(file, 'tenants:\n  acme:\n    weight: 2\n');
    const reloads: number[] = [];
    const client = await SluiceClient.connect({
      config: loadConfig({ ...t.env, SLUICE_TENANT_LIMITS: file }, t.dir),
      onTenantLimitsReload: (e) => {
        if (e.limits) reloads.push(Date.now());
      },
    });
    try {
      // No worker polls this file's queues: the runs only need to exist to show their priority.
      const weightOf = async (key: string) => {
        const { workflowId } = await client.startJobsPipeline({
          tenant: 'acme',
          idempotencyKey: key,
          tier: 'low',
          jobs: [{ activity: 'sleep', input: { ms: 1 } }],
        });
        const d = await client.temporal.workflow.getHandle(workflowId).describe();
        return d.raw.workflowExecutionInfo?.priority?.fairnessWeight;
      };
      expect(await weightOf('w-before')).toBe(2);

      // An invalid edit is ignored: the last good weight stays.
      fs.writeFileSync(file, 'tenants:\n  acme:\n    weight: [\n');
      await new Promise((r) => setTimeout(r, 2_500));
      expect(await weightOf('w-invalid')).toBe(2);

      const changedAt = Date.now();
      fs.writeFileSync(file, 'tenants:\n  acme:\n    weight: 5\n');
      let seen: number | null | undefined;
      let n = 0;
      while (Date.now() - changedAt < 10_000) {
        seen = await weightOf(`w-after-${n++}`);
        if (seen === 5) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(seen).toBe(5);
      expect(Date.now() - changedAt).toBeLessThan(10_000);
      expect(reloads.length).toBeGreaterThanOrEqual(1);
    } finally {
      await client.close();
    }
  });
});
