/**
 * The bad-input matrix: one table of invalid requests sent through every edge — the typed
 * client, the HTTP API and the CLI. Each case must get a clear error that names the field, the
 * documented code (InvalidInputError / HTTP 400 or 413 / exit 2), and nothing may be started or
 * written. The last test checks the server and the output directory for that.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer, listen } from '../../src/api/server';
import { InvalidInputError, type SluiceClient, type StartVideoOptions } from '../../src/client';
import { ApiKeyring } from '../../src/security/api-keys';
import { TIERS, taskQueueFor } from '../../src/shared/constants';
import { runSluice } from '../helpers/cli';
import { connectClient, listFiles, makeTestEnv, sampleVideo, type TestEnv } from '../helpers/env';

let t: TestEnv;
let client: SluiceClient;
let api: http.Server;
let base: string;

beforeAll(async () => {
  t = makeTestEnv('matrix');
  await sampleVideo(t, { seconds: 2, name: 'ok.mp4' });
  fs.mkdirSync(path.join(t.mediaRoot, 'dir'));
  fs.writeFileSync(path.join(t.dir, 'secret.mp4'), 'outside');
  fs.symlinkSync(path.join(t.dir, 'secret.mp4'), path.join(t.mediaRoot, 'escape.mp4'));
  client = await connectClient(t);
  api = createApiServer({ client, bodyLimitBytes: t.config.api.bodyLimitBytes });
  base = `http://127.0.0.1:${await listen(api, 0)}`;
});

afterAll(async () => {
  await new Promise<void>((r) => api?.close(() => r()));
  await client?.close();
});

/** One invalid video request (as the app would send it) and the field the error must name. */
interface VideoCase {
  name: string;
  input: Record<string, unknown>;
  field: string;
  /** Also send it over HTTP (JSON cannot carry every JavaScript value, e.g. NaN). */
  http?: boolean;
}
const ok = { source: 'ok.mp4', tenant: 'acme' };
const videoCases: VideoCase[] = [
  { name: 'source of the wrong type', input: { ...ok, source: 42 }, field: 'source', http: true },
  { name: 'source missing', input: { tenant: 'acme' }, field: 'source', http: true },
  { name: 'source empty', input: { ...ok, source: '' }, field: 'source', http: true },
  { name: 'source with NUL', input: { ...ok, source: 'ok.mp4\u0000.txt' }, field: 'source', http: true },
  { name: 'source climbing out with ..', input: { ...ok, source: '../secret.mp4' }, field: 'source', http: true },
  { name: 'source as an absolute path outside', input: { ...ok, source: '/etc/passwd' }, field: 'source', http: true },
  { name: 'source through a symlink outside', input: { ...ok, source: 'escape.mp4' }, field: 'source', http: true },
  { name: 'source is a directory', input: { ...ok, source: 'dir' }, field: 'source', http: true },
  { name: 'source that does not exist', input: { ...ok, source: 'nope.mp4' }, field: 'source', http: true },
  {
    name: 'source over 2 MiB (Temporal blob limit)',
    input: { ...ok, source: 'a'.repeat(2.5 * 1024 * 1024) },
    field: 'source',
  },
  { name: 'renditions not an array', input: { ...ok, renditions: '360p' }, field: 'renditions', http: true },
  { name: 'renditions empty', input: { ...ok, renditions: [] }, field: 'renditions', http: true },
  { name: 'renditions repeated', input: { ...ok, renditions: ['360p', '360p'] }, field: 'renditions', http: true },
  { name: 'an unknown rendition', input: { ...ok, renditions: ['4k'] }, field: 'renditions.0', http: true },
  { name: 'chunkSeconds as a string', input: { ...ok, chunkSeconds: '30' }, field: 'chunkSeconds', http: true },
  { name: 'chunkSeconds zero', input: { ...ok, chunkSeconds: 0 }, field: 'chunkSeconds', http: true },
  { name: 'chunkSeconds negative', input: { ...ok, chunkSeconds: -1 }, field: 'chunkSeconds', http: true },
  { name: 'chunkSeconds huge', input: { ...ok, chunkSeconds: 1e12 }, field: 'chunkSeconds', http: true },
  { name: 'chunkSeconds NaN', input: { ...ok, chunkSeconds: NaN }, field: 'chunkSeconds' },
  { name: 'chunkSeconds Infinity', input: { ...ok, chunkSeconds: Infinity }, field: 'chunkSeconds' },
  { name: 'thumbnails huge', input: { ...ok, thumbnails: 1_000_000 }, field: 'thumbnails', http: true },
  { name: 'thumbnails negative', input: { ...ok, thumbnails: -3 }, field: 'thumbnails', http: true },
  { name: 'thumbnails fractional', input: { ...ok, thumbnails: 1.5 }, field: 'thumbnails', http: true },
  { name: 'an unknown tier', input: { ...ok, tier: 'urgent' }, field: 'tier', http: true },
  { name: 'tenant empty', input: { ...ok, tenant: '' }, field: 'tenant', http: true },
  { name: 'tenant in capitals', input: { ...ok, tenant: 'ACME' }, field: 'tenant', http: true },
  { name: 'tenant with unicode', input: { ...ok, tenant: 'café' }, field: 'tenant', http: true },
  { name: 'tenant with a control character', input: { ...ok, tenant: 'ac\nme' }, field: 'tenant', http: true },
  { name: 'tenant too long', input: { ...ok, tenant: 'a'.repeat(200) }, field: 'tenant', http: true },
  { name: 'idempotencyKey with a space', input: { ...ok, idempotencyKey: 'a b' }, field: 'idempotencyKey' },
  { name: 'idempotencyKey with an emoji', input: { ...ok, idempotencyKey: '🎬' }, field: 'idempotencyKey' },
  { name: 'priorityKey out of range', input: { ...ok, priorityKey: 9 }, field: 'priorityKey', http: true },
  { name: 'window zero', input: { ...ok, window: 0 }, field: 'window', http: true },
  { name: 'an extra field', input: { ...ok, colour: 'blue' }, field: 'colour', http: true },
  { name: 'webhook as a bare string', input: { ...ok, webhook: 'http://x' }, field: 'webhook', http: true },
  {
    name: 'webhook url not http(s)',
    input: { ...ok, webhook: { url: 'file:///etc/passwd' } },
    field: 'webhook.url',
    http: true,
  },
  {
    name: 'webhook url to loopback (SSRF guard)',
    input: { ...ok, webhook: { url: 'http://127.0.0.1:9/hook' } },
    field: 'webhook.url',
    http: true,
  },
  {
    name: 'webhook url to the cloud metadata address',
    input: { ...ok, webhook: { url: 'http://169.254.169.254/latest/meta-data' } },
    field: 'webhook.url',
    http: true,
  },
  {
    name: 'webhook with an extra field',
    input: { ...ok, webhook: { url: 'https://example.com/h', x: 1 } },
    field: 'webhook',
    http: true,
  },
];

