/**
 * The completion webhook and its limiters, against a real HTTP receiver on 127.0.0.1 and the
 * real Redis on 127.0.0.1:6379: signature and idempotency key, Retry-After honoured as the next
 * retry delay, per-tenant limits, one limit shared through Redis, and what happens when Redis is
 * unreachable (a conservative local share, or a pause — never unlimited).
 */
import crypto from 'node:crypto';
import { Context } from '@temporalio/activity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signWebhook } from '../../src/activities/notify';
import type { SluiceClient } from '../../src/client';
import { freePort } from '../../src/devserver/dev-server';
import { WebhookLimiter, parseRetryAfter, type WebhookLimiterOptions } from '../../src/ratelimit/webhook-limiter';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, type TestEnv } from '../helpers/env';
import { maxInWindow, startFlowHost, startReceiver, type Receiver } from './helpers';

const REDIS_URL = 'redis://127.0.0.1:6379';
const SECRET = 'test-secret-' + crypto.randomBytes(4).toString('hex');

function limiterOptions(over: Partial<WebhookLimiterOptions>): WebhookLimiterOptions {
  return {
    ratePerSecond: 1000,
    localRatePerSecond: 1000,
    concurrency: 50,
    tenantRates: {},
    defaultTenantRatePerSecond: 1000,
    redisUrl: undefined,
    redisFallback: 'local-share',
    fallbackRatePerSecond: 10,
    id: `test-${crypto.randomBytes(4).toString('hex')}`,
    recoverAfterMs: 60_000,
    ...over,
  };
}

async function timed(limiter: WebhookLimiter, tenant: string, n: number): Promise<number[]> {
  return Promise.all(Array.from({ length: n }, () => limiter.schedule(tenant, () => Promise.resolve(Date.now()))));
}

describe('deliverWebhook on the real server', () => {
  let t: TestEnv;
  let client: SluiceClient;
  let host: WorkerHost;
  let receiver: Receiver;

  beforeAll(async () => {
    t = makeTestEnv('hook', {
      SLUICE_WEBHOOK_SECRET: SECRET,
      SLUICE_WEBHOOK_LIMITER_ID: `hook-${crypto.randomUUID()}`,
      // The receiver runs on loopback, which the SSRF guard refuses unless listed.
      SLUICE_WEBHOOK_ALLOW: '127.0.0.1',
    });
    client = await connectClient(t);
    receiver = await startReceiver();
    host = await startFlowHost(t, ['critical'], {
      noop: async () => {
        await Context.current().sleep(1);
        return 'ok';
      },
    });
  });
  afterAll(async () => {
    await host?.shutdown();
    await client?.close();
    await receiver?.close();
  });

  /** A one-`noop` pipeline on the critical tier whose completion webhook goes to the receiver. */
  async function hookedNoop<R>(name: string): Promise<{ workflowId: string; result: R }> {
    const { workflowId } = await client.startJobsPipeline({
      tier: 'critical',
      tenant: 'acme',
      idempotencyKey: `${name}-${t.suffix}`,
      jobs: [{ activity: 'noop', input: {} }],
      webhook: { url: receiver.url },
    });
    return { workflowId, result: await client.getResult<R>(workflowId) };
  }

  it('signs the body, keeps one idempotency key across retries, and waits exactly Retry-After after a 429', async () => {
    let calls = 0;
    receiver.respond = () => (++calls === 1 ? { status: 429, headers: { 'retry-after': '2' } } : { status: 200 });
    const { workflowId, result } = await hookedNoop<{
      webhook: { status: number; attempt: number; idempotencyKey: string };
    }>('hook');
    expect(result.webhook.status).toBe(200);
    expect(result.webhook.attempt).toBe(2);
    const [first, second] = receiver.requests;
    expect(receiver.requests).toHaveLength(2);
    // Same key on both attempts: `<workflowId>/<activityId>`.
    expect(first!.headers['idempotency-key']).toBe(result.webhook.idempotencyKey);
    expect(second!.headers['idempotency-key']).toBe(result.webhook.idempotencyKey);
    expect(result.webhook.idempotencyKey.startsWith(`${workflowId}/`)).toBe(true);
    // The signature is HMAC-SHA256 over `<timestamp>.<body>` with the shared secret.
    for (const r of [first!, second!]) {
      const ts = String(r.headers['x-sluice-timestamp']);
      expect(r.headers['x-sluice-signature']).toBe(signWebhook(SECRET, ts, r.body));
      expect(JSON.parse(r.body)).toMatchObject({ event: 'pipeline.completed', workflowId, tenant: 'acme' });
    }
    // The retry came after the receiver's Retry-After (2 s), not after a jittered guess.
    const gap = second!.at - first!.at;
    expect(gap).toBeGreaterThanOrEqual(1_900);
    expect(gap).toBeLessThan(2_000 + 5_000);
  });

  it('a 404 is not retried: after one request the run completes, its webhook not delivered', async () => {
    receiver.requests.length = 0;
    receiver.respond = () => ({ status: 404 });
    // The completion never fails the run (src/workflows/pipeline.ts): the result says what happened.
    const { result } = await hookedNoop<{ succeeded: number; webhook: { delivered: boolean; error: string } }>(
      'hook404',
    );
    expect(result.succeeded).toBe(1);
    expect(result.webhook.delivered).toBe(false);
    expect(result.webhook.error).toMatch(/answered 404/);
    expect(receiver.requests).toHaveLength(1);
  });
});

