/**
 * The one ending of every pipeline (src/workflows/pipeline.ts), on the real dev server: a failed
 * report is dead-lettered with its input as a failed video is, and the jobs pipeline delivers its
 * completion webhook on the critical tier, where a receiver that refuses it for good leaves the
 * run complete and the delivery dead-lettered, as the video and report pipelines do.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { openDlqStore } from '../../src/dlq/store';
import { createBurstActivities } from '../../src/activities/burst';
import type { WorkerHost } from '../../src/workers/host';
import type { JobsPipelineResult } from '../../src/workflows/jobs-pipeline';
import { connectClient, duckDbSource, makeTestEnv, storageOf, type TestEnv } from '../helpers/env';
import type { DuckDbSource } from '../../src/data/duckdb';
import { startFlowHost, startReceiver, type Receiver } from '../flow/helpers';
import { failureOf, reportActivities, rootApplicationFailure, smallPartitions } from '../report/helpers';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let receiver: Receiver;
let source: DuckDbSource;

beforeAll(async () => {
  receiver = await startReceiver();
  t = makeTestEnv('ending', { SLUICE_WEBHOOK_SECRET: 'ending-secret', SLUICE_WEBHOOK_ALLOW: '127.0.0.1' });
  await smallPartitions(t.config.reports.partitionsDir, '2025-01', 2);
  source = duckDbSource(t);
  host = await startFlowHost(t, ['default', 'critical'], {
    ...createBurstActivities(),
    ...reportActivities(source, storageOf(t)),
  });
  client = await connectClient(t);
}, 120_000);

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
  await source?.close();
  await receiver?.close();
});

const key = (name: string) => `${name}-${crypto.randomBytes(3).toString('hex')}`;

describe('a failed pipeline is dead-lettered', () => {
  it('a report that fails (a month without a partition) is recorded with its input, for `sluice dlq replay`', async () => {
    const input = { from: '2025-01', to: '2025-03', tenant: 'ending', idempotencyKey: key('report-missing') };
    const { workflowId } = await client.startReportPipeline(input);
    const err = await failureOf(client, workflowId);
    expect(rootApplicationFailure(err)?.type).toBe('NotFound');

    const records = await openDlqStore(t.config).list();
    const rec = records.find((r) => r.workflowId === workflowId);
    expect(rec).toMatchObject({
      kind: 'pipeline',
      workflowType: 'reportPipelineWorkflow',
      tenant: 'ending',
      input: { from: '2025-01', to: '2025-03', tenant: 'ending' },
    });
    expect(rec!.failure.some((l) => l.type === 'NotFound')).toBe(true);
  }, 120_000);
});

describe('the jobs pipeline ends as the others do', () => {
  it('delivers its completion webhook on the critical tier, with the critical task queue', async () => {
    receiver.requests.length = 0;
    receiver.respond = () => ({ status: 200 });
    const { workflowId } = await client.startJobsPipeline({
      tier: 'default',
      tenant: 'ending',
      idempotencyKey: key('jobs-ok'),
      jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 1 } }],
      webhook: { url: receiver.url },
    });
    const result = await client.getResult<JobsPipelineResult>(workflowId);
    expect(result.succeeded).toBe(1);
    expect(result.webhook).toMatchObject({ delivered: true, status: 200, attempt: 1 });
    expect(receiver.requests).toHaveLength(1);
    expect(JSON.parse(receiver.requests[0]!.body)).toMatchObject({
      event: 'pipeline.completed',
      workflowId,
      tenant: 'ending',
      data: { kind: 'jobs', succeeded: 1, failed: 0 },
    });
    const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
    const scheduled = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes)
      .find((a) => a?.activityType?.name === 'deliverWebhook');
    expect(scheduled?.taskQueue?.name).toBe(`sluice-critical-${t.suffix}`);
  }, 120_000);

  it('a webhook refused for good does not fail the run: it completes, says "not delivered", and the delivery is dead-lettered', async () => {
    receiver.requests.length = 0;
    receiver.respond = () => ({ status: 410 });
    const { workflowId } = await client.startJobsPipeline({
      tier: 'default',
      tenant: 'ending',
      idempotencyKey: key('jobs-gone'),
      jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 1 } }],
      webhook: { url: receiver.url },
    });
    const result = await client.getResult<JobsPipelineResult>(workflowId);
    expect(result.succeeded).toBe(1);
    expect(result.webhook?.delivered).toBe(false);
    expect(result.webhook?.error).toMatch(/answered 410/);
    // 410 is not retried.
    expect(receiver.requests).toHaveLength(1);

    const records = await openDlqStore(t.config).list();
    const mine = records.filter((r) => r.workflowId === workflowId);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      kind: 'sub-job',
      activityType: 'deliverWebhook',
      tenant: 'ending',
      input: { url: receiver.url, event: 'pipeline.completed' },
    });
  }, 120_000);
});
