/**
 * Hostile webhook receivers against a real `sluice worker` process on the real dev server: odd
 * statuses, 101 and 1xx answers, 1000 MB and endless bodies, slow headers and bodies, resets,
 * redirect loops and garbled HTTP. The worker must stay up, its RSS must stay within 50 MB of
 * its start, and every delivery must end in a clear, typed outcome.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import type { JobsPipelineResult } from '../../src/client';
import { Tier } from '../../src/shared/constants';
import { connectClient, makeTestEnv, type TestEnv } from '../helpers/env';
import { spawnWorker, readyz, type WorkerProcess } from '../helpers/processes';
import { BEHAVIOURS, startHostileReceiver, type HostileReceiver } from './hostile-receiver';

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

describe('a worker process against hostile webhook receivers', () => {
  let t: TestEnv;
  let client: SluiceClient;
  let receiver: HostileReceiver;
  let worker: WorkerProcess;

  beforeAll(async () => {
    t = makeTestEnv('hostile', {
      SLUICE_WEBHOOK_SECRET: crypto.randomBytes(8).toString('hex'),
      SLUICE_WEBHOOK_LIMITER_ID: `hostile-${crypto.randomUUID()}`,
      SLUICE_WEBHOOK_ALLOW: '127.0.0.1',
      SLUICE_WEBHOOK_TIMEOUT_MS: '2000',
      // One attempt per delivery: the outcome of each behaviour is the first one.
      SLUICE_RETRY_POLICIES: JSON.stringify({ deliverWebhook: { maxAttempts: 1 } }),
    });
    receiver = await startHostileReceiver();
    worker = await spawnWorker(t, ['critical']);
    client = await connectClient(t);
  });
  afterAll(async () => {
    worker?.child.kill('SIGTERM');
    await worker?.exited;
    await client?.close();
    await receiver?.close();
  });

  async function deliverAll(key: string, names: readonly string[]): Promise<JobsPipelineResult> {
    const { workflowId } = await client.startJobsPipeline({
      tier: Tier.critical,
      tenant: 'hostile',
      idempotencyKey: key,
      window: names.length,
      policy: { kind: 'partial' },
      jobs: names.map((name) => ({
        activity: 'deliverWebhook',
        input: { url: `${receiver.origin}/${name}`, tenant: 'hostile', event: 'test', data: { name } },
      })),
    });
    // A worker that dies fails the test at once, with its exit code, instead of at the timeout.
    const died = worker.exited.then((code) => {
      throw new Error(
        `the worker process exited (code ${code}) during the deliveries:\n${worker.stderr().slice(-2000)}`,
      );
    });
    return Promise.race([client.getResult<JobsPipelineResult>(workflowId), died]);
  }

  it(`survives ${BEHAVIOURS.length} behaviours with bounded memory and a typed outcome for each`, async () => {
    // Warm-up: one good delivery, so the start RSS includes the HTTP client.
    const warm = await deliverAll(`warm-${t.suffix}`, ['ok']);
    expect(warm.succeeded).toBe(1);
    const startRss = rssMb(worker.child.pid!);
    let peakRss = startRss;
    const sampler = setInterval(() => {
      try {
        peakRss = Math.max(peakRss, rssMb(worker.child.pid!));
      } catch {
        // The process is gone: the assertions below say so.
      }
    }, 50);
    let result: JobsPipelineResult;
    try {
      result = await deliverAll(
        `all-${t.suffix}`,
        BEHAVIOURS.map((b) => b.name),
      );
    } finally {
      clearInterval(sampler);
    }

    const outcomes = BEHAVIOURS.map((b, index) => {
      const failure = result.failed.find((f) => f.index === index);
      if (!failure) return { name: b.name, expected: b.expected, got: 'delivered' };
      // A retryable failure ends as RetriesExhausted naming the last failure's type; a final one is its own type.
      const got =
        failure.type === 'RetriesExhausted'
          ? (/last \((\w+)\)/.exec(failure.message)?.[1] ?? failure.type)
          : failure.type;
      return { name: b.name, expected: b.expected, got, message: failure.message };
    });
    process.stderr.write(
      `hostile receivers: RSS start ${startRss.toFixed(1)} MB, peak ${peakRss.toFixed(1)} MB\n` +
        outcomes.map((o) => `  ${o.name.padEnd(28)} ${o.got}`).join('\n') +
        '\n',
    );
    expect(outcomes.map((o) => [o.name, o.got])).toEqual(outcomes.map((o) => [o.name, o.expected]));
    expect(worker.child.exitCode).toBeNull();
    expect(await readyz(worker.port)).toBe(200);
    expect(peakRss - startRss).toBeLessThan(50);
  });
});
