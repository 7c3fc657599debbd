/**
 * Fault: Redis stops while rate-limited webhook deliveries run, then comes back empty.
 *
 * A private redis-server on a free port (no persistence, so the restart loses the limiter's
 * shared settings, as a real crash without AOF would). The worker's limiter runs the cluster route
 * at 20/s; with Redis down the documented `local-share` fallback takes over at 5/s; once Redis
 * answers again the cluster route resumes by itself. The receiver answers 429 above 25 requests
 * in any second, so "never exceeded" is checked by the downstream itself as well as by the
 * arrival times.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { freePort } from '../../src/devserver/dev-server';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, startHost, type TestEnv } from '../helpers/env';
import { until } from '../helpers/processes';
import { maxInWindow, startReceiver, type Receiver } from '../flow/helpers';

const DELIVERIES = 150;
const RECEIVER_LIMIT = 25;
const CLUSTER_RATE = 20;
const FALLBACK_RATE = 5;

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let receiver: Receiver;
let redisPort: number;
let redis: ChildProcess | undefined;

async function startRedis(): Promise<void> {
  const proc = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  redis = proc;
  await until(
    'redis-server to accept connections',
    () =>
      new Promise<boolean>((resolve) => {
        const probe = spawn('redis-cli', ['-p', String(redisPort), 'ping'], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        probe.stdout.on('data', (d: Buffer) => (out += d.toString()));
        probe.once('close', () => resolve(out.trim() === 'PONG'));
      }),
    (ok) => ok || proc.exitCode !== null,
    10_000,
  );
  if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}`);
}

async function stopRedis(): Promise<void> {
  const proc = redis;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGKILL');
  await exited;
}

async function sent(route: 'cluster' | 'fallback'): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${host.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`sluice_ratelimit_sent_total{route="${route}"}`));
  return Number(line?.split(' ').at(-1) ?? 0);
}

beforeAll(async () => {
  redisPort = await freePort();
  await startRedis();
  receiver = await startReceiver();
  const arrivals: number[] = [];
  receiver.respond = () => {
    const now = Date.now();
    arrivals.push(now);
    return arrivals.filter((a) => now - a < 1_000).length > RECEIVER_LIMIT
      ? { status: 429, headers: { 'retry-after': '1' } }
      : { status: 200 };
  };
  t = makeTestEnv('fault-redis', {
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    SLUICE_WEBHOOK_LIMITER_ID: `fault-redis-${redisPort}`,
    SLUICE_WEBHOOK_RATE_PER_SECOND: String(CLUSTER_RATE),
    SLUICE_WEBHOOK_LOCAL_RATE_PER_SECOND: '100',
    SLUICE_WEBHOOK_TENANT_RATE_PER_SECOND: '1000',
    SLUICE_WEBHOOK_REDIS_FALLBACK: 'local-share',
    SLUICE_WEBHOOK_FALLBACK_RATE_PER_SECOND: String(FALLBACK_RATE),
    SLUICE_WEBHOOK_SECRET: 'fault-redis-secret',
    SLUICE_WEBHOOK_ALLOW: '127.0.0.1',
    SLUICE_SLOTS_DEFAULT: '16',
  });
  host = await startHost(t, ['default']);
  client = await connectClient(t);
}, 60_000);

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
  await receiver?.close();
  await stopRedis();
});

describe('Redis stops during rate-limited deliveries', () => {
  it('falls back to the local share, never exceeds the limit, and returns to the cluster route', async () => {
    const { workflowId } = await client.startJobsPipeline({
      tier: 'default',
      tenant: 'acme',
      idempotencyKey: `redis-${t.suffix}`,
      window: DELIVERIES,
      jobs: Array.from({ length: DELIVERIES }, (_, i) => ({
        activity: 'deliverWebhook',
        input: { url: receiver.url, tenant: 'acme', event: 'item.ready', data: { i } },
      })),
    });

    // Phase 1: Redis up — deliveries go through the cluster limiter.
    await until(
      '30 deliveries through the cluster route',
      () => sent('cluster'),
      (n) => n >= 30,
      30_000,
    );

    // Phase 2: Redis gone — the local share takes over, at the fallback rate.
    await stopRedis();
    const downAt = Date.now();
    const fallbackBefore = await sent('fallback');
    await until(
      'deliveries through the fallback route',
      () => sent('fallback'),
      (n) => n >= fallbackBefore + 15,
      30_000,
    );
    const upAt = Date.now();
    // Requests the cluster admitted before Redis went away keep the send times it reserved for
    // them (at most the limiter's concurrency × its spacing ahead, under a second here); after
    // those, only the local share sends: spacing of 1000 / 5 ms, at most 5 in any second, one more
    // at a window's edge.
    const duringOutage = receiver.requests.filter((r) => r.at > downAt + 1_500 && r.at < upAt).map((r) => r.at);
    expect(duringOutage.length).toBeGreaterThanOrEqual(5);
    expect(maxInWindow(duringOutage, 1_000)).toBeLessThanOrEqual(FALLBACK_RATE + 1);

    // Phase 3: Redis back, empty — the cluster route resumes without a restart of the worker.
    const clusterBefore = await sent('cluster');
    await startRedis();
    await until(
      'deliveries through the cluster route again',
      () => sent('cluster'),
      (n) => n > clusterBefore,
      20_000,
    );

    const result = await client.getResult<{ succeeded: number; failed: unknown[] }>(workflowId);
    expect(result.failed).toEqual([]);
    expect(result.succeeded).toBe(DELIVERIES);

    const ok = receiver.requests.filter((r) => r.status === 200);
    expect(new Set(ok.map((r) => r.headers['idempotency-key'])).size).toBe(DELIVERIES);
    expect(receiver.requests.filter((r) => r.status === 429)).toHaveLength(0);
    expect(
      maxInWindow(
        receiver.requests.map((r) => r.at),
        1_000,
      ),
    ).toBeLessThanOrEqual(RECEIVER_LIMIT);
    expect((await sent('cluster')) + (await sent('fallback'))).toBeGreaterThanOrEqual(DELIVERIES);
    process.stderr.write(
      `[redis-stopped] cluster ${await sent('cluster')}, fallback ${await sent('fallback')}, ` +
        `max in 1 s overall ${maxInWindow(
          receiver.requests.map((r) => r.at),
          1_000,
        )}, during outage ${maxInWindow(duringOutage, 1_000)}\n`,
    );
  }, 120_000);
});
