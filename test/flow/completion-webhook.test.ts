/**
 * A pipeline's completion webhook, end to end on the real server: a report with `webhook` POSTs
 * a signed `pipeline.completed` on the critical tier once its artifacts are written; a receiver
 * that refuses it for good (410) leaves the report complete, its artifacts in place, the result
 * saying "not delivered" and the delivery in the dead-letter queue for `sluice dlq replay`.
 * Every pipeline ends that way (src/workflows/pipeline.ts): the jobs pipeline too, and a failed
 * report is dead-lettered with its input as a failed video is.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signWebhook } from '../../src/activities/notify';
import type { SluiceClient } from '../../src/client';
import { openDlqStore } from '../../src/dlq/store';
import type { ReportPipelineResult } from '../../src/shared/report';
import type { WorkerHost } from '../../src/workers/host';
import type { JobsPipelineResult } from '../../src/workflows/jobs-pipeline';
import { connectClient, makeTestEnv, startHost, type TestEnv } from '../helpers/env';
import { failureOf, rootApplicationFailure, smallPartitions } from '../report/helpers';
import { scheduledQueue, startReceiver, type Receiver } from './helpers';

const SECRET = 'completion-webhook-secret';
let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let receiver: Receiver;

beforeAll(async () => {
  receiver = await startReceiver();
  t = makeTestEnv('completion-webhook', { SLUICE_WEBHOOK_SECRET: SECRET, SLUICE_WEBHOOK_ALLOW: '127.0.0.1' });
  await smallPartitions(t.config.reports.partitionsDir, '2025-01', 2);
  host = await startHost(t, ['default', 'critical']);
  client = await connectClient(t);
}, 60_000);

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
  await receiver?.close();
});

/** A two-month report of tenant `hooked` whose completion webhook goes to the receiver. */
const startHookedReport = (idempotencyKey: string, format: 'csv' | 'json') =>
  client.startReportPipeline({
    from: '2025-01',
    to: '2025-02',
    format,
    tenant: 'hooked',
    idempotencyKey,
    webhook: { url: receiver.url },
  });

describe('completion webhook of a report', () => {
  it('POSTs a signed pipeline.completed naming the artifacts, on the critical tier', async () => {
    receiver.respond = () => ({ status: 202 });
    const { workflowId } = await startHookedReport('ok', 'csv');
    const result = await client.getResult<ReportPipelineResult>(workflowId);
    expect(result.webhook).toMatchObject({ delivered: true, status: 202, attempt: 1 });

    expect(receiver.requests).toHaveLength(1);
    const [req] = receiver.requests;
    const ts = String(req!.headers['x-sluice-timestamp']);
    expect(req!.headers['x-sluice-signature']).toBe(signWebhook(SECRET, ts, req!.body));
    expect(req!.headers['idempotency-key']).toBe(result.webhook?.idempotencyKey);
    expect(JSON.parse(req!.body)).toEqual({
      event: 'pipeline.completed',
      workflowId,
      tenant: 'hooked',
      data: {
        kind: 'report',
        from: '2025-01',
        to: '2025-02',
        partial: false,
        missing: [],
        primary: result.primary.uri,
        rows: result.rows,
      },
    });

    // The delivery ran on the critical tier's queue, with the critical priority key.
    expect(await scheduledQueue(client, workflowId, 'deliverWebhook')).toBe(`sluice-critical-${t.suffix}`);
  }, 120_000);

  it('a receiver that refuses for good: the report still completes and the delivery is dead-lettered', async () => {
    receiver.requests.length = 0;
    receiver.respond = () => ({ status: 410 });
    const { workflowId } = await startHookedReport('gone', 'json');
    const result = await client.getResult<ReportPipelineResult>(workflowId);
    expect(result.webhook?.delivered).toBe(false);
    expect(result.webhook?.error).toMatch(/answered 410/);
    expect(fs.existsSync(result.primary.path!)).toBe(true);
    // 410 is not retried.
    expect(receiver.requests).toHaveLength(1);

    const records = await openDlqStore(t.config).list();
    expect(records.find((r) => r.workflowId === workflowId)).toMatchObject({
      kind: 'sub-job',
      activityType: 'deliverWebhook',
      tenant: 'hooked',
      input: { url: receiver.url, event: 'pipeline.completed' },
    });
  }, 120_000);
});

const key = (name: string) => `${name}-${crypto.randomBytes(3).toString('hex')}`;

/** The dead letters recorded by run `workflowId`. */
const deadLettersOf = async (workflowId: string) =>
  (await openDlqStore(t.config).list()).filter((r) => r.workflowId === workflowId);

describe('a failed pipeline is dead-lettered', () => {
  it('a report that fails (a month without a partition) is recorded with its input, for `sluice dlq replay`', async () => {
    const input = { from: '2025-01', to: '2025-03', tenant: 'hooked', idempotencyKey: key('report-missing') };
    const { workflowId } = await client.startReportPipeline(input);
    expect(rootApplicationFailure(await failureOf(client, workflowId))?.type).toBe('NotFound');

    const [rec, ...more] = await deadLettersOf(workflowId);
    expect(more).toHaveLength(0);
    expect(rec).toMatchObject({
      kind: 'pipeline',
      workflowType: 'reportPipelineWorkflow',
      tenant: 'hooked',
      input: { from: '2025-01', to: '2025-03', tenant: 'hooked' },
    });
    expect(rec!.failure.some((l) => l.type === 'NotFound')).toBe(true);
  }, 120_000);
});

describe('the jobs pipeline ends as the others do', () => {
  /** A one-sub-job pipeline on the default tier whose webhook the receiver answers with `status`. */
  async function hookedJobs(status: number): Promise<{ workflowId: string; result: JobsPipelineResult }> {
    receiver.requests.length = 0;
    receiver.respond = () => ({ status });
    const { workflowId } = await client.startJobsPipeline({
      tier: 'default',
      tenant: 'hooked',
      idempotencyKey: key(`jobs-${status}`),
      jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 1 } }],
      webhook: { url: receiver.url },
    });
    const result = await client.getResult<JobsPipelineResult>(workflowId);
    expect(result.succeeded).toBe(1);
    // One request: a 200 is done, a 410 is not retried.
    expect(receiver.requests).toHaveLength(1);
    return { workflowId, result };
  }

  it('delivers its completion webhook on the critical tier, with the critical task queue', async () => {
    const { workflowId, result } = await hookedJobs(200);
    expect(result.webhook).toMatchObject({ delivered: true, status: 200, attempt: 1 });
    expect(JSON.parse(receiver.requests[0]!.body)).toMatchObject({
      event: 'pipeline.completed',
      workflowId,
      tenant: 'hooked',
      data: { kind: 'jobs', succeeded: 1, failed: 0 },
    });
    expect(await scheduledQueue(client, workflowId, 'deliverWebhook')).toBe(`sluice-critical-${t.suffix}`);
  }, 120_000);

  it('a webhook refused for good does not fail the run: it completes, says "not delivered", and the delivery is dead-lettered', async () => {
    const { workflowId, result } = await hookedJobs(410);
    expect(result.webhook?.delivered).toBe(false);
    expect(result.webhook?.error).toMatch(/answered 410/);
    const [rec, ...more] = await deadLettersOf(workflowId);
    expect(more).toHaveLength(0);
    expect(rec).toMatchObject({ kind: 'sub-job', activityType: 'deliverWebhook', tenant: 'hooked' });
    expect(rec?.input).toMatchObject({ url: receiver.url, event: 'pipeline.completed' });
  }, 120_000);
});
