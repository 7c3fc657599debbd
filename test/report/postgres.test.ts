/**
 * The PostgreSQL report source on the real server at 127.0.0.1:5432 (database `test`, a private
 * schema per run): the same results as DuckDB, the connection budget at start-up, and an
 * unreachable server retried with backoff and then failed clearly.
 */
import fs from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { ConfigError, loadConfig } from '../../src/config';
import { DuckDbSource } from '../../src/data/duckdb';
import { loadPostgres } from '../../src/data/load-postgres';
import { PostgresSource } from '../../src/data/postgres';
import { freePort } from '../../src/devserver/dev-server';
import { mergePartials } from '../../src/activities/reports/render';
import { FailureType } from '../../src/shared/constants';
import { createLogger } from '../../src/logger';
import { WorkerHost, loadWorkflowBundle } from '../../src/workers/host';
import { connectClient, makeTestEnv, type TestEnv, duckDbSource, storageOf } from '../helpers/env';
import { failureOf, reportActivities, rootApplicationFailure, smallPartitions } from './helpers';

const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/test';
let t: TestEnv;
let down: TestEnv;
let schema: string;
let pgUrl: string;
let source: PostgresSource;
let unreachable: PostgresSource;
let closedPort: number;
const hosts: WorkerHost[] = [];
let client: SluiceClient;

beforeAll(async () => {
  t = makeTestEnv('report-pg');
  schema = `sluice_${t.suffix.replace(/-/g, '_')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  pgUrl = `${ADMIN_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 3, 500);
  await loadPostgres({ partitionsDir: t.config.reports.partitionsDir, pgUrl, batchRows: 400 });

  closedPort = await freePort();
  down = makeTestEnv('report-pgdown');
  source = new PostgresSource({ url: pgUrl, poolMax: 2 });
  unreachable = new PostgresSource({ url: `postgres://postgres@127.0.0.1:${closedPort}/test`, poolMax: 1 });
  const workflowBundle = await loadWorkflowBundle();
  for (const [env, src] of [
    [t, source],
    [down, unreachable],
  ] as const) {
    hosts.push(
      await WorkerHost.start({
        config: env.config,
        tiers: ['default'],
        log: createLogger('warn'),
        activities: reportActivities(src, storageOf(env)),
        workflowBundle,
        serveHttp: false,
      }),
    );
  }
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  for (const h of hosts) await h.shutdown();
  await source?.close();
  await unreachable?.close();
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
});

describe('PostgreSQL report source', () => {
  it('load-postgres copies every partition and records it', async () => {
    const res = await source.pool.query<{ month: string; rows: string }>(
      'SELECT month, rows FROM sluice_order_partitions ORDER BY month',
    );
    expect(res.rows).toEqual([
      { month: '2024-01', rows: '500' },
      { month: '2024-02', rows: '500' },
      { month: '2024-03', rows: '500' },
    ]);
    // Loading again replaces, never duplicates.
    await loadPostgres({ partitionsDir: t.config.reports.partitionsDir, pgUrl, months: ['2024-02'] });
    const count = await source.pool.query<{ n: string }>('SELECT COUNT(*) AS n FROM sluice_orders');
    expect(count.rows[0]?.n).toBe('1500');
  });

  it('gives exactly the same report as DuckDB over the Parquet partitions', async () => {
    const groupBy = ['month', 'tenant', 'product'] as const;
    const measures = ['orders', 'revenue', 'avg_amount', 'min_amount', 'max_amount'] as const;
    const { workflowId } = await client.startReportPipeline({
      from: '2024-01',
      to: '2024-03',
      measures: [...measures],
      groupBy: [...groupBy],
      format: 'json',
      tenant: 'pg',
      idempotencyKey: 'pg-same',
    });
    const r = await client.getReportResult(workflowId);
    expect(r.used).toEqual(['2024-01', '2024-02', '2024-03']);
    const rows = (JSON.parse(fs.readFileSync(r.json.path!, 'utf8')) as { rows: unknown[] }).rows;

    const duck = duckDbSource(t);
    const parts = [];
    for (const month of r.used)
      parts.push({ month, groups: await duck.aggregate({ month, groupBy: [...groupBy], shard: 0, shards: 1 }) });
    await duck.close();
    const expected = mergePartials(parts, [...groupBy], [...measures]);
    expect(rows.length).toBeGreaterThan(100);
    expect(rows).toEqual(expected);
  });

  it('a tenant filter is a bound parameter, also for hostile-looking names', async () => {
    const groups = await source.aggregate({
      month: '2024-01',
      groupBy: ['tenant'],
      shard: 0,
      shards: 1,
      tenantFilter: 'acme',
    });
    expect(groups.map((g) => g.key)).toEqual([['acme']]);
    const none = await source.aggregate({
      month: '2024-01',
      groupBy: ['tenant'],
      shard: 0,
      shards: 1,
      tenantFilter: "x' OR '1'='1",
    });
    expect(none).toEqual([]);
  });

  it('start-up refuses more connections than the budget: workers × pool max', () => {
    const env = { SLUICE_MAX_WORKER_PROCESSES: '6', SLUICE_PG_POOL_MAX: '4', SLUICE_PG_CONNECTION_BUDGET: '20' };
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(
      /SLUICE_PG_POOL_MAX: 6 worker processes × pool max 4 = 24 connections exceed SLUICE_PG_CONNECTION_BUDGET 20/,
    );
    expect(loadConfig({ ...env, SLUICE_PG_POOL_MAX: '3' }).reports).toMatchObject({
      pgPoolMax: 3,
      pgConnectionBudget: 20,
    });
  });

  it('an unreachable PostgreSQL is retried with backoff, then the pipeline fails clearly', async () => {
    const downClient = await connectClient(down);
    try {
      const began = Date.now();
      const { workflowId } = await downClient.startReportPipeline({
        from: '2024-01',
        to: '2024-02',
        tenant: 'pg',
        idempotencyKey: 'pg-down',
      });
      const failure = rootApplicationFailure(await failureOf(downClient, workflowId));
      const elapsed = Date.now() - began;
      expect(failure?.type).toBe(FailureType.DownstreamUnavailable);
      expect(failure?.message).toContain(`PostgreSQL at 127.0.0.1:${closedPort}/test unreachable`);
      expect(failure?.message).toMatch(/ECONNREFUSED/);
      // Five attempts with growing, jittered delays in between (the worker applies full jitter to the
      // 1 s × 2ⁿ backoff), then the failure names the server and the cause.
      const history = await downClient.temporal.workflow.getHandle(workflowId).fetchHistory();
      const started = (history.events ?? []).find((e) => e.activityTaskStartedEventAttributes);
      expect(started?.activityTaskStartedEventAttributes?.attempt).toBe(5);
      expect(elapsed).toBeGreaterThanOrEqual(1_000);
    } finally {
      await downClient.close();
    }
  });
});
