/**
 * Tenant names that are JavaScript object keys (issue 15 item 5): tenant-keyed state must be a
 * Map or a null-prototype object. `constructor` is a valid tenant, end to end — the webhook goes
 * through its own Bottleneck group limiter and the run carries its configured fairness weight —
 * and the other Object members (`__proto__`, `toString`, `hasOwnProperty`, `valueOf`) either
 * work the same (limiter, config maps) or are refused at the edge naming `tenant`.
 */
import crypto from 'node:crypto';
import { Context } from '@temporalio/activity';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/client';
import { pipelineStartOptions } from '../../src/client/start-options';
import { loadConfig } from '../../src/config';
import { WebhookLimiter } from '../../src/ratelimit/webhook-limiter';
import { connectClient, makeTestEnv } from '../helpers/env';
import { startFlowHost, startReceiver } from './helpers';

const OBJECT_KEYS = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];

describe('tenants named like Object members', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('config maps keep them as plain keys: no inherited value, no NaN, no prototype change', () => {
    const c = loadConfig(
      {
        SLUICE_FAIRNESS_WEIGHTS: 'constructor=3,__proto__=4,acme=2',
        SLUICE_WEBHOOK_TENANT_LIMITS: 'constructor=7,valueOf=9',
      },
      process.cwd(),
    );
    expect(c.fairnessWeights.constructor).toBe(3);
    expect(Object.keys(c.fairnessWeights).sort()).toEqual(['__proto__', 'acme', 'constructor']);
    for (const tenant of OBJECT_KEYS) {
      const { priority } = pipelineStartOptions(c, { tier: 'default', tenant, summary: 'test' });
      const want = tenant === 'constructor' ? 3 : tenant === '__proto__' ? 4 : undefined;
      expect(priority.fairnessWeight, tenant).toBe(want);
      expect(priority.fairnessKey).toBe(tenant);
    }
    // Unconfigured: no weight at all (never Object's members).
    const none = loadConfig({}, process.cwd());
    for (const tenant of OBJECT_KEYS)
      expect(pipelineStartOptions(none, { tier: 'default', tenant, summary: 'test' }).priority).not.toHaveProperty(
        'fairnessWeight',
      );
  });

  it('the webhook limiter gives each of them its own tenant limiter', async () => {
    const limiter = new WebhookLimiter({
      ratePerSecond: 1000,
      localRatePerSecond: 1000,
      concurrency: 10,
      tenantRates: { constructor: 500 },
      defaultTenantRatePerSecond: 1000,
      redisUrl: undefined,
      redisFallback: 'local-share',
      fallbackRatePerSecond: 10,
      id: `names-${crypto.randomBytes(4).toString('hex')}`,
    });
    cleanups.push(() => limiter.close());
    const results = await Promise.all(
      OBJECT_KEYS.map((tenant) => limiter.schedule(tenant, () => Promise.resolve(tenant))),
    );
    expect(results).toEqual(OBJECT_KEYS);
  });

  it('end to end: tenant constructor gets its webhook delivered and its fairness weight', async () => {
    const t = makeTestEnv('tenant-names', {
      SLUICE_WEBHOOK_ALLOW: '127.0.0.1',
      SLUICE_WEBHOOK_SECRET: 'names-secret',
      SLUICE_WEBHOOK_LIMITER_ID: `names-${crypto.randomBytes(4).toString('hex')}`,
      SLUICE_FAIRNESS_WEIGHTS: 'constructor=3',
      SLUICE_WEBHOOK_TENANT_LIMITS: 'constructor=20',
    });
    const receiver = await startReceiver();
    const client = await connectClient(t);
    const seen: { fairnessKey?: string; fairnessWeight?: number }[] = [];
    const host = await startFlowHost(t, ['critical', 'default'], {
      recordPriority(): Promise<string> {
        const { priority } = Context.current().info;
        seen.push({ fairnessKey: priority?.fairnessKey, fairnessWeight: priority?.fairnessWeight });
        return Promise.resolve('ok');
      },
    });
    cleanups.push(
      () => receiver.close(),
      () => client.close(),
      () => host.shutdown(),
    );

    const { workflowId } = await client.startJobsPipeline({
      tier: 'default',
      tenant: 'constructor',
      idempotencyKey: `names-${t.suffix}`,
      jobs: [{ activity: 'recordPriority', input: {} }],
      webhook: { url: receiver.url },
    });
    expect(workflowId).toBe(`jobs:constructor:names-${t.suffix}`);
    const result = await client.getResult<{ succeeded: number; webhook: { status: number; attempt: number } }>(
      workflowId,
    );
    expect(result.succeeded).toBe(1);
    expect(result.webhook).toMatchObject({ status: 200, attempt: 1 });
    expect(receiver.requests).toHaveLength(1);
    expect(seen).toEqual([{ fairnessKey: 'constructor', fairnessWeight: 3 }]);

    // The others are not valid tenant names: refused at the edge, naming the field.
    for (const tenant of OBJECT_KEYS.filter((n) => n !== 'constructor')) {
      const err = await client
        .startJobsPipeline({
          tenant,
          idempotencyKey: `names-${t.suffix}`,
          jobs: [{ activity: 'recordPriority', input: {} }],
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err, tenant).toBeInstanceOf(InvalidInputError);
      expect((err as InvalidInputError).issues.map((i) => i.path)).toEqual(['tenant']);
    }
  });
});
