/**
 * Retries and the dead-letter queue on the real server: the per-activity retry policy from
 * config (attempt budget, full-jitter delays measured within their bounds), a sub-job under a
 * `partial` policy dead-lettered when it exhausts its retries (embedded JSON-lines store), and a
 * DLQ round trip on PostgreSQL: a pipeline whose webhook receiver keeps failing completes and
 * its delivery is recorded, the receiver is fixed, `sluice dlq replay` starts a fresh run that
 * delivers it and is linked.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { Context } from '@temporalio/activity';
import { afterAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { FileDlqStore, PgDlqStore, openDlqStore, type DlqStore } from '../../src/dlq/store';
import type { WorkerHost } from '../../src/workers/host';
import { REPO_ROOT, connectClient, makeTestEnv, type TestEnv } from '../helpers/env';
import { startFlowHost, startReceiver, type Receiver } from './helpers';

const run = promisify(execFile);
const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

/** Runs the real CLI (TypeScript sources through tsx) with this env; returns its one JSON object. */
async function cli(t: TestEnv, args: string[]): Promise<unknown> {
  const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
  const { stdout } = await run(tsx, [path.join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...args, '--json'], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...t.env },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim()) as unknown;
}

async function metricValue(host: WorkerHost, name: string, labels: Record<string, string> = {}): Promise<number> {
  // Histograms list their _count/_sum/_bucket series under the base name.
  const base = name.replace(/_(count|sum|bucket)$/, '');
  const metric = (await host.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name || m.name === base);
  const values = (metric?.values ?? []) as {
    value: number;
    labels: Record<string, string | number>;
    metricName?: string;
  }[];
  return values
    .filter((v) => (v.metricName ?? metric?.name) === name)
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((s, v) => s + v.value, 0);
}

