/**
 * Fault: PostgreSQL stops during a report. The partition aggregations fail as
 * DownstreamUnavailable and retry with backoff; once PostgreSQL is back the report completes with
 * every month. A private PostgreSQL cluster on a free port (initdb as the `postgres` user), so the
 * machine's shared server is untouched.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { generateOrders } from '../../src/data/generate';
import { loadPostgres } from '../../src/data/load-postgres';
import { freePort } from '../../src/devserver/dev-server';
import type { ReportPipelineResult } from '../../src/shared/report';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, startHost, type TestEnv } from '../helpers/env';
import { until } from '../helpers/processes';

const BIN = path.join('/usr/lib/postgresql', fs.readdirSync('/usr/lib/postgresql').sort().at(-1) ?? '', 'bin');
let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let pgDir: string;
let port: number;

/** Runs a PostgreSQL tool as the `postgres` user (the server refuses to run as root). */
function asPostgres(tool: string, args: string[]): void {
  execFileSync(
    'su',
    ['postgres', '-s', '/bin/sh', '-c', [path.join(BIN, tool), ...args].map((a) => `'${a}'`).join(' ')],
    { stdio: 'ignore' },
  );
}
const pgStart = () =>
  asPostgres('pg_ctl', [
    '-D',
    pgDir,
    '-w',
    '-l',
    path.join(pgDir, 'log'),
    '-o',
    `-p ${port} -k ${pgDir} -c listen_addresses=127.0.0.1`,
    'start',
  ]);
const pgStop = () => asPostgres('pg_ctl', ['-D', pgDir, '-w', '-m', 'immediate', 'stop']);

beforeAll(async () => {
  port = await freePort();
  const pgUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  t = makeTestEnv('fault-pg', {
    REPORT_SOURCE: 'postgres',
    SLUICE_PG_URL: pgUrl,
    // Enough attempts to ride out an outage of several seconds, still bounded.
    SLUICE_RETRY_POLICIES: JSON.stringify({ aggregatePartition: { maxAttempts: 12, baseMs: 500, capMs: 3000 } }),
  });
  pgDir = path.join(t.dir, 'pg');
  fs.mkdirSync(pgDir);
  execFileSync('chown', ['postgres:postgres', pgDir]);
  fs.chmodSync(t.dir, 0o755);
  asPostgres('initdb', ['-D', pgDir, '-A', 'trust', '-U', 'postgres']);
  pgStart();
  await generateOrders({
    dir: t.config.reports.partitionsDir,
    start: '2025-01',
    months: 3,
    rowsPerMonth: 3_000,
    seed: 11,
  });
  await loadPostgres({ partitionsDir: t.config.reports.partitionsDir, pgUrl });
  host = await startHost(t, ['default']);
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
  try {
    pgStop();
  } catch {
    // already stopped
  }
});

describe('PostgreSQL stopped during a report', () => {
  it('retries with backoff and completes once PostgreSQL is back', async () => {
    pgStop();
    const { workflowId } = await client.startReportPipeline({
      from: '2025-01',
      to: '2025-03',
      format: 'json',
      tenant: 'acme',
      idempotencyKey: `pg-${t.suffix}`,
    });
    const handle = client.temporal.workflow.getHandle(workflowId);
    // The aggregations fail against the stopped server and are retried.
    await until(
      'a retried aggregation',
      async () => (await handle.describe()).raw.pendingActivities?.some((a) => (a.attempt ?? 0) >= 2) ?? false,
      Boolean,
      60_000,
    );
    const pending = (await handle.describe()).raw.pendingActivities ?? [];
    expect(pending.some((a) => a.lastFailure?.applicationFailureInfo?.type === 'DownstreamUnavailable')).toBe(true);

    pgStart();
    const result = await client.getResult<ReportPipelineResult>(workflowId);
    expect(result.used).toEqual(['2025-01', '2025-02', '2025-03']);
    expect(result.missing).toEqual([]);
  });
});