interface ReportCase {
  name: string;
  input: Record<string, unknown>;
  field: string;
}
const okReport = { from: '2025-01', to: '2025-03', tenant: 'acme' };
const reportCases: ReportCase[] = [
  { name: 'a month that is not a month', input: { ...okReport, from: '2025-13' }, field: 'from' },
  { name: 'from after to', input: { ...okReport, from: '2025-06', to: '2025-01' }, field: 'from' },
  {
    name: 'a measure outside the allow-list (SQL)',
    input: { ...okReport, measures: ['1; DROP TABLE orders'] },
    field: 'measures.0',
  },
  { name: 'a group-by outside the allow-list', input: { ...okReport, groupBy: ['ssn'] }, field: 'groupBy.0' },
  { name: 'an unknown format', input: { ...okReport, format: 'pdf' }, field: 'format' },
  { name: 'an unknown policy', input: { ...okReport, policy: 'yolo' }, field: 'policy' },
  { name: 'measures of the wrong type', input: { ...okReport, measures: 'orders' }, field: 'measures' },
  { name: 'an extra field', input: { ...okReport, limit: 10 }, field: 'limit' },
];

async function clientError(p: Promise<unknown>): Promise<InvalidInputError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InvalidInputError);
  return err as InvalidInputError;
}

async function post(
  url: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: { error?: string; issues?: { path: string; message: string }[] } }> {
  const res = await fetch(`${base}${url}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'matrix-1', ...headers },
    body,
  });
  return {
    status: res.status,
    body: (await res.json()) as { error?: string; issues?: { path: string; message: string }[] },
  };
}

describe('typed client', () => {
  it.each(videoCases)('video: $name → InvalidInputError naming $field', async ({ input, field }) => {
    const err = await clientError(client.startVideoPipeline(input as unknown as StartVideoOptions));
    expect(err.issues.map((i) => i.path)).toContain(field);
    expect(err.message).toContain(`${field}: `);
  });
  it.each(reportCases)('report: $name → InvalidInputError naming $field', async ({ input, field }) => {
    const err = await clientError(client.startReportPipeline(input));
    expect(err.issues.map((i) => i.path)).toContain(field);
  });
  it.each([
    { name: 'zero', pack: 0 },
    { name: 'above 100', pack: 101 },
    { name: 'fractional', pack: 2.5 },
    { name: 'a string', pack: '10' },
  ])('jobs: pack $name → InvalidInputError naming pack', async ({ pack }) => {
    const err = await clientError(
      client.startJobsPipeline({
        idempotencyKey: `bad-pack-${String(pack)}`.replace(/[^\w.-]/g, '_'),
        pack: pack as number,
        jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 1 } }],
      }),
    );
    expect(err.issues.map((i) => i.path)).toEqual(['pack']);
  });
  it('a non-object request → InvalidInputError', async () => {
    const err = await clientError(client.startVideoPipeline(null as unknown as StartVideoOptions));
    expect(err.issues[0]?.path).toBe('(input)');
  });
});

describe('HTTP API', () => {
  it.each(videoCases.filter((c) => c.http))('POST /v1/videos: $name → 400 naming $field', async ({ input, field }) => {
    const res = await post('/v1/videos', JSON.stringify(input));
    expect(res.status).toBe(400);
    expect(res.body.issues?.map((i) => i.path)).toContain(field);
  });
  it.each(reportCases)('POST /v1/reports: $name → 400 naming $field', async ({ input, field }) => {
    const res = await post('/v1/reports', JSON.stringify(input));
    expect(res.status).toBe(400);
    expect(res.body.issues?.map((i) => i.path)).toContain(field);
  });
  it('malformed JSON → 400', async () => {
    const res = await post('/v1/videos', '{"source": "ok.mp4",');
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toMatch(/JSON/i);
  });
  it('a rejectWhenFull that is not a boolean → 400 naming it', async () => {
    const res = await post('/v1/videos?rejectWhenFull=maybe', JSON.stringify(ok));
    expect(res.status).toBe(400);
    expect(res.body.issues?.map((i) => i.path)).toContain('rejectWhenFull');
  });
  it('a JSON array instead of an object → 400', async () => {
    expect((await post('/v1/videos', '[1,2,3]')).status).toBe(400);
  });
  it('a missing Idempotency-Key header → 400 naming it', async () => {
    const res = await fetch(`${base}/v1/videos`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ok),
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain('Idempotency-Key');
  });
  it('an Idempotency-Key with path tricks → 400 naming it', async () => {
    const res = await post('/v1/videos', JSON.stringify(ok), { 'idempotency-key': '../../etc' });
    expect(res.status).toBe(400);
    expect(res.body.issues?.map((i) => i.path)).toContain('Idempotency-Key');
  });
  it.each([
    ['text/plain', 'text/plain'],
    ['JSON in UTF-16', 'application/json; charset=utf-16'],
    ['JSON with a stray parameter', 'application/json; version=2'],
    ['no Content-Type', ''],
  ])('a body sent as %s → 415', async (_name, type) => {
    const res = await post('/v1/videos', JSON.stringify(ok), { 'content-type': type });
    expect(res.status).toBe(415);
  });
  it('a body that is not UTF-8 → 400 naming the body', async () => {
    const res = await fetch(`${base}/v1/videos`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'matrix-utf8' },
      body: Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]),
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain('(body)');
  });
  it.each(['%E0%A4%A', '%', 'video%3Aacme%3A%ZZ'])(
    'a malformed percent-encoding in /v1/pipelines/%s → 400, not 500',
    async (id) => {
      const status = await new Promise<number>((resolve, reject) =>
        http
          .get(`${base}/v1/pipelines/${id}`, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on('error', reject),
      );
      expect(status).toBe(400);
    },
  );
  it.each(['payments-1', 'video:acme', 'video:ACME:x', 'other:acme:x', 'video:acme:x:y'])(
    'GET and DELETE of %s (not a Sluice pipeline ID) → 404',
    async (id) => {
      for (const method of ['GET', 'DELETE']) {
        const res = await fetch(`${base}/v1/pipelines/${encodeURIComponent(id)}`, { method });
        expect(res.status, method).toBe(404);
      }
    },
  );
  it('a missing source and one outside the media root → the same 400 message, without the root', async () => {
    const messages: string[] = [];
    for (const source of ['nope.mp4', '/etc/passwd', '../secret.mp4', 'escape.mp4']) {
      const res = await post('/v1/videos', JSON.stringify({ ...ok, source }));
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body)).not.toContain(t.mediaRoot);
      messages.push(res.body.issues?.[0]?.message.replace(source, '<source>') ?? '');
    }
    expect(new Set(messages).size).toBe(1);
  });
  it('with API keys: no key or a wrong one → 401; another tenant in the body → 403', async () => {
    const key = 'matrix-key-0123456789abcdef';
    const keyed = createApiServer({
      client,
      bodyLimitBytes: t.config.api.bodyLimitBytes,
      keys: ApiKeyring.of([{ tenant: 'acme', key }]),
    });
    const keyedBase = `http://127.0.0.1:${await listen(keyed, 0)}`;
    try {
      const send = (headers: Record<string, string>, body: object) =>
        fetch(`${keyedBase}/v1/videos`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': 'matrix-keyed', ...headers },
          body: JSON.stringify(body),
        }).then((r) => r.status);
      expect(await send({}, ok)).toBe(401);
      expect(await send({ authorization: 'Bearer wrong-key-0123456789abcdef' }, ok)).toBe(401);
      expect(await send({ authorization: `Basic ${key}` }, ok)).toBe(401);
      expect(await send({ authorization: `Bearer ${key}` }, { ...ok, tenant: 'globex' })).toBe(403);
    } finally {
      await new Promise<void>((r) => keyed.close(() => r()));
    }
  });
  it('a payload over the 2 MiB Temporal blob limit → 413', async () => {
    const res = await post('/v1/videos', JSON.stringify({ ...ok, source: 'a'.repeat(3 * 1024 * 1024) }));
    expect(res.status).toBe(413);
  });
});