describe('retries and the dead-letter queue', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('retries with full-jitter delays within their bounds, then dead-letters a partial sub-job', async () => {
    const t = makeTestEnv('retry', {
      SLUICE_RETRY_POLICIES: JSON.stringify({ flaky: { maxAttempts: 5, baseMs: 400, capMs: 1_600 } }),
    });
    const client = await connectClient(t);
    const attempts: { attempt: number; start: number; end: number }[] = [];
    const host = await startFlowHost(t, ['default'], {
      async flaky(): Promise<string> {
        const start = Date.now();
        const { attempt } = Context.current().info;
        await Context.current().sleep(5);
        attempts.push({ attempt, start, end: Date.now() });
        throw new Error(`downstream hiccup on attempt ${attempt}`);
      },
      async fine(): Promise<string> {
        return Promise.resolve('fine');
      },
    });
    cleanups.push(
      () => client.close(),
      () => host.shutdown(),
    );
    const { workflowId } = await client.startJobsPipeline({
      tier: 'default',
      tenant: 'acme',
      idempotencyKey: `retry-${t.suffix}`,
      policy: { kind: 'partial' },
      jobs: [
        { activity: 'fine', input: {} },
        { activity: 'flaky', input: { doc: 'invoice-7' } },
      ],
    });
    const result = await client.getResult<{ succeeded: number; failed: { index: number; type?: string }[] }>(
      workflowId,
    );
    // The budget from config (5 attempts), not the workflow's ceiling, ended it.
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4, 5]);
    expect(result.succeeded).toBe(1);
    expect(result.failed).toEqual([expect.objectContaining({ index: 1, type: 'RetriesExhausted' })]);

    // Measured delays: attempt n+1 starts after a uniform delay in [0, min(cap, base·2^(n-1))].
    const gaps = attempts.slice(1).map((a, i) => a.start - attempts[i]!.end);
    const ceilings = [400, 800, 1_600, 1_600];
    // Slack for the server's timer and the poll round trip on a loaded machine.
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual(0);
      expect(gap).toBeLessThanOrEqual(ceilings[i]! + 1_500);
    });
    // The worker chose each delay: four observations, none above the 1.6 s cap (bucket ≤ 2 s).
    expect(await metricValue(host, 'sluice_retry_delay_seconds_count', { activity_type: 'flaky' })).toBe(4);
    expect(await metricValue(host, 'sluice_retry_delay_seconds_bucket', { activity_type: 'flaky', le: '2' })).toBe(4);
    expect(await metricValue(host, 'sluice_retry_delay_seconds_sum', { activity_type: 'flaky' })).toBeLessThanOrEqual(
      0.4 + 0.8 + 1.6 + 1.6,
    );

    // The partial policy dead-lettered the exhausted sub-job, with its input and attempts.
    const store = openDlqStore(t.config);
    expect(store).toBeInstanceOf(FileDlqStore);
    const [rec] = await store.list();
    expect(rec).toMatchObject({
      kind: 'sub-job',
      workflowId,
      activityType: 'flaky',
      subJobIndex: 1,
      input: { doc: 'invoice-7' },
      attempts: 5,
    });
    // Failure chain, outermost first: the activity failure, the spent budget, the last error.
    expect(rec!.failure[0]?.type).toBe('ActivityFailure');
    expect(rec!.failure[1]?.type).toBe('RetriesExhausted');
    expect(rec!.failure.at(-1)?.message).toContain('downstream hiccup on attempt 5');
    expect(await metricValue(host, 'sluice_dlq_depth')).toBe(1);
    // Purging by age: nothing is older than an hour; everything is older than "now + 1 s".
    expect(await store.purge(new Date(Date.now() - 3_600_000))).toBe(0);
    expect(await store.purge(new Date(Date.now() + 1_000))).toBe(1);
    expect(await store.depth()).toBe(0);
  });

  it('round trip on PostgreSQL: a failing receiver dead-letters the delivery; fixed, the replay delivers it', async () => {
    const limiterId = `dlq-${crypto.randomBytes(4).toString('hex')}`;
    const t = makeTestEnv('dlq', {
      DATABASE_URL,
      SLUICE_WEBHOOK_SECRET: 'dlq-secret',
      SLUICE_WEBHOOK_LIMITER_ID: limiterId,
      SLUICE_WEBHOOK_ALLOW: '127.0.0.1',
      SLUICE_RETRY_POLICIES: JSON.stringify({ deliverWebhook: { maxAttempts: 3, baseMs: 100, capMs: 200 } }),
    });
    const receiver: Receiver = await startReceiver();
    const client: SluiceClient = await connectClient(t);
    // The completion webhook goes on the critical tier; its replay runs on the pipeline's own.
    const host = await startFlowHost(t, ['high', 'critical'], { noop: () => Promise.resolve('done') });
    const store: DlqStore = openDlqStore(t.config);
    cleanups.push(
      () => receiver.close(),
      () => client.close(),
      () => host.shutdown(),
      () => store.close(),
    );
    expect(store).toBeInstanceOf(PgDlqStore);

    receiver.respond = () => ({ status: 500 });
    const { workflowId } = await client.startJobsPipeline({
      tier: 'high',
      tenant: 'globex',
      idempotencyKey: `dlq-${t.suffix}`,
      jobs: [{ activity: 'noop', input: {} }],
      webhook: { url: receiver.url },
    });
    // The run completes: a completion webhook that cannot be delivered never fails it.
    const result = await client.getResult<{ succeeded: number; webhook: { delivered: boolean } }>(workflowId);
    expect(result.succeeded).toBe(1);
    expect(result.webhook.delivered).toBe(false);
    expect(receiver.requests).toHaveLength(3);

    // Recorded: input, failure chain, attempts, time — found through the real CLI.
    const listed = (await cli(t, ['dlq', 'list'])) as { store: string; items: { id: string; workflowId: string }[] };
    expect(listed.store).toBe('postgres');
    const item = listed.items.find((i) => i.workflowId === workflowId);
    expect(item).toBeDefined();
    const shown = (await cli(t, ['dlq', 'show', item!.id])) as Record<string, unknown>;
    expect(shown).toMatchObject({
      kind: 'sub-job',
      activityType: 'deliverWebhook',
      workflowType: 'jobsPipelineWorkflow',
      attempts: 3,
      tenant: 'globex',
      input: { tenant: 'globex', url: receiver.url, event: 'pipeline.completed' },
    });
    expect((shown.failure as { type?: string }[]).map((f) => f.type)).toEqual(
      expect.arrayContaining(['RetriesExhausted', 'DownstreamError']),
    );
    expect(Date.now() - Date.parse(String(shown.failedAt))).toBeLessThan(120_000);
    const depthBefore = await metricValue(host, 'sluice_dlq_depth');
    expect(depthBefore).toBeGreaterThanOrEqual(1);

    // The receiver is fixed; the replay is a fresh run with the same input, linked from the record.
    receiver.respond = () => ({ status: 200 });
    const replay = (await cli(t, ['dlq', 'replay', item!.id])) as { replayedAs: string; started: boolean };
    expect(replay.started).toBe(true);
    expect(replay.replayedAs).not.toBe(workflowId);
    // The replay runs the delivery alone, as a sub-job of a jobs pipeline.
    const replayed = await client.getResult<{ results: { status: number }[] }>(replay.replayedAs);
    expect(replayed.results[0]?.status).toBe(200);
    expect(await store.get(item!.id)).toMatchObject({ replayedAs: replay.replayedAs });
    expect(await metricValue(host, 'sluice_dlq_depth')).toBe(depthBefore - 1);
    // A second replay returns the first one instead of starting another run.
    const again = (await cli(t, ['dlq', 'replay', item!.id])) as { replayedAs: string; started: boolean };
    expect(again).toMatchObject({ replayedAs: replay.replayedAs, started: false });
  });
});
