/**
 * Corrupt Parquet is non-retryable `InvalidData` (issue 15 item 5): a partition whose bytes are
 * not Parquet fails its sub-job once — no retry storm on the same bytes — and the pipeline's
 * failure names the type; a `partial` report leaves that month out and completes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import type { DuckDbSource } from '../../src/data/duckdb';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, startHost, type TestEnv, duckDbSource, storageOf } from '../helpers/env';
import { FaultPlan, failureOf, reportActivities, rootApplicationFailure, smallPartitions } from '../report/helpers';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: DuckDbSource;
const plan = new FaultPlan();

beforeAll(async () => {
  t = makeTestEnv('corrupt-pq');
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 2, 200);
  // March exists but is garbage: Parquet's header magic, then noise, no footer.
  fs.writeFileSync(
    path.join(t.config.reports.partitionsDir, '2024-03.parquet'),
    Buffer.concat([Buffer.from('PAR1'), Buffer.alloc(4096, 0x5a)]),
  );
  source = duckDbSource(t);
  host = await startHost(t, ['default'], reportActivities(source, storageOf(t), plan));
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
  await source?.close();
});

describe('a corrupt Parquet partition', () => {
  it('fails its sub-job once as non-retryable InvalidData', async () => {
    const { workflowId } = await client.startReportPipeline({
      from: '2024-01',
      to: '2024-03',
      measures: ['orders'],
      groupBy: ['region'],
      tenant: 'acme',
      idempotencyKey: `corrupt-${t.suffix}`,
    });
    const root = rootApplicationFailure(await failureOf(client, workflowId));
    expect(root?.type).toBe('InvalidData');
    expect(root?.nonRetryable).toBe(true);
    expect(root?.message).toMatch(/partition 2024-03 is not readable Parquet/);
    // One attempt: the same bytes would fail the same way.
    expect(
      plan.calls.filter((c) => c.workflowId === workflowId && c.month === '2024-03').map((c) => c.attempt),
    ).toEqual([1]);
  });

  it('a partial report leaves the corrupt month out and completes', async () => {
    const { workflowId } = await client.startReportPipeline({
      from: '2024-01',
      to: '2024-03',
      measures: ['orders'],
      groupBy: ['region'],
      tenant: 'acme',
      policy: 'partial',
      idempotencyKey: `corrupt-partial-${t.suffix}`,
    });
    const result = await client.getReportResult(workflowId);
    expect(result.used).toEqual(['2024-01', '2024-02']);
    expect(result.missing).toEqual([
      { month: '2024-03', reason: expect.stringMatching(/not readable Parquet/) as unknown },
    ]);
    expect(plan.callsOf(workflowId, '2024-03')).toBe(1);
  });
});