describe('CLI', () => {
  const cli = (args: string[]) => runSluice(t, [...args, '--json']);
  const cases: { name: string; args: string[]; field: RegExp }[] = [
    {
      name: 'chunk seconds of 1e400 (Infinity)',
      args: ['video', 'ok.mp4', '--chunk-seconds', '1e400'],
      field: /chunk-seconds/,
    },
    { name: 'a tenant with unicode', args: ['video', 'ok.mp4', '--tenant', 'café'], field: /tenant/ },
    {
      name: 'a report month that is not a month',
      args: ['report', '--from', '2025-13', '--to', '2025-14'],
      field: /from/,
    },
    {
      name: 'a report policy that does not exist',
      args: ['report', '--from', '2025-01', '--to', '2025-02', '--policy', 'yolo'],
      field: /policy/,
    },
    {
      name: 'a webhook to a private address',
      args: ['video', 'ok.mp4', '--webhook', 'http://10.0.0.7/hook'],
      field: /webhook\.url/,
    },
    {
      name: 'a report webhook that is not a URL',
      args: ['report', '--from', '2025-01', '--to', '2025-02', '--webhook', 'not a url'],
      field: /webhook\.url/,
    },
    {
      name: 'a report measure outside the allow-list',
      args: ['report', '--from', '2025-01', '--to', '2025-02', '--measures', 'secret'],
      field: /measures/,
    },
  ];
  cases.push(
    { name: 'status of an unknown pipeline ID', args: ['status', 'video:acme:never'], field: /no such pipeline/ },
    { name: 'result of an unknown pipeline ID', args: ['result', 'report:acme:never'], field: /no such pipeline/ },
    { name: 'cancel of an ID that is no pipeline', args: ['cancel', 'payments-1'], field: /no such pipeline/ },
    { name: 'api on 0.0.0.0 without API keys', args: ['api', '--host', '0.0.0.0'], field: /--host.*loopback/ },
  );
  it.each([
    {
      name: 'a media root that does not exist',
      env: { SLUICE_MEDIA_ROOT: '/nonexistent' },
      field: /SLUICE_MEDIA_ROOT/,
    },
    { name: 'a DATABASE_URL that does not parse', env: { DATABASE_URL: 'notaurl' }, field: /DATABASE_URL/ },
    { name: 'an API key entry that is too short', env: { SLUICE_API_KEYS: 'acme:short' }, field: /SLUICE_API_KEYS/ },
    {
      name: 'a webhook allow entry with a bad port',
      env: { SLUICE_WEBHOOK_ALLOW: '127.0.0.1:99999' },
      field: /SLUICE_WEBHOOK_ALLOW/,
    },
  ])('$name → exit 2 naming the variable, one JSON object', async ({ env, field }) => {
    const run = await runSluice(t, ['video', 'ok.mp4', '--id', 'matrix-env', '--json'], { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(field);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
  });
  it.each(cases)('$name → exit 2 naming the field, one JSON object', async ({ args, field }) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(field);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(run.stdout) as object).toHaveProperty('error');
  });
});

