/**
 * A large report fan-out on the real server: above 500 sub-jobs the shared helper batches them
 * through child workflows, and every history (parent and children) stays under 10,240 events.
 * Kept small for CI (1,200 sub-jobs); `npm run bench:fanout` runs 10,000.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { DuckDbSource } from '../../src/data/duckdb';
import { VIDEO_LIMITS } from '../../src/shared/constants';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, startHost, type TestEnv, duckDbSource, storageOf } from '../helpers/env';
import { reportActivities, smallPartitions } from './helpers';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: DuckDbSource;

beforeAll(async () => {
  t = makeTestEnv('report-large', { SLUICE_SLOTS_DEFAULT: '24' });
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 12, 300);
  source = duckDbSource(t);
  host = await startHost(t, ['default'], reportActivities(source, storageOf(t)));
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
  await source?.close();
});

describe('large fan-out', () => {
  it('runs 1,200 sub-jobs through batched children with every history under 10,240 events', async () => {
    const common = {
      from: '2024-01',
      to: '2024-12',
      measures: ['orders', 'revenue'],
      groupBy: ['month'],
      tenant: 'big',
    };
    const { workflowId } = await client.startReportPipeline({
      ...common,
      shards: 100,
      window: 48,
      idempotencyKey: 'fan-1200',
    });
    const r = await client.getReportResult(workflowId);
    expect(r.subJobs).toBe(1_200);
    expect(r.used).toHaveLength(12);
    expect(r.partial).toBe(false);

    const parent = await client.temporal.workflow.getHandle(workflowId).describe();
    expect(parent.historyLength).toBeLessThanOrEqual(10_240);
    const children = Array.from({ length: 5 }, (_, b) => `${workflowId}/batch-${String(b).padStart(4, '0')}`);
    const described = await Promise.all(children.map((id) => client.temporal.workflow.getHandle(id).describe()));
    const lengths = described.map((d) => d.historyLength);
    // Four batches of 250 and one of 200 sub-jobs: three events (scheduled, started, completed) each.
    lengths.forEach((n, b) => {
      expect(n).toBeGreaterThan((b < 4 ? 250 : 200) * 3);
      expect(n).toBeLessThanOrEqual(10_240);
    });
    // A few children at a time (the worker holds a few batches' state, not the whole fan-out's).
    const spans = described.map((d) => ({ start: d.startTime.getTime(), end: (d.closeTime as Date).getTime() }));
    const overlap = Math.max(...spans.map((a) => spans.filter((b) => b.start <= a.start && a.start < b.end).length));
    expect(overlap).toBeGreaterThanOrEqual(2);
    expect(overlap).toBeLessThanOrEqual(VIDEO_LIMITS.childBatchParallelism);
    // The parent's history does not grow with the sub-jobs: it sees 5 children, not 1,200 activities.
    expect(parent.historyLength).toBeLessThan(200);

    // Same totals as the unsharded report.
    const plain = await client.startReportPipeline({ ...common, idempotencyKey: 'fan-plain' });
    const p = await client.getReportResult(plain.workflowId);
    const rows = (a: { path?: string }) => (JSON.parse(fs.readFileSync(a.path!, 'utf8')) as { rows: unknown[] }).rows;
    expect(rows(r.json)).toEqual(rows(p.json));
  });
});
