/**
 * A dead letter that cannot be written is never silent (issue 15 item 3): with the DLQ store
 * unreachable (DATABASE_URL on a port nobody listens on), the record is retried within the
 * pipeline's retry budget, then the run's result says `deadLetter: { written: false, error }` and
 * `sluice_dlq_write_failures_total` counts it. The pipeline itself still ends as its policy says.
 */
import { Context } from '@temporalio/activity';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/devserver/dev-server';
import type { DeadLetterStatus } from '../../src/shared/fan-out';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv } from '../helpers/env';
import { startFlowHost } from './helpers';

async function counter(host: WorkerHost, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await host.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  expect(metric, `${name} is registered`).toBeDefined();
  return (metric!.values as { value: number; labels: Record<string, string | number> }[])
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((s, v) => s + v.value, 0);
}

describe('a dead letter that cannot be written', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('is retried within the budget, then reported in the result and counted', async () => {
    const deadPort = await freePort();
    const t = makeTestEnv('dlq-lost', {
      DATABASE_URL: `postgres://postgres@127.0.0.1:${deadPort}/nowhere`,
      SLUICE_RETRY_POLICIES: JSON.stringify({
        doomed: { maxAttempts: 2, baseMs: 50, capMs: 100 },
        recordDeadLetter: { maxAttempts: 3, baseMs: 100, capMs: 200 },
      }),
    });
    const client = await connectClient(t);
    const host = await startFlowHost(t, ['default'], {
      doomed(): Promise<string> {
        return Promise.reject(new Error(`still broken on attempt ${Context.current().info.attempt}`));
      },
      fine: () => Promise.resolve('fine'),
    });
    cleanups.push(
      () => client.close(),
      () => host.shutdown(),
    );

    const { workflowId } = await client.startJobsPipeline({
      tier: 'default',
      tenant: 'acme',
      idempotencyKey: `dlq-lost-${t.suffix}`,
      policy: { kind: 'partial' },
      jobs: [
        { activity: 'fine', input: {} },
        { activity: 'doomed', input: { doc: 'invoice-9' } },
      ],
    });
    const result = await client.getResult<{ succeeded: number; deadLetter?: DeadLetterStatus }>(workflowId);

    // The partial policy completes the run; the lost record is in its result, not swallowed.
    expect(result.succeeded).toBe(1);
    expect(result.deadLetter).toMatchObject({ written: false, lost: 1 });
    expect(result.deadLetter?.error, JSON.stringify(result)).toMatch(
      /recordDeadLetter: 3 of 3 attempts failed.*ECONNREFUSED/,
    );
    // The write was attempted as often as the budget for recordDeadLetter allows (3), then given up.
    expect(await counter(host, 'sluice_activities_failed_total', { activity_type: 'recordDeadLetter' })).toBe(3);
    expect(
      await counter(host, 'sluice_dlq_write_failures_total', {
        kind: 'sub-job',
        workflow_type: 'jobsPipelineWorkflow',
      }),
    ).toBe(1);
  });
});