describe('tenant limits file (SLUICE_TENANT_LIMITS)', () => {
  const file = (name: string, text: string) => {
    const f = path.join(t.dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  it.each([
    {
      name: 'a negative maxRunning',
      text: 'tenants:\n  acme:\n    maxRunning: -1\n',
      field: /limits-neg\.yaml:3: tenants\.acme\.maxRunning: must not be negative/,
      file: 'limits-neg.yaml',
    },
    {
      name: 'a maxInFlight that is not a number',
      text: 'default:\n  maxInFlight: lots\n',
      field: /default\.maxInFlight: .*must be a number/,
      file: 'limits-nan.yaml',
    },
    {
      name: 'a fractional maxInFlight',
      text: 'tenants:\n  acme: { maxInFlight: 2.5 }\n',
      field: /tenants\.acme\.maxInFlight: .*whole number/,
      file: 'limits-frac.yaml',
    },
    {
      name: 'a file that does not parse',
      text: 'tenants:\n  acme: { maxRunning: 2\n',
      field: /SLUICE_TENANT_LIMITS: .*limits-broken\.yaml:\d+/,
      file: 'limits-broken.yaml',
    },
    {
      name: 'a file that does not exist',
      text: undefined,
      field: /SLUICE_TENANT_LIMITS: .*limits-missing\.yaml/,
      file: 'limits-missing.yaml',
    },
  ])('$name → a start exits 2 naming the field and the file, nothing started', async ({ text, field, file: name }) => {
    const f = text === undefined ? path.join(t.dir, name) : file(name, text);
    const run = await runSluice(t, ['video', 'ok.mp4', '--id', 'matrix-limits', '--json'], {
      env: { SLUICE_TENANT_LIMITS: f },
    });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(field);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
  });
  it('an unknown tenant → accepted with a warning naming it', async () => {
    const f = file('limits-unknown.yaml', 'tenants:\n  nobody-here-m1: { maxRunning: 2 }\n');
    const run = await runSluice(t, ['limits', 'check', '--file', f, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/warning: tenants\.nobody-here-m1: unknown tenant/);
  });
});

describe('after every bad request', () => {
  it('nothing was started and nothing was written', async () => {
    for (const tier of TIERS) {
      const { executions } = await client.temporal.workflowService.listWorkflowExecutions({
        namespace: 'default',
        query: `TaskQueue = '${taskQueueFor(tier, t.suffix)}'`,
      });
      expect(executions).toHaveLength(0);
    }
    expect(listFiles(t.outputDir)).toEqual([]);
  });

  it('has at least 40 cases', () => {
    expect(
      videoCases.length + reportCases.length + videoCases.filter((c) => c.http).length + reportCases.length,
    ).toBeGreaterThanOrEqual(40);
  });
});
