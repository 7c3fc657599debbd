/**
 * The report pipeline on the `s3` backend: `sluice data generate` writes the Parquet partitions
 * to the store, DuckDB reads them through scratch copies, and the CSV, JSON and HTML land in the
 * store, byte-identical to the same report on the `file` backend.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import type { ReportPipelineResult } from '../../src/shared/report';
import type { WorkerHost } from '../../src/workers/host';
import { runSluice } from '../helpers/cli';
import { connectClient, duckDbSource, listFiles, makeTestEnv, startHost, storageOf, type TestEnv } from '../helpers/env';
import { createBucket, s3Env } from '../helpers/s3-server';
import { reportActivities } from './helpers';

let fileEnv: TestEnv;
let s3: TestEnv;
let bucket: string;
const hosts: WorkerHost[] = [];
const clients: SluiceClient[] = [];

beforeAll(async () => {
  const server = inject('s3');
  bucket = await createBucket(server, 'report');
  fileEnv = makeTestEnv('report-file');
  s3 = makeTestEnv('report-s3', { ...s3Env(server), SLUICE_STORAGE_URL: `s3://${bucket}/data` });
  for (const t of [fileEnv, s3]) {
    const run = await runSluice(t, [
      'data',
      'generate',
      '--start',
      '2024-01',
      '--months',
      '2',
      '--rows-per-month',
      '300',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    hosts.push(await startHost(t, ['default'], reportActivities(duckDbSource(t), storageOf(t))));
    clients.push(await connectClient(t));
  }
});

afterAll(async () => {
  for (const c of clients) await c.close();
  for (const h of hosts) await h.shutdown();
});

describe('the report pipeline on s3', () => {
  it('reads partitions generated into the store and writes artifacts identical to the file backend', async () => {
    // The partitions are objects in the bucket, not files on this host.
    const datasets = storageOf(s3).datasets;
    expect((await datasets.list('')).map((o) => o.key)).toEqual(['2024-01.parquet', '2024-02.parquet']);
    expect(fs.existsSync(s3.config.reports.partitionsDir)).toBe(false);

    const results: ReportPipelineResult[] = [];
    for (const [i, client] of clients.entries()) {
      const { workflowId } = await client.startReportPipeline({
        from: '2024-01',
        to: '2024-02',
        measures: ['orders', 'revenue'],
        groupBy: ['month', 'region'],
        format: 'csv',
        tenant: 'acme',
        idempotencyKey: `same-report-${i}`,
      });
      results.push(await client.getReportResult(workflowId));
    }
    const [onFile, onS3] = results as [ReportPipelineResult, ReportPipelineResult];
    expect(onS3.csv.uri).toBe(`s3://${bucket}/data/outputs/${onS3.workflowId}/${onS3.runId}/report.csv`);
    for (const kind of ['csv', 'json', 'html'] as const) {
      expect(onS3[kind].sha256).toBe(onFile[kind].sha256);
      const body = Buffer.from(await (await fetch(onS3[kind].url!)).arrayBuffer());
      expect(crypto.createHash('sha256').update(body).digest('hex')).toBe(onS3[kind].sha256);
    }
    // Only the artifacts remain in the store: the partials under .work/ are gone.
    const keys = (await storageOf(s3).artifacts.list(`${onS3.workflowId}/${onS3.runId}`)).map((o) =>
      o.key.split('/').at(-1),
    );
    expect(keys).toEqual(['report.csv', 'report.html', 'report.json']);
    // No file left in scratch (the running host keeps its own, empty, folder there).
    expect(listFiles(s3.config.storage.scratchDir)).toEqual([]);
  });
});
