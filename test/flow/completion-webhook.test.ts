/**
 * A pipeline's completion webhook, end to end on the real server: a report with `webhook` POSTs
 * a signed `pipeline.completed` on the critical tier once its artifacts are written; a receiver
 * that refuses it for good (410) leaves the report complete, its artifacts in place, the result
 * saying "not delivered" and the delivery in the dead-letter queue for `sluice dlq replay`.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signWebhook } from '../../src/activities/notify';
import type { SluiceClient } from '../../src/client';
import { openDlqStore } from '../../src/dlq/store';
import type { ReportPipelineResult } from '../../src/shared/report';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, startHost, type TestEnv } from '../helpers/env';
import { smallPartitions } from '../report/helpers';
import { startReceiver, type Receiver } from './helpers';

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
    const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
    const scheduled = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes)
      .find((a) => a?.activityType?.name === 'deliverWebhook');
    expect(scheduled?.taskQueue?.name).toBe(`sluice-critical-${t.suffix}`);
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
