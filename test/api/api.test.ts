/**
 * The HTTP API on a real port (127.0.0.1, port 0) against the real dev server and a worker with
 * the real report activities: 202 + idempotent workflow IDs, 400 naming the field, 413 over the
 * body limit, progress and cancellation.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer, listen } from '../../src/api/server';
import type { SluiceClient } from '../../src/client';
import { DuckDbSource } from '../../src/data/duckdb';
import type { WorkerHost } from '../../src/workers/host';
import {
  REPO_ROOT,
  listFiles,
  connectClient,
  makeTestEnv,
  startHost,
  type TestEnv,
  duckDbSource,
  storageOf,
} from '../helpers/env';
import { FaultPlan, reportActivities, smallPartitions } from '../report/helpers';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: DuckDbSource;
let server: http.Server;
let base: string;
const plan = new FaultPlan();
const LIMIT = 2_048;

interface Res {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Res> {
  const res = await fetch(`${base}${url}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

const report = { from: '2024-01', to: '2024-02', measures: ['orders'], groupBy: ['region'], tenant: 'api' };

beforeAll(async () => {
  t = makeTestEnv('api', { SLUICE_API_BODY_LIMIT_BYTES: String(LIMIT) });
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 2, 200);
  source = duckDbSource(t);
  host = await startHost(t, ['default'], reportActivities(source, storageOf(t), plan));
  client = await connectClient(t);
  server = createApiServer({ client, bodyLimitBytes: t.config.api.bodyLimitBytes });
  base = `http://127.0.0.1:${await listen(server, 0)}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await client?.close();
  await host?.shutdown();
  await source?.close();
});

describe('POST /v1/reports', () => {
  it('answers 202 with the workflow ID; the same Idempotency-Key gives the same ID and run', async () => {
    const first = await call('POST', '/v1/reports', report, { 'idempotency-key': 'api-1' });
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ workflowId: 'report:api:api-1', status: 'ACCEPTED' });
    expect(first.headers.get('location')).toBe('/v1/pipelines/report%3Aapi%3Aapi-1');
    const again = await call('POST', '/v1/reports', report, { 'idempotency-key': 'api-1' });
    expect(again.status).toBe(202);
    expect(again.body).toEqual(first.body);
    const other = await call('POST', '/v1/reports', report, { 'idempotency-key': 'api-2' });
    expect(other.body.workflowId).toBe('report:api:api-2');

    const result = await client.getReportResult('report:api:api-1');
    expect(result.used).toEqual(['2024-01', '2024-02']);
    const status = await call('GET', '/v1/pipelines/report%3Aapi%3Aapi-1');
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({
      workflowId: 'report:api:api-1',
      kind: 'report',
      status: 'COMPLETED',
      stage: 'done',
    });
  });

  it('answers 400 naming the field, and starts nothing', async () => {
    const noKey = await call('POST', '/v1/reports', report);
    expect(noKey.status).toBe(400);
    expect(noKey.body).toEqual({
      error: 'invalid input',
      issues: [{ path: 'Idempotency-Key', message: 'header is required' }],
    });

    const range = await call('POST', '/v1/reports', { ...report, from: '2024-05' }, { 'idempotency-key': 'api-bad' });
    expect(range.status).toBe(400);
    expect(range.body.issues).toEqual([{ path: 'from', message: 'from 2024-05 is after to 2024-02' }]);

    const measure = await call(
      'POST',
      '/v1/reports',
      { ...report, measures: ['orders', 'profit'] },
      { 'idempotency-key': 'api-bad' },
    );
    expect(measure.status).toBe(400);
    expect((measure.body.issues as { path: string }[])[0]?.path).toBe('measures.1');

    const unknown = await call(
      'POST',
      '/v1/reports',
      { ...report, sql: 'DROP TABLE x' },
      { 'idempotency-key': 'api-bad' },
    );
    expect(unknown.status).toBe(400);
    expect((unknown.body.issues as { path: string }[])[0]?.path).toBe('sql');

    const json = await call('POST', '/v1/reports', '{"from": ', { 'idempotency-key': 'api-bad' });
    expect(json.status).toBe(400);
    expect((json.body.issues as { path: string }[])[0]?.path).toBe('(body)');

    expect(await client.exists('report:api:api-bad')).toBe(false);
  });

  it('answers 413 for a body over the configured limit, and starts nothing', async () => {
    const big = { ...report, tenantFilter: 'acme', padding: 'x'.repeat(LIMIT) };
    const res = await call('POST', '/v1/reports', big, { 'idempotency-key': 'api-big' });
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ error: 'payload too large', limitBytes: LIMIT });
    expect(await client.exists('report:api:api-big')).toBe(false);
  });
});

describe('pipelines', () => {
  it('GET shows progress of a running pipeline; DELETE cancels it', async () => {
    plan.set('report:api:api-slow', '2024-02', { delayMs: 120_000, failCalls: 0 });
    const started = await call('POST', '/v1/reports', report, { 'idempotency-key': 'api-slow' });
    expect(started.status).toBe(202);
    const id = encodeURIComponent('report:api:api-slow');
    let running: Res | undefined;
    for (let i = 0; i < 60; i++) {
      running = await call('GET', `/v1/pipelines/${id}`);
      if ((running.body.progress as { done?: number } | undefined)?.done === 1) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(running?.body).toMatchObject({
      status: 'RUNNING',
      stage: 'aggregating',
      progress: { stage: 'aggregating', done: 1, total: 3, failed: 0 },
    });

    const del = await call('DELETE', `/v1/pipelines/${id}`);
    expect(del.status).toBe(202);
    expect(del.body).toEqual({ workflowId: 'report:api:api-slow', cancelRequested: true });
    await expect(client.getResult('report:api:api-slow')).rejects.toThrow();
    const after = await call('GET', `/v1/pipelines/${id}`);
    expect(after.body).toMatchObject({ status: 'CANCELLED', stage: 'cancelled' });
    expect(listFiles(path.join(t.outputDir, 'report:api:api-slow'))).toEqual([]);
  });

  it('404 for an unknown pipeline or path, 405 for a wrong method', async () => {
    expect((await call('GET', '/v1/pipelines/report%3Anope%3Anope')).status).toBe(404);
    expect((await call('DELETE', '/v1/pipelines/report%3Anope%3Anope')).status).toBe(404);
    expect((await call('GET', '/v1/nothing')).status).toBe(404);
    expect((await call('GET', '/v1/reports')).status).toBe(405);
  });
});

describe('POST /v1/videos', () => {
  it('validates the source inside the media root and answers 202 with a stable ID', async () => {
    fs.writeFileSync(path.join(t.mediaRoot, 'clip.mp4'), 'not really a video');
    const video = { source: 'clip.mp4', renditions: ['240p'], tier: 'low', tenant: 'api' };
    const first = await call('POST', '/v1/videos', video, { 'idempotency-key': 'vid-1' });
    expect(first.status).toBe(202);
    expect(first.body.workflowId).toBe('video:api:vid-1');
    const again = await call('POST', '/v1/videos', video, { 'idempotency-key': 'vid-1' });
    expect(again.body).toEqual(first.body);
    // Nobody polls `low` here: stop the run so it does not linger on the shared server.
    await client.temporal.workflow.getHandle('video:api:vid-1').terminate('test cleanup');

    const outside = await call(
      'POST',
      '/v1/videos',
      { ...video, source: '../../etc/passwd' },
      { 'idempotency-key': 'vid-2' },
    );
    expect(outside.status).toBe(400);
    expect((outside.body.issues as { path: string }[])[0]?.path).toBe('source');
    const rendition = await call(
      'POST',
      '/v1/videos',
      { ...video, renditions: ['4k'] },
      { 'idempotency-key': 'vid-3' },
    );
    expect(rendition.status).toBe(400);
    expect((rendition.body.issues as { path: string }[])[0]?.path).toBe('renditions.0');
  });
});

describe('sluice api', () => {
  it('serves on the configured port and stops on SIGTERM', async () => {
    const loader = pathToFileURL(path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
    const child = spawn(
      process.execPath,
      ['--import', loader, path.join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'api', '--json'],
      {
        cwd: t.dir,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...t.env, SLUICE_API_PORT: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const line = out.split('\n')[0];
          if (out.includes('\n') && line) resolve((JSON.parse(line) as { url: string }).url);
        });
        setTimeout(() => reject(new Error('sluice api did not start')), 60_000);
      });
      const res = await fetch(`${url}/v1/reports`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'cli-api' },
        body: JSON.stringify(report),
      });
      expect(res.status).toBe(202);
      expect(((await res.json()) as { workflowId: string }).workflowId).toBe('report:api:cli-api');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
