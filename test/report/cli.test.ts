/**
 * `sluice data …` and `sluice report …` through the real CLI (compiled) against the
 * run's dev server: deterministic generation, the exit codes, and `--json` printing one object.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuckDbSource } from '../../src/data/duckdb';
import type { WorkerHost } from '../../src/workers/host';
import { oneJson, runSluice } from '../helpers/cli';
import { makeTestEnv, startHost, type TestEnv, duckDbSource, storageOf } from '../helpers/env';
import { reportActivities } from './helpers';

let t: TestEnv;
let host: WorkerHost;
let source: DuckDbSource;

/** The real CLI in this file's env. */
const sluice = (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 90_000) =>
  runSluice(t, args, { env, timeoutMs });

const sha = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

beforeAll(async () => {
  t = makeTestEnv('report-cli');
  source = duckDbSource(t);
  host = await startHost(t, ['default'], reportActivities(source, storageOf(t)));
});

afterAll(async () => {
  await host?.shutdown();
  await source?.close();
});

describe('sluice data', () => {
  it('generate writes the same partitions for the same seed, and different ones for another seed', async () => {
    const run = await sluice([
      'data',
      'generate',
      '--start',
      '2024-11',
      '--months',
      '3',
      '--rows-per-month',
      '300',
      '--seed',
      '3',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const out = oneJson(run) as { partitions: { month: string; file: string; rows: number }[] };
    expect(out.partitions.map((p) => p.month)).toEqual(['2024-11', '2024-12', '2025-01']);
    const first = out.partitions.map((p) => sha(p.file));

    const again = await sluice([
      'data',
      'generate',
      '--start',
      '2024-11',
      '--months',
      '3',
      '--rows-per-month',
      '300',
      '--seed',
      '3',
    ]);
    expect(again.code).toBe(0);
    expect(out.partitions.map((p) => sha(p.file))).toEqual(first);

    const other = path.join(t.dir, 'other');
    const seeded = await sluice(
      ['data', 'generate', '--start', '2024-11', '--months', '1', '--rows-per-month', '300', '--seed', '4', '--json'],
      { SLUICE_DATA_DIR: other },
    );
    expect(seeded.code).toBe(0);
    expect(sha(path.join(other, 'orders', '2024-11.parquet'))).not.toBe(first[0]);
  });

  it('rejects a bad month or row count with exit 2 naming the option', async () => {
    const run = await sluice(['data', 'generate', '--start', '2024-13', '--rows-per-month', '10', '--json']);
    expect(run.code).toBe(2);
    expect(oneJson(run)).toMatchObject({ error: 'invalid input', issues: [{ path: 'start' }] });
    const rows = await sluice(['data', 'generate', '--start', '2024-01', '--rows-per-month', 'lots']);
    expect(rows.code).toBe(2);
    expect(rows.stderr).toContain('rows-per-month');
  });

  it('load-postgres copies the partitions into PostgreSQL', async () => {
    const schema = `sluice_${t.suffix.replace(/-/g, '_')}`;
    const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
    await admin.connect();
    try {
      await admin.query(`CREATE SCHEMA ${schema}`);
      const url = `postgres://postgres@127.0.0.1:5432/test?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
      const run = await sluice(['data', 'load-postgres', '--months', '2024-11,2024-12', '--json'], {
        SLUICE_PG_URL: url,
      });
      expect(run.code, run.stderr).toBe(0);
      expect(oneJson(run)).toEqual({
        database: '127.0.0.1:5432/test',
        loaded: [
          { month: '2024-11', rows: 300 },
          { month: '2024-12', rows: 300 },
        ],
      });
      const n = await admin.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${schema}.sluice_orders`);
      expect(n.rows[0]?.n).toBe('600');
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
  });
});

describe('sluice report', () => {
  it('--wait --json prints one object with the result and exits 0', async () => {
    const run = await sluice([
      'report',
      '--from',
      '2024-11',
      '--to',
      '2025-01',
      '--measures',
      'orders,revenue',
      '--group-by',
      'region',
      '--format',
      'json',
      '--tenant',
      'cli',
      '--id',
      'cli-ok',
      '--wait',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const out = oneJson(run) as {
      workflowId: string;
      status: string;
      result: { used: string[]; primary: { path?: string } };
    };
    expect(out).toMatchObject({ workflowId: 'report:cli:cli-ok', status: 'COMPLETED' });
    expect(out.result.used).toEqual(['2024-11', '2024-12', '2025-01']);
    const report = JSON.parse(fs.readFileSync(out.result.primary.path!, 'utf8')) as { rows: { orders: number }[] };
    expect(report.rows.reduce((n, r) => n + r.orders, 0)).toBe(900);
  });

  it('exits 2 for from after to, an unknown measure or a bad policy, and starts nothing', async () => {
    const run = await sluice(['report', '--from', '2025-01', '--to', '2024-11', '--id', 'cli-bad', '--json']);
    expect(run.code).toBe(2);
    expect(oneJson(run)).toEqual({
      error: 'invalid input',
      issues: [{ path: 'from', message: 'from 2025-01 is after to 2024-11' }],
    });
    const measure = await sluice(['report', '--from', '2024-11', '--to', '2024-12', '--measures', 'profit', '--json']);
    expect(measure.code).toBe(2);
    expect(oneJson(measure)).toMatchObject({ issues: [{ path: 'measures.0' }] });
    const policy = await sluice(['report', '--from', '2024-11', '--to', '2024-12', '--policy', 'quorum:x']);
    expect(policy.code).toBe(2);
    expect(policy.stderr).toContain('policy');
  });

  it('exits 1 naming the months without a partition', async () => {
    const run = await sluice([
      'report',
      '--from',
      '2024-12',
      '--to',
      '2025-03',
      '--tenant',
      'cli',
      '--id',
      'cli-missing',
      '--wait',
      '--json',
    ]);
    expect(run.code).toBe(1);
    const out = oneJson(run) as { status: string; failure: { type?: string; message: string }[] };
    expect(out.status).toBe('FAILED');
    expect(out.failure.map((f) => f.message).join(' ')).toContain('no partition for months 2025-02, 2025-03');
  });
});
