/**
 * The report pipeline end to end on the real dev server with real DuckDB over small generated
 * Parquet partitions: artifacts and their numbers, bad input, missing partitions, and every
 * fan-in failure policy with injected failures.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, type SluiceClient } from '../../src/client';
import { DuckDbSource, openDuckDb, partitionFile } from '../../src/data/duckdb';
import { FailureType } from '../../src/shared/constants';
import type { ReportPipelineResult } from '../../src/shared/report';
import type { WorkerHost } from '../../src/workers/host';
import {
  connectClient,
  listFiles,
  makeTestEnv,
  startHost,
  type TestEnv,
  duckDbSource,
  storageOf,
} from '../helpers/env';
import {
  FaultPlan,
  failureOf,
  reportActivities,
  rootApplicationFailure,
  searchAttributes,
  smallPartitions,
} from './helpers';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: DuckDbSource;
const plan = new FaultPlan();

beforeAll(async () => {
  t = makeTestEnv('report', { SLUICE_SLOTS_DEFAULT: '8' });
  // Six months of data: 2024-01 … 2024-06. 2024-07 onwards has no partition.
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 6);
  source = duckDbSource(t);
  host = await startHost(t, ['default'], reportActivities(source, storageOf(t), plan));
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
  await source?.close();
});

describe('reportPipelineWorkflow over DuckDB', () => {
  let result: ReportPipelineResult;

  it('aggregates one partition per month and writes CSV, JSON and self-contained HTML with the exact numbers', async () => {
    const { workflowId } = await client.startReportPipeline({
      from: '2024-01',
      to: '2024-03',
      measures: ['orders', 'revenue', 'avg_amount', 'max_amount'],
      groupBy: ['month', 'region'],
      format: 'csv',
      tenant: 'acme',
      idempotencyKey: 'r-basic',
    });
    expect(workflowId).toBe('report:acme:r-basic');
    result = await client.getReportResult(workflowId);
    expect(result).toMatchObject({ used: ['2024-01', '2024-02', '2024-03'], missing: [], partial: false, subJobs: 3 });
    expect(result.primary).toEqual(result.csv);

    // The same numbers straight from DuckDB, one query over all three files.
    const db = await openDuckDb(1);
    const conn = await db.connect();
    const files = ['2024-01', '2024-02', '2024-03'].map((m) => partitionFile(t.config.reports.partitionsDir, m));
    const expected = (
      await conn.runAndReadAll(
        `SELECT strftime(ts, '%Y-%m') AS month, region, COUNT(*) AS orders, CAST(SUM(amount) AS DOUBLE) AS revenue,
                CAST(MAX(amount) AS DOUBLE) AS max_amount, ROUND(SUM(amount * 100) / COUNT(*)) / 100 AS avg_amount
         FROM read_parquet([$1, $2, $3]) GROUP BY ALL ORDER BY month, region`,
        files,
      )
    ).getRowObjectsJS();
    conn.closeSync();
    db.closeSync();
    const json = JSON.parse(fs.readFileSync(result.json.path!, 'utf8')) as { rows: Record<string, unknown>[] };
    expect(json.rows).toHaveLength(15);
    expect(json.rows).toEqual(
      expected.map((r) => ({
        month: r.month,
        region: r.region,
        orders: Number(r.orders),
        revenue: r.revenue,
        avg_amount: r.avg_amount,
        max_amount: r.max_amount,
      })),
    );
    const csv = fs.readFileSync(result.csv.path!, 'utf8').trim().split('\n');
    expect(csv[0]).toBe('month,region,orders,revenue,avg_amount,max_amount');
    expect(csv).toHaveLength(16);
    const html = fs.readFileSync(result.html.path!, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('<rect');
    expect(html).not.toMatch(/<script|<link|src=|https?:\/\//i);
    // Only the finished artifacts remain: the partials' work dir is gone.
    expect(listFiles(path.join(t.outputDir, workflowId, result.runId))).toEqual([
      'report.csv',
      'report.html',
      'report.json',
    ]);
    // Each artifact: its URI, path, size and checksum.
    for (const a of [result.csv, result.json, result.html]) {
      expect(a.uri).toBe(`file://${a.path}`);
      expect(fs.statSync(a.path!).size).toBe(a.bytes);
      expect(crypto.createHash('sha256').update(fs.readFileSync(a.path!)).digest('hex')).toBe(a.sha256);
    }
  });

  it('a repeated request with the same key returns the same workflow', async () => {
    const again = await client.startReportPipeline({
      from: '2024-01',
      to: '2024-03',
      measures: ['orders'],
      tenant: 'acme',
      idempotencyKey: 'r-basic',
    });
    expect(again.workflowId).toBe(result.workflowId);
    const d = await client.temporal.workflow.getHandle(result.workflowId).describe();
    expect(again.runId).toBe(d.runId);
    expect(await searchAttributes(client, result.workflowId)).toMatchObject({
      PipelineKind: 'report',
      Tier: 'default',
      Tenant: 'acme',
      Stage: 'done',
    });
  });

  it('splits partitions into shards and still gets the same totals', async () => {
    const { workflowId } = await client.startReportPipeline({
      from: '2024-01',
      to: '2024-03',
      measures: ['orders', 'revenue', 'avg_amount', 'max_amount'],
      groupBy: ['month', 'region'],
      shards: 4,
      tenant: 'acme',
      idempotencyKey: 'r-shards',
    });
    const sharded = await client.getReportResult(workflowId);
    expect(sharded.subJobs).toBe(12);
    const rowsOf = (a: { path?: string }) => (JSON.parse(fs.readFileSync(a.path!, 'utf8')) as { rows: unknown[] }).rows;
    expect(rowsOf(sharded.json)).toEqual(rowsOf(result.json));
  });
});

describe('bad input', () => {
  it('rejects from after to at the edge, naming the field, and again inside the workflow', async () => {
    const err = await client
      .startReportPipeline({ from: '2024-05', to: '2024-02', tenant: 'acme' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).issues).toEqual([{ path: 'from', message: 'from 2024-05 is after to 2024-02' }]);

    // Past the edge (a raw start), the workflow fails once with a non-retryable InvalidInput.
    const handle = await client.temporal.workflow.start('reportPipelineWorkflow', {
      workflowId: `report:acme:raw-bad-${t.suffix}`,
      taskQueue: host.taskQueues[0] as string,
      args: [
        {
          from: '2024-05',
          to: '2024-02',
          measures: ['orders'],
          groupBy: [],
          format: 'csv',
          tier: 'default',
          tenant: 'acme',
          idempotencyKey: 'x',
          policy: { kind: 'fail-fast' },
        },
      ],
    });
    const failure = rootApplicationFailure(await failureOf(client, handle.workflowId));
    expect(failure?.type).toBe(FailureType.InvalidInput);
    expect(failure?.message).toContain('from 2024-05 is after to 2024-02');
  });

  it('rejects an unknown measure and a group-by outside the allow-list; nothing reaches SQL', async () => {
    const err = await client
      .startReportPipeline({
        from: '2024-01',
        to: '2024-02',
        measures: ['orders', 'revenue; DROP TABLE x'],
        groupBy: ['region', 'amount) FROM y --'],
        tenant: 'acme',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    const paths = (err as InvalidInputError).issues.map((i) => i.path);
    expect(paths).toEqual(['measures.1', 'groupBy.1']);
    expect((err as InvalidInputError).message).toMatch(/unknown measure; expected one of orders, revenue/);
  });

  it('fails naming every month without a partition under fail-fast', async () => {
    const { workflowId } = await client.startReportPipeline({
      from: '2024-05',
      to: '2024-08',
      tenant: 'acme',
      idempotencyKey: 'r-missing',
    });
    const failure = rootApplicationFailure(await failureOf(client, workflowId));
    expect(failure?.type).toBe(FailureType.NotFound);
    expect(failure?.message).toContain('no partition for months 2024-07, 2024-08');
    expect(listFiles(path.join(t.outputDir, workflowId))).toEqual([]);
  });

  it('completes with the months it has under partial, lists the missing ones, and sets Partial', async () => {
    const { workflowId } = await client.startReportPipeline({
      from: '2024-05',
      to: '2024-08',
      policy: 'partial',
      tenant: 'acme',
      idempotencyKey: 'r-missing-partial',
    });
    const r = await client.getReportResult(workflowId);
    expect(r.used).toEqual(['2024-05', '2024-06']);
    expect(r.missing).toEqual([
      { month: '2024-07', reason: 'no partition' },
      { month: '2024-08', reason: 'no partition' },
    ]);
    expect(r.partial).toBe(true);
    expect(await searchAttributes(client, workflowId)).toMatchObject({ Partial: true, Stage: 'done' });
  });
});

describe('fan-in failure policies with injected failures', () => {
  const months = ['2024-01', '2024-02', '2024-03', '2024-04', '2024-05', '2024-06'];
  const start = (key: string, policy: string) =>
    client.startReportPipeline({
      from: '2024-01',
      to: '2024-06',
      policy,
      tenant: 'pol',
      idempotencyKey: key,
      window: 6,
    });
  const id = (key: string) => `report:pol:${key}`;

  it('fail-fast: the first failure cancels the siblings and fails the pipeline', async () => {
    plan.set(id('ff'), '2024-02', {});
    for (const m of months.filter((m) => m !== '2024-02')) plan.set(id('ff'), m, { delayMs: 60_000, failCalls: 0 });
    const began = Date.now();
    const { workflowId } = await start('ff', 'fail-fast');
    const failure = await failureOf(client, workflowId);
    expect(Date.now() - began).toBeLessThan(30_000);
    // The pipeline fails as SubJobsFailed, with the first sub-job's failure at the root.
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).type).toBe(FailureType.SubJobsFailed);
    expect(failure.message).toContain('injected failure in 2024-02');
    expect(rootApplicationFailure(failure)?.type).toBe('Injected');
    const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
    const cancelRequests = (history.events ?? []).filter((e) => e.activityTaskCancelRequestedEventAttributes);
    expect(cancelRequests.length).toBe(5);
    expect(await searchAttributes(client, workflowId)).toMatchObject({ Stage: 'failed' });
  });

  it('retry-failed: only the failed sub-jobs run again', async () => {
    plan.set(id('rf'), '2024-03', { failCalls: 1 });
    plan.set(id('rf'), '2024-05', { failCalls: 1 });
    const { workflowId } = await start('rf', 'retry-failed:2');
    const r = await client.getReportResult(workflowId);
    expect(r.used).toEqual(months);
    expect(r.partial).toBe(false);
    // Rounds, not activity retries: each failed month ran twice, every other month once.
    for (const m of months) expect(plan.callsOf(workflowId, m)).toBe(m === '2024-03' || m === '2024-05' ? 2 : 1);
  });

  it('retry-failed: a sub-job that keeps failing fails the pipeline after N rounds', async () => {
    plan.set(id('rf-out'), '2024-04', {});
    const { workflowId } = await start('rf-out', 'retry-failed:2');
    const failure = rootApplicationFailure(await failureOf(client, workflowId));
    expect(failure?.type).toBe(FailureType.SubJobsFailed);
    expect(plan.callsOf(workflowId, '2024-04')).toBe(3);
    expect(plan.callsOf(workflowId, '2024-01')).toBe(1);
  });

  it('partial: completes with what succeeded, lists what is missing, sets Partial', async () => {
    plan.set(id('part'), '2024-02', {});
    plan.set(id('part'), '2024-06', { type: 'Boom' });
    const { workflowId } = await start('part', 'partial');
    const r = await client.getReportResult(workflowId);
    expect(r.used).toEqual(['2024-01', '2024-03', '2024-04', '2024-05']);
    expect(r.missing.map((m) => m.month)).toEqual(['2024-02', '2024-06']);
    expect(r.missing[0]?.reason).toContain('injected failure in 2024-02');
    expect(await searchAttributes(client, workflowId)).toMatchObject({ Partial: true });
    const json = JSON.parse(fs.readFileSync(r.json.path!, 'utf8')) as { rows: { month: string }[]; missing: unknown[] };
    expect(json.rows.map((row) => row.month)).toEqual(['2024-01', '2024-03', '2024-04', '2024-05']);
    expect(json.missing).toEqual(r.missing);
  });

  it('deadline-partial: at the deadline, cancels what still runs and aggregates what finished', async () => {
    plan.set(id('dl'), '2024-03', { delayMs: 120_000, failCalls: 0 });
    plan.set(id('dl'), '2024-04', { delayMs: 120_000, failCalls: 0 });
    const began = Date.now();
    const { workflowId } = await start('dl', 'deadline-partial:4');
    const r = await client.getReportResult(workflowId);
    expect(Date.now() - began).toBeLessThan(60_000);
    expect(r.used).toEqual(['2024-01', '2024-02', '2024-05', '2024-06']);
    expect(r.missing).toEqual([
      { month: '2024-03', reason: 'cancelled at the 4s deadline' },
      { month: '2024-04', reason: 'cancelled at the 4s deadline' },
    ]);
    expect(await searchAttributes(client, workflowId)).toMatchObject({ Partial: true });
  });

  it('quorum:K succeeds once K sub-jobs have succeeded and cancels the rest', async () => {
    for (const m of ['2024-04', '2024-05', '2024-06']) plan.set(id('q'), m, { delayMs: 120_000, failCalls: 0 });
    plan.set(id('q'), '2024-03', {});
    const { workflowId } = await start('q', 'quorum:2');
    const r = await client.getReportResult(workflowId);
    expect(r.used.length).toBeGreaterThanOrEqual(2);
    expect(r.used).not.toContain('2024-03');
    expect(r.missing.map((m) => m.month)).toEqual(expect.arrayContaining(['2024-03', '2024-04', '2024-05', '2024-06']));
    expect(r.missing.find((m) => m.month === '2024-04')?.reason).toBe('not needed: quorum reached');
  });

  it('quorum:K fails when fewer than K can succeed', async () => {
    for (const m of ['2024-01', '2024-02', '2024-03', '2024-04', '2024-05']) plan.set(id('q-fail'), m, {});
    const { workflowId } = await start('q-fail', 'quorum:2');
    const failure = rootApplicationFailure(await failureOf(client, workflowId));
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure?.message).toContain('quorum not reached: 1 of 6 succeeded, 2 needed');
  });
});