describe('webhook limiters', () => {
  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3_000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });

  it('limits each tenant to its own rate, independently of the others', async () => {
    const limiter = new WebhookLimiter(limiterOptions({ tenantRates: { slow: 5 }, defaultTenantRatePerSecond: 200 }));
    try {
      const started = Date.now();
      const [slow, fast] = await Promise.all([timed(limiter, 'slow', 6), timed(limiter, 'fast', 6)]);
      // 6 at 5/s: 5 gaps of 200 ms.
      expect(Math.max(...slow) - started).toBeGreaterThanOrEqual(950);
      expect(Math.max(...fast)).toBeLessThan(Math.max(...slow));
    } finally {
      await limiter.close();
    }
  });

  it('two limiters with one id share one rate through Redis', async () => {
    const id = `shared-${crypto.randomBytes(4).toString('hex')}`;
    const a = new WebhookLimiter(limiterOptions({ id, redisUrl: REDIS_URL, ratePerSecond: 20 }));
    const b = new WebhookLimiter(limiterOptions({ id, redisUrl: REDIS_URL, ratePerSecond: 20 }));
    try {
      const deadline = Date.now() + 10_000;
      while (!(a.clusterReady && b.clusterReady) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const started = Date.now();
      const times = (await Promise.all([timed(a, 'x', 20), timed(b, 'x', 20)])).flat();
      // 40 requests at 20/s between both take about 2 s (each alone would take 1 s). Redis spaces
      // the grants; the sends themselves may bunch a little after the grant (event-loop delay),
      // which is why a deployment sets the rate with headroom below the downstream's hard limit.
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_800);
      expect(maxInWindow(times, 1_000)).toBeLessThanOrEqual(26);
      expect(a.routes.cluster + b.routes.cluster).toBe(40);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('with Redis unreachable, local-share sends at the fallback rate, never unlimited', async () => {
    const dead = `redis://127.0.0.1:${await freePort()}`;
    const limiter = new WebhookLimiter(
      limiterOptions({ redisUrl: dead, ratePerSecond: 1000, fallbackRatePerSecond: 10 }),
    );
    try {
      const started = Date.now();
      const times = await timed(limiter, 'x', 11);
      expect(limiter.routes.fallback).toBe(11);
      expect(Math.max(...times) - started).toBeGreaterThanOrEqual(950);
    } finally {
      await limiter.close();
    }
  });

  it('with Redis unreachable, pause sends nothing until Redis is back', async () => {
    const dead = `redis://127.0.0.1:${await freePort()}`;
    const limiter = new WebhookLimiter(limiterOptions({ redisUrl: dead, redisFallback: 'pause' }));
    const abort = new AbortController();
    let ran = false;
    const job = limiter.schedule(
      'x',
      () => {
        ran = true;
        return Promise.resolve();
      },
      { signal: abort.signal },
    );
    await new Promise((r) => setTimeout(r, 1_500));
    abort.abort(new Error('test over'));
    await expect(job).rejects.toThrow('test over');
    expect(ran).toBe(false);
    await limiter.close();
  });

  it('a penalty (429 with Retry-After) holds requests and slows the global limiter', async () => {
    const limiter = new WebhookLimiter(limiterOptions({ ratePerSecond: 100 }));
    try {
      limiter.penalize(1_000);
      expect(limiter.slowdownFactor).toBe(2);
      const started = Date.now();
      await timed(limiter, 'x', 1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    } finally {
      await limiter.close();
    }
  });
});
