/**
 * Priority and fairness inside one queue, on the real dev server (matching.useNewMatcher and
 * matching.enableFairness on). One activity slot makes dispatch order observable; the activity
 * worker starts only once the whole backlog is queued.
 */
import { Context } from '@temporalio/activity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { freePort, startDevServer, type DevServerHandle } from '../../src/devserver/dev-server';
import { connectClient, makeTestEnv, type TestEnv } from '../helpers/env';
import { startFlowHost, startWorkflowOnlyWorker, waitFor } from './helpers';

interface Dispatch {
  label: string;
  priorityKey: number | undefined;
  fairnessKey: string | undefined;
  fairnessWeight: number | undefined;
}

function recordingActivities(log: Dispatch[]) {
  return {
    async recordDispatch(input: { label: string }): Promise<string> {
      const { priority } = Context.current().info;
      log.push({
        label: input.label,
        priorityKey: priority?.priorityKey,
        fairnessKey: priority?.fairnessKey,
        fairnessWeight: priority?.fairnessWeight,
      });
      await new Promise((r) => setTimeout(r, 30));
      return input.label;
    },
  };
}

async function pendingActivities(client: SluiceClient, workflowId: string): Promise<number> {
  const d = await client.temporal.workflow.getHandle(workflowId).describe();
  return d.raw.pendingActivities?.length ?? 0;
}

describe('priority and fairness within a queue', () => {
  let t: TestEnv;
  let client: SluiceClient;
  let server: DevServerHandle | undefined;

  beforeAll(async () => {
    // Priority and fairness order tasks within a task-queue partition; a queue has 4 partitions
    // by default and a poller takes from one at a time. To observe the order exactly, this file
    // runs its own dev server (same binary, same priority/fairness flags) with one partition.
    server = await startDevServer({
      port: await freePort(),
      uiPort: await freePort(),
      dbFile: undefined,
      namespace: 'default',
      cliPath: process.env.TEMPORAL_CLI_PATH,
      extraArgs: [
        '--headless',
        '--dynamic-config-value',
        'matching.numTaskqueueReadPartitions=1',
        '--dynamic-config-value',
        'matching.numTaskqueueWritePartitions=1',
      ],
      log: () => undefined,
    });
    // One slot for the `default` tier: the pool of a one-tier process is its tier's slots.
    t = makeTestEnv('prio', {
      TEMPORAL_ADDRESS: server.address,
      SLUICE_SLOTS_DEFAULT: '1',
      SLUICE_FAIRNESS_WEIGHTS: 'small=1,flood=1,acme=2',
    });
    client = await connectClient(t);
  });
  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  it('dispatches higher priority (lower key) first within one queue', async () => {
    const keys = [5, 3, 1, 5, 3, 1, 5, 3, 1];
    const wf = await startWorkflowOnlyWorker(t, 'default');
    const ids: string[] = [];
    try {
      for (const [i, key] of keys.entries()) {
        const { workflowId } = await client.startJobsPipeline({
          tier: 'default',
          tenant: 'acme',
          idempotencyKey: `prio-${t.suffix}-${i}`,
          priorityKey: key,
          jobs: [{ activity: 'recordDispatch', input: { label: `p${key}-${i}` } }],
        });
        ids.push(workflowId);
      }
      // Backlog queued: every pipeline has its sub-job scheduled, nobody polls activities yet.
      await waitFor(
        'all sub-jobs scheduled',
        async () => (await Promise.all(ids.map((id) => pendingActivities(client, id)))).every((n) => n === 1),
        30_000,
      );
    } finally {
      await wf.stop();
    }
    const log: Dispatch[] = [];
    const host = await startFlowHost(t, ['default'], recordingActivities(log));
    try {
      await Promise.all(ids.map((id) => client.getResult(id)));
    } finally {
      await host.shutdown();
    }
    const order = log.map((d) => d.priorityKey);
    // The priority set at start reached the activity, and tasks came out in key order.
    expect(order).toEqual([1, 1, 1, 3, 3, 3, 5, 5, 5]);
    // Fairness key (the tenant) and its configured weight went along to every activity.
    expect(log.every((d) => d.fairnessKey === 'acme' && d.fairnessWeight === 2)).toBe(true);
  });

  it('a tenant flooding the queue does not starve another tenant', async () => {
    const wf = await startWorkflowOnlyWorker(t, 'default');
    let flood: string;
    let small: string;
    try {
      ({ workflowId: flood } = await client.startJobsPipeline({
        tier: 'default',
        tenant: 'flood',
        idempotencyKey: `flood-${t.suffix}`,
        window: 40,
        jobs: Array.from({ length: 40 }, (_, i) => ({ activity: 'recordDispatch', input: { label: `flood-${i}` } })),
      }));
      await waitFor('flood queued', async () => (await pendingActivities(client, flood)) === 40, 30_000);
      // The small tenant arrives after the flood is queued: plain FIFO would serve it 41st.
      ({ workflowId: small } = await client.startJobsPipeline({
        tier: 'default',
        tenant: 'small',
        idempotencyKey: `small-${t.suffix}`,
        window: 3,
        jobs: Array.from({ length: 3 }, (_, i) => ({ activity: 'recordDispatch', input: { label: `small-${i}` } })),
      }));
      await waitFor('small queued', async () => (await pendingActivities(client, small)) === 3, 30_000);
    } finally {
      await wf.stop();
    }
    const log: Dispatch[] = [];
    const host = await startFlowHost(t, ['default'], recordingActivities(log));
    try {
      await Promise.all([client.getResult(flood), client.getResult(small)]);
    } finally {
      await host.shutdown();
    }
    expect(log).toHaveLength(43);
    const smallPositions = log.flatMap((d, i) => (d.fairnessKey === 'small' ? [i] : []));
    expect(smallPositions).toHaveLength(3);
    // Fair share between two tenants: the small tenant's three land among the first dispatches,
    // interleaved with the flood, not after all 40 of it.
    expect(Math.max(...smallPositions)).toBeLessThan(12);
  });
});
