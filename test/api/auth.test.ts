/**
 * The HTTP API lets in only its owners (issue 15 item 4), on a real port against the real dev
 * server and a worker with the real report activities: API keys bound to a tenant or `*`, kept as
 * digests; another tenant's pipeline and any workflow that is not a Sluice pipeline are 404;
 * Stripe-style idempotency (422 for another body, 409 for a spent key); only JSON in UTF-8 (415);
 * a malformed path is 400; the bind rule of `sluice api` without keys.
 */
import http from 'node:http';
import util from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindProblem, createApiServer, isLoopbackHost, listen } from '../../src/api/server';
import type { SluiceClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import type { DuckDbSource } from '../../src/data/duckdb';
import { ApiKeyring, apiKeyDigest } from '../../src/security/api-keys';
import { taskQueueFor } from '../../src/shared/constants';
import type { WorkerHost } from '../../src/workers/host';
import { runSluice } from '../helpers/cli';
import { connectClient, makeTestEnv, startHost, type TestEnv, duckDbSource, storageOf } from '../helpers/env';
import { FaultPlan, reportActivities, smallPartitions } from '../report/helpers';

const ACME = 'acme-key-0123456789abcdef';
const GLOBEX = 'globex-key-0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: DuckDbSource;
let server: http.Server;
let base: string;
const plan = new FaultPlan();

interface Res {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(
  method: string,
  url: string,
  opts: { key?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Res> {
  const res = await fetch(`${base}${url}`, {
    method,
    headers: {
      'content-type': 'application/json',
      ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}),
      ...opts.headers,
    },
    body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

/** A raw request (fetch normalizes paths; this sends the bytes as given). */
function rawGet(path: string, key: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${path}`,
      { method: 'GET', headers: { authorization: `Bearer ${key}` } },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const report = { from: '2024-01', to: '2024-02', measures: ['orders'], groupBy: ['region'] };

beforeAll(async () => {
  t = makeTestEnv('api-auth', { SLUICE_API_KEYS: `acme:${ACME},globex:${GLOBEX},*:${ADMIN}` });
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 2, 200);
  source = duckDbSource(t);
  host = await startHost(t, ['default'], reportActivities(source, storageOf(t), plan));
  client = await connectClient(t);
  const problems: string[] = [];
  const keys = ApiKeyring.load({ keys: t.config.api.keys?.reveal() }, problems);
  expect(problems).toEqual([]);
  server = createApiServer({ client, bodyLimitBytes: t.config.api.bodyLimitBytes, keys });
  base = `http://127.0.0.1:${await listen(server, 0)}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await client?.close();
  await host?.shutdown();
  await source?.close();
});

describe('API keys', () => {
  it('401 without a key or with a wrong one, and nothing starts', async () => {
    const none = await call('POST', '/v1/reports', { body: report, headers: { 'idempotency-key': 'no-key' } });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await call('POST', '/v1/reports', {
      key: 'not-a-key-0123456789abcdef',
      body: { ...report, tenant: 'acme' },
      headers: { 'idempotency-key': 'wrong-key' },
    });
    expect(wrong.status).toBe(401);
    expect((await call('GET', '/v1/pipelines/report%3Aacme%3Ano-key')).status).toBe(401);
    expect(await client.exists('report:acme:wrong-key')).toBe(false);
    expect(await client.exists('report:default:no-key')).toBe(false);
  });

  it('keeps only digests: the keyring and the config print no key', () => {
    const problems: string[] = [];
    const keys = ApiKeyring.load({ keys: t.config.api.keys?.reveal() }, problems);
    const dumped = [util.inspect(keys, { depth: 10, showHidden: true }), JSON.stringify(keys), util.inspect(t.config)];
    for (const text of dumped) for (const key of [ACME, GLOBEX, ADMIN]) expect(text).not.toContain(key);
    // A file may carry the digest instead of the key: the key still authenticates.
    const hashed = ApiKeyring.load({ keys: `acme:sha256:${apiKeyDigest(ACME).toString('hex')}` }, problems);
    expect(problems).toEqual([]);
    expect(hashed.authenticate(ACME)?.tenant).toBe('acme');
    expect(hashed.authenticate(GLOBEX)).toBeUndefined();
  });

  it('bad key entries are config problems naming the variable, never echoing the key', () => {
    expect(() => loadConfig({ SLUICE_API_KEYS: 'acme:short' }, t.dir)).toThrow(/SLUICE_API_KEYS: entry 1: key must be/);
    expect(() => loadConfig({ SLUICE_API_KEYS: `Not A Tenant:${ACME}` }, t.dir)).toThrow(/SLUICE_API_KEYS.*tenant/);
    expect(() => loadConfig({ SLUICE_API_KEYS: `acme:${ACME},globex:${ACME}` }, t.dir)).toThrow(/listed twice/);
    try {
      loadConfig({ SLUICE_API_KEYS: `Not A Tenant:${ACME}` }, t.dir);
    } catch (err) {
      expect((err as Error).message).not.toContain(ACME);
    }
  });
});

describe('tenants', () => {
  it("a tenant key starts its own tenant's pipeline (tenant defaults to the key's) and no other", async () => {
    const own = await call('POST', '/v1/reports', { key: ACME, body: report, headers: { 'idempotency-key': 'own-1' } });
    expect(own.status).toBe(202);
    expect(own.body.workflowId).toBe('report:acme:own-1');
    await client.getReportResult('report:acme:own-1');

    const other = await call('POST', '/v1/reports', {
      key: ACME,
      body: { ...report, tenant: 'globex' },
      headers: { 'idempotency-key': 'steal-1' },
    });
    expect(other.status).toBe(403);
    expect(JSON.stringify(other.body)).toContain('tenant');
    expect(await client.exists('report:globex:steal-1')).toBe(false);

    // The admin key starts for any tenant.
    const admin = await call('POST', '/v1/reports', {
      key: ADMIN,
      body: { ...report, tenant: 'globex' },
      headers: { 'idempotency-key': 'admin-1' },
    });
    expect(admin.status).toBe(202);
    expect(admin.body.workflowId).toBe('report:globex:admin-1');
  });

  it("another tenant's pipeline is 404 to read and to cancel, the same as one that does not exist", async () => {
    plan.set('report:acme:slow-1', '2024-02', { delayMs: 120_000, failCalls: 0 });
    const started = await call('POST', '/v1/reports', {
      key: ACME,
      body: report,
      headers: { 'idempotency-key': 'slow-1' },
    });
    expect(started.status).toBe(202);
    const id = encodeURIComponent('report:acme:slow-1');

    const read = await call('GET', `/v1/pipelines/${id}`, { key: GLOBEX });
    const cancel = await call('DELETE', `/v1/pipelines/${id}`, { key: GLOBEX });
    const missing = await call('GET', `/v1/pipelines/${encodeURIComponent('report:acme:never')}`, { key: GLOBEX });
    expect([read.status, cancel.status, missing.status]).toEqual([404, 404, 404]);
    expect(read.body.error).toBe(missing.body.error);
    expect((await client.getStatus('report:acme:slow-1')).status).toBe('RUNNING');

    expect((await call('GET', `/v1/pipelines/${id}`, { key: ACME })).status).toBe(200);
    expect((await call('GET', `/v1/pipelines/${id}`, { key: ADMIN })).status).toBe(200);
    const del = await call('DELETE', `/v1/pipelines/${id}`, { key: ACME });
    expect(del.status).toBe(202);
    await expect(client.getResult('report:acme:slow-1')).rejects.toThrow();
  });

  it('a workflow that is not a Sluice pipeline is 404 even to the admin key, and is not cancelled', async () => {
    const queue = taskQueueFor('default', `${t.suffix}-foreign`);
    // Someone else's workflows in the namespace: one with a pipeline-shaped ID but another type,
    // one with an ID of its own. Nobody polls their queue.
    const lookalike = await client.temporal.workflow.start('paymentsWorkflow', {
      workflowId: 'report:acme:foreign-1',
      taskQueue: queue,
      args: [],
    });
    const payments = await client.temporal.workflow.start('paymentsWorkflow', {
      workflowId: `payments-${t.suffix}`,
      taskQueue: queue,
      args: [],
    });
    try {
      for (const id of ['report:acme:foreign-1', `payments-${t.suffix}`]) {
        expect((await call('GET', `/v1/pipelines/${encodeURIComponent(id)}`, { key: ADMIN })).status).toBe(404);
        expect((await call('DELETE', `/v1/pipelines/${encodeURIComponent(id)}`, { key: ADMIN })).status).toBe(404);
      }
      expect((await lookalike.describe()).status.name).toBe('RUNNING');
      expect((await payments.describe()).status.name).toBe('RUNNING');
    } finally {
      await lookalike.terminate('test cleanup');
      await payments.terminate('test cleanup');
    }
  });
});

describe('idempotency', () => {
  it('the same key with another body is 422; the same body in another key order is the same run', async () => {
    const first = await call('POST', '/v1/reports', {
      key: ACME,
      body: report,
      headers: { 'idempotency-key': 'idem-1' },
    });
    expect(first.status).toBe(202);
    const reordered = Object.fromEntries(Object.entries(report).reverse());
    const same = await call('POST', '/v1/reports', {
      key: ACME,
      body: reordered,
      headers: { 'idempotency-key': 'idem-1' },
    });
    expect(same.status).toBe(202);
    expect(same.body).toEqual(first.body);
    const changed = await call('POST', '/v1/reports', {
      key: ACME,
      body: { ...report, measures: ['revenue'] },
      headers: { 'idempotency-key': 'idem-1' },
    });
    expect(changed.status).toBe(422);
    expect(changed.body).toMatchObject({ workflowId: 'report:acme:idem-1' });
    expect(String(changed.body.error)).toMatch(/different request/);
  });

  it('a key whose run was cancelled is 409 with its status; a new key runs', async () => {
    plan.set('report:acme:spent-1', '2024-02', { delayMs: 120_000, failCalls: 0 });
    const started = await call('POST', '/v1/reports', {
      key: ACME,
      body: report,
      headers: { 'idempotency-key': 'spent-1' },
    });
    expect(started.status).toBe(202);
    await client.cancel('report:acme:spent-1');
    await expect(client.getResult('report:acme:spent-1')).rejects.toThrow();

    const again = await call('POST', '/v1/reports', {
      key: ACME,
      body: report,
      headers: { 'idempotency-key': 'spent-1' },
    });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ status: 'CANCELLED', workflowId: 'report:acme:spent-1' });
    expect(String(again.body.retry)).toMatch(/new Idempotency-Key/);

    const fresh = await call('POST', '/v1/reports', {
      key: ACME,
      body: report,
      headers: { 'idempotency-key': 'spent-2' },
    });
    expect(fresh.status).toBe(202);
  });
});

describe('the edges of a request', () => {
  it.each([
    ['text/plain', 'text/plain'],
    ['UTF-16 JSON', 'application/json; charset=utf-16'],
    ['JSON with another parameter', 'application/json; boundary=x'],
    ['no Content-Type', ''],
  ])('%s is 415 and starts nothing', async (name, type) => {
    const key = `ct-${name.replace(/[^a-z0-9]/gi, '')}`;
    const res = await call('POST', '/v1/reports', {
      key: ACME,
      body: report,
      headers: { 'idempotency-key': key, 'content-type': type },
    });
    expect(res.status).toBe(415);
    expect(await client.exists(`report:acme:${key}`)).toBe(false);
  });

  it('application/json; charset=UTF-8 is accepted; a body that is not UTF-8 is 400', async () => {
    const ok = await call('POST', '/v1/reports', {
      key: ACME,
      body: report,
      headers: { 'idempotency-key': 'ct-utf8', 'content-type': 'application/json; charset=UTF-8' },
    });
    expect(ok.status).toBe(202);
    const res = await fetch(`${base}/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ACME}`, 'content-type': 'application/json', 'idempotency-key': 'bad-utf8' },
      body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain('UTF-8');
  });

  it('a malformed percent-encoding in the path is 400, not 500', async () => {
    for (const path of ['/v1/pipelines/%E0%A4%A', '/v1/pipelines/report%3Aacme%3A%ZZ', '/v1/pipelines/%']) {
      const res = await rawGet(path, ACME);
      expect(res.status, path).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({ error: 'malformed path' });
    }
  });

  it('a missing source and one outside the media root get the same message, without the root', async () => {
    const send = (source: string, key: string) =>
      call('POST', '/v1/videos', { key: ACME, body: { source }, headers: { 'idempotency-key': key } });
    const missing = await send('nope.mp4', 'src-1');
    const outside = await send('/etc/passwd', 'src-2');
    const climbing = await send('../../../etc/passwd', 'src-3');
    for (const res of [missing, outside, climbing]) {
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body)).not.toContain(t.mediaRoot);
    }
    const messages = [missing, outside, climbing].map((r) =>
      (r.body.issues as { message: string }[])[0]?.message.replace(/^\S+ /, ''),
    );
    expect(new Set(messages).size).toBe(1);
  });
});

describe('sluice api without keys', () => {
  it('binds loopback only: a non-loopback --host exits 2 unless --insecure-no-auth', async () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
    expect(isLoopbackHost('::')).toBe(false);
    expect(bindProblem('0.0.0.0', undefined, false)).toMatch(/--insecure-no-auth/);
    expect(bindProblem('0.0.0.0', undefined, true)).toBeUndefined();
    expect(bindProblem('0.0.0.0', ApiKeyring.of([{ tenant: 'acme', key: ACME }]), false)).toBeUndefined();

    const env = { SLUICE_API_KEYS: '', SLUICE_API_PORT: '0' };
    const refused = await runSluice(t, ['api', '--host', '0.0.0.0', '--json'], { env, timeoutMs: 60_000 });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--host.*not a loopback interface/);
    const badKeys = await runSluice(t, ['api', '--json'], {
      env: { SLUICE_API_KEYS: 'acme:short', SLUICE_API_PORT: '0' },
      timeoutMs: 60_000,
    });
    expect(badKeys.code).toBe(2);
    expect(badKeys.stderr).toMatch(/SLUICE_API_KEYS/);
  });
});
