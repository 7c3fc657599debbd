/**
 * Security on the real dev server: payloads written by an encrypted client are unreadable without
 * the codec (raw history), workers with rotated keys still read them, the codec server decodes
 * them for the UI only with the token and only for allowed origins, and webhooks to 127.0.0.1
 * pass the SSRF guard only when allow-listed.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBurstActivities } from '../../src/activities/burst';
import { SluiceClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import { findTemporalCli } from '../../src/devserver/cli-binary';
import { codecFor } from '../../src/security/codec';
import { startCodecServer, startLocalCodecServer, type CodecServerHandle } from '../../src/security/codec-server';
import { Secret } from '../../src/security/secret';
import { FailureType } from '../../src/shared/constants';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, type TestEnv } from '../helpers/env';
import { startFlowHost, startReceiver, type Receiver } from '../flow/helpers';

const K1 = crypto.randomBytes(32).toString('base64');
const K2 = crypto.randomBytes(32).toString('base64');
const TOKEN = crypto.randomBytes(24).toString('base64url');
const WEBHOOK_SECRET = crypto.randomBytes(20).toString('hex');
const MARKER = `plaintext-marker-${crypto.randomBytes(4).toString('hex')}`;
const UI_ORIGIN = 'http://ui.example.test:8233';

type RawPayload = temporal.api.common.v1.IPayload;
interface PayloadJson {
  metadata: Record<string, string>;
  data: string;
}

/** The workflow input payloads of a run, straight from the server: no data converter involved. */
async function rawStartInput(address: string, workflowId: string): Promise<RawPayload[]> {
  const connection = await Connection.connect({ address });
  try {
    const history = await connection.workflowService.getWorkflowExecutionHistory({
      namespace: 'default',
      execution: { workflowId },
    });
    const started = history.history?.events?.find((e) => e.workflowExecutionStartedEventAttributes);
    return started?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
  } finally {
    await connection.close();
  }
}

const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? new Uint8Array()).toString('utf8');
const toJson = (p: RawPayload) => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

