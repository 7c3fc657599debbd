/**
 * Three worker processes share one webhook limit through Redis. The receiver (127.0.0.1,
 * started here) allows 50 requests in any one-second window and answers 429 + Retry-After above
 * that. The workers are real `sluice worker` processes (the CLI run from the TypeScript sources),
 * each with its own limiter instance and Redis connection; the cluster rate is set to 30/s, with
 * headroom under the receiver's 50: the limiter spaces requests when Redis admits them, and a
 * sender whose event loop is late (CI runs other test files beside this one on two cores) sends
 * its admitted request late, next to the others' on-time ones. At 40/s a loaded CI run saw 52 in
 * one second; docs/configuration.md tells operators to leave the same headroom.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { freePort } from '../../src/devserver/dev-server';
import { REPO_ROOT, connectClient, makeTestEnv, type TestEnv } from '../helpers/env';
import { maxInWindow, startReceiver, waitFor, type Receiver } from './helpers';

const DELIVERIES = 240;
const RECEIVER_LIMIT = 50;

interface Child {
  proc: ChildProcess;
  port: number;
  log: string[];
  exited: Promise<number | null>;
}

async function scrape(port: number, metric: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(metric))
    .reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);
}

describe('three worker processes share the Redis limiter', () => {
  let t: TestEnv;
  let client: SluiceClient;
  let receiver: Receiver;
  const children: Child[] = [];
  let arrivals: number[] = [];

  beforeAll(async () => {
    receiver = await startReceiver();
    // The receiver's own rule: at most 50 in the last second, else 429 with Retry-After.
    receiver.respond = () => {
      const now = Date.now();
      arrivals.push(now);
      const inWindow = arrivals.filter((a) => now - a < 1_000).length;
      return inWindow > RECEIVER_LIMIT ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 };
    };
    t = makeTestEnv('cluster', {
      REDIS_URL: 'redis://127.0.0.1:6379',
      SLUICE_WEBHOOK_LIMITER_ID: `cluster-${crypto.randomBytes(5).toString('hex')}`,
      SLUICE_WEBHOOK_RATE_PER_SECOND: '30',
      SLUICE_WEBHOOK_LOCAL_RATE_PER_SECOND: '30',
      SLUICE_WEBHOOK_TENANT_RATE_PER_SECOND: '1000',
      SLUICE_WEBHOOK_SECRET: 'cluster-secret',
      SLUICE_WEBHOOK_ALLOW: '127.0.0.1',
      SLUICE_SLOTS_DEFAULT: '16',
      SLUICE_LOG_LEVEL: 'warn',
    });
    client = await connectClient(t);
    // The compiled CLI (`npm test` builds first) starts from the prebuilt workflow bundle.
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const proc = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'sluice'), 'worker', '--tiers', 'default'], {
        cwd: REPO_ROOT,
        env: { ...process.env, ...t.env, SLUICE_METRICS_PORT: String(port) },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const log: string[] = [];
      proc.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
      children.push({ proc, port, log, exited });
    }
    for (const c of children) {
      await waitFor(
        `worker on :${c.port} ready`,
        async () => {
          if (c.proc.exitCode !== null) throw new Error(`worker exited: ${c.log.join('').slice(-2000)}`);
          return fetch(`http://127.0.0.1:${c.port}/readyz`).then(
            (r) => r.ok,
            () => false,
          );
        },
        150_000,
        500,
      );
    }
  }, 170_000);

  afterAll(async () => {
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGTERM');
    await Promise.all(
      children.map((c) =>
        Promise.race([c.exited, new Promise((r) => setTimeout(r, 15_000))]).then(() => {
          if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
        }),
      ),
    );
    await client?.close();
    await receiver?.close();
  });

  it('the receiver never sees more than 50 in any second, and every delivery completes', async () => {
    arrivals = [];
    const { workflowId } = await client.startJobsPipeline({
      tier: 'default',
      tenant: 'acme',
      idempotencyKey: `cluster-${t.suffix}`,
      window: DELIVERIES,
      jobs: Array.from({ length: DELIVERIES }, (_, i) => ({
        activity: 'deliverWebhook',
        input: { url: receiver.url, tenant: 'acme', event: 'item.ready', data: { i } },
      })),
    });
    const result = await client.getResult<{ succeeded: number; failed: unknown[] }>(workflowId);
    expect(result.succeeded).toBe(DELIVERIES);
    expect(result.failed).toEqual([]);

    const ok = receiver.requests.filter((r) => r.status === 200);
    expect(new Set(ok.map((r) => r.headers['idempotency-key'])).size).toBe(DELIVERIES);
    expect(maxInWindow(arrivals, 1_000)).toBeLessThanOrEqual(RECEIVER_LIMIT);
    expect(receiver.requests.filter((r) => r.status === 429)).toHaveLength(0);
    // The work really was spread over separate processes (each with its own limiter instance).
    const perProcess = await Promise.all(
      children.map((c) => scrape(c.port, 'sluice_activities_completed_total{activity_type="deliverWebhook"')),
    );
    process.stderr.write(
      `[cluster] max in any 1 s: ${maxInWindow(arrivals, 1_000)}; deliveries per process: ${perProcess.join(', ')}\n`,
    );
    expect(perProcess.reduce((a, b) => a + b, 0)).toBe(DELIVERIES);
    expect(perProcess.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  }, 150_000);
});