describe('payload encryption on the real server', () => {
  let t: TestEnv;
  let host: WorkerHost;
  let client: SluiceClient;
  let receiver: Receiver;
  let codecServer: CodecServerHandle;
  let workflowId: string;

  beforeAll(async () => {
    receiver = await startReceiver();
    t = makeTestEnv('sec-enc', {
      SLUICE_CODEC_KEYS: `k2:${K2},k1:${K1}`,
      SLUICE_CODEC_TOKEN: TOKEN,
      SLUICE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      SLUICE_WEBHOOK_ALLOW: '127.0.0.1',
    });
    host = await startFlowHost(t, ['default', 'critical'], createBurstActivities());
    client = await connectClient(t);
    const started = await client.startJobsPipeline({
      idempotencyKey: `enc-${crypto.randomBytes(3).toString('hex')}`,
      jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 5, note: MARKER } }],
      webhook: { url: receiver.url },
    });
    workflowId = started.workflowId;
    codecServer = await startCodecServer({
      codec: codecFor(t.config.codec)!,
      token: new Secret(TOKEN),
      corsOrigins: [UI_ORIGIN],
      port: 0,
    });
  });

  afterAll(async () => {
    await codecServer?.close();
    await client?.close();
    await host?.shutdown();
    await receiver?.close();
  });

  it('an encrypted pipeline completes and delivers its webhook to an allow-listed 127.0.0.1', async () => {
    const result = await client.getResult<{ succeeded: number; webhook?: { status: number } }>(workflowId);
    expect(result.succeeded).toBe(1);
    expect(result.webhook?.status).toBe(200);
    expect(receiver.requests).toHaveLength(1);
    expect(receiver.requests[0]?.headers['x-sluice-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
  });

  it('the stored input is encrypted: metadata says so and the data is not the plaintext JSON', async () => {
    const payloads = await rawStartInput(t.config.temporal.address!, workflowId);
    expect(payloads).toHaveLength(1);
    const [p] = payloads as [RawPayload];
    expect(text(p.metadata?.encoding)).toBe('binary/encrypted');
    expect(text(p.metadata?.['encryption-key-id'])).toBe('k2');
    expect(text(p.data)).not.toContain(MARKER);
    expect(text(p.data)).not.toContain('burstSleep');
  });

  it('a client without the codec cannot read the result', async () => {
    const connection = await Connection.connect({ address: t.config.temporal.address! });
    try {
      const plain = new Client({ connection, namespace: 'default' });
      await expect(plain.workflow.getHandle(workflowId).result()).rejects.toThrow(/encoding|binary\/encrypted/i);
    } finally {
      await connection.close();
    }
  });

  it('after a rotation, input written with the old key is still read by workers with both keys', async () => {
    const oldClient = await SluiceClient.connect({ config: loadConfig({ ...t.env, SLUICE_CODEC_KEYS: `k1:${K1}` }) });
    try {
      const { workflowId: id } = await oldClient.startJobsPipeline({
        idempotencyKey: `enc-old-${crypto.randomBytes(3).toString('hex')}`,
        jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 5 } }],
      });
      const [p] = await rawStartInput(t.config.temporal.address!, id);
      expect(text(p?.metadata?.['encryption-key-id'])).toBe('k1');
      // The worker's keys are k2 (active) and k1.
      await expect(client.getResult<{ succeeded: number }>(id)).resolves.toMatchObject({ succeeded: 1 });
    } finally {
      await oldClient.close();
    }
  });

  describe('codec server', () => {
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${codecServer.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers },
        body: JSON.stringify(body),
      });

    it('/decode returns the plaintext payload with the right token', async () => {
      const payloads = (await rawStartInput(t.config.temporal.address!, workflowId)).map(toJson);
      const res = await post('/decode', { payloads }, { authorization: `Bearer ${TOKEN}` });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
      const [decoded] = body.payloads;
      expect(Buffer.from(decoded!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
      const value = JSON.parse(Buffer.from(decoded!.data, 'base64').toString()) as {
        jobs: { input: { note: string } }[];
      };
      expect(value.jobs[0]?.input.note).toBe(MARKER);
    });

    it('/encode then /decode round-trips; the path may be mounted at any depth', async () => {
      const plain = {
        metadata: { encoding: Buffer.from('json/plain').toString('base64') },
        data: Buffer.from('"x"').toString('base64'),
      };
      const auth = { authorization: `Bearer ${TOKEN}` };
      const enc = (await (await post('/default/encode', { payloads: [plain] }, auth)).json()) as {
        payloads: unknown[];
      };
      const dec = (await (await post('/x/y/decode', enc, auth)).json()) as { payloads: unknown[] };
      expect(dec.payloads).toEqual([plain]);
    });

    it('answers 401 without the token or with a wrong one, and 400 on bad input', async () => {
      const payloads = [{ data: 'AA==' }];
      const none = await post('/decode', { payloads });
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer');
      expect((await post('/decode', { payloads }, { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
      expect((await post('/decode', { payloads }, { authorization: TOKEN })).status).toBe(401);
      const auth = { authorization: `Bearer ${TOKEN}` };
      expect((await post('/decode', { nope: 1 }, auth)).status).toBe(400);
      expect((await post('/decode', { payloads: [{ data: '%%%' }] }, auth)).status).toBe(400);
      const unknownKey = {
        metadata: {
          encoding: Buffer.from('binary/encrypted').toString('base64'),
          'encryption-key-id': Buffer.from('k9').toString('base64'),
        },
        data: crypto.randomBytes(40).toString('base64'),
      };
      const res = await post('/decode', { payloads: [unknownKey] }, auth);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/key ID "k9", which is not configured/);
    });

    it('the temporal CLI decodes the history through it (--codec-endpoint, --codec-auth)', async () => {
      const cli = findTemporalCli(process.env.TEMPORAL_CLI_PATH);
      expect(cli).toBeDefined();
      const args = ['workflow', 'show', '-w', workflowId, '--address', t.config.temporal.address!, '-o', 'json'];
      const show = (extra: string[]) =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          execFile(cli!.path, [...args, ...extra], { timeout: 30_000 }, (err, stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
          );
        });
      // The CLI prints the history as protobuf JSON: metadata and data in base64.
      const input = (out: string) => {
        const history = JSON.parse(out) as {
          events: { workflowExecutionStartedEventAttributes?: { input: { payloads: PayloadJson[] } } }[];
        };
        const p = history.events.find((e) => e.workflowExecutionStartedEventAttributes)!
          .workflowExecutionStartedEventAttributes!.input.payloads[0]!;
        const b64 = (x: string | undefined) => Buffer.from(x ?? '', 'base64').toString('utf8');
        return { encoding: b64(p.metadata.encoding), data: b64(p.data) };
      };
      const decoded = await show(['--codec-endpoint', codecServer.url, '--codec-auth', `Bearer ${TOKEN}`]);
      expect(decoded.code).toBe(0);
      expect(input(decoded.out).encoding).toBe('json/plain');
      expect(input(decoded.out).data).toContain(MARKER);
      const raw = await show([]);
      expect(raw.code).toBe(0);
      expect(input(raw.out).encoding).toBe('binary/encrypted');
      expect(input(raw.out).data).not.toContain(MARKER);
    });

    it('sends CORS headers only to allowed origins, preflight included', async () => {
      const preflight = (origin: string) =>
        fetch(`${codecServer.url}/decode`, {
          method: 'OPTIONS',
          headers: {
            origin,
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'authorization,content-type,x-namespace',
          },
        });
      const ok = await preflight(UI_ORIGIN);
      expect(ok.status).toBe(204);
      expect(ok.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
      expect(ok.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
      expect(ok.headers.get('access-control-allow-methods')).toMatch(/POST/);
      const evil = await preflight('http://evil.example.test');
      expect(evil.status).toBe(403);
      expect(evil.headers.get('access-control-allow-origin')).toBeNull();

      const payloads = [{ metadata: {}, data: '' }];
      const auth = { authorization: `Bearer ${TOKEN}` };
      const allowed = await post('/decode', { payloads }, { ...auth, origin: UI_ORIGIN });
      expect(allowed.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
      const other = await post('/decode', { payloads }, { ...auth, origin: 'http://evil.example.test' });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
      const unauthorized = await post('/decode', { payloads }, { origin: 'http://evil.example.test' });
      expect(unauthorized.status).toBe(401);
      expect(unauthorized.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('the `sluice up` codec server takes its per-run path secret for the UI, and the UI origin', async () => {
      const config = loadConfig({ ...t.env, SLUICE_CODEC_PORT: '0', SLUICE_DEV_UI_PORT: '18233' });
      const local = await startLocalCodecServer(config.codec, config.devServer.uiPort);
      try {
        expect(local?.devServerArgs[0]).toBe('--ui-codec-endpoint');
        const endpoint = local!.devServerArgs[1]!;
        expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]{32}$/);
        const payloads = (await rawStartInput(t.config.temporal.address!, workflowId)).map(toJson);
        const res = await fetch(`${endpoint}/decode`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', origin: 'http://127.0.0.1:18233' },
          body: JSON.stringify({ payloads }),
        });
        expect(res.status).toBe(200);
        expect(res.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:18233');
        const wrong = endpoint.replace(/\/[^/]+$/, '/not-the-secret');
        expect((await fetch(`${wrong}/decode`, { method: 'POST', body: '{"payloads":[]}' })).status).toBe(401);
      } finally {
        await local?.server.close();
      }
    });
  });
});

describe('webhook SSRF guard on 127.0.0.1', () => {
  let t: TestEnv;
  let host: WorkerHost;
  let client: SluiceClient;
  let receiver: Receiver;

  beforeAll(async () => {
    receiver = await startReceiver();
    // No SLUICE_WEBHOOK_ALLOW: the receiver's 127.0.0.1 is refused.
    t = makeTestEnv('sec-ssrf', { SLUICE_WEBHOOK_SECRET: WEBHOOK_SECRET });
    host = await startFlowHost(t, ['default', 'critical'], createBurstActivities());
    client = await connectClient(t);
  });

  afterAll(async () => {
    await client?.close();
    await host?.shutdown();
    await receiver?.close();
  });

  it('a webhook to 127.0.0.1 that is not allow-listed is refused as non-retryable Forbidden, unsent; the run completes', async () => {
    const { workflowId } = await client.startJobsPipeline({
      idempotencyKey: `ssrf-${crypto.randomBytes(3).toString('hex')}`,
      jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 5 } }],
      webhook: { url: receiver.url },
    });
    // A completion webhook never fails the run (src/workflows/pipeline.ts): the result says why it was not sent.
    const result = await client.getResult<{ succeeded: number; webhook: { delivered: boolean; error: string } }>(
      workflowId,
    );
    expect(result.succeeded).toBe(1);
    expect(result.webhook.delivered).toBe(false);
    expect(result.webhook.error).toMatch(/127\.0\.0\.1 is loopback; list the host or address in SLUICE_WEBHOOK_ALLOW/);
    expect(receiver.requests).toHaveLength(0);
    // One attempt only: no retry storm.
    const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
    const failed = (history.events ?? []).filter((e) => e.activityTaskFailedEventAttributes);
    expect(failed).toHaveLength(1);
    const attrs = failed[0]?.activityTaskFailedEventAttributes;
    expect(attrs?.retryState).toBe(temporal.api.enums.v1.RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE);
    expect(attrs?.failure?.applicationFailureInfo).toMatchObject({ type: FailureType.Forbidden, nonRetryable: true });
  });
});
