/**
 * No secrets in logs: a full run with payload keys, a webhook secret, a codec token and an API
 * key configured — `sluice worker`, `sluice video --wait`, `sluice result/status`,
 * `sluice codec-server`, `sluice up` with its dev server (and that server's log file), a config
 * error, and the in-process codec-server logger at trace — then every byte they wrote is searched
 * for the configured secrets, raw and encoded. Runs the compiled CLI (`npm test` builds first).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { freePort } from '../../src/devserver/dev-server';
import { codecFor } from '../../src/security/codec';
import { startCodecServer } from '../../src/security/codec-server';
import { Secret } from '../../src/security/secret';
import { REPO_ROOT, connectClient, listFiles, makeTestEnv, sampleVideo, type TestEnv } from '../helpers/env';
import { startReceiver, waitFor, type Receiver } from '../flow/helpers';

const K1 = crypto.randomBytes(32);
const K2 = crypto.randomBytes(32);
const TOKEN = crypto.randomBytes(24).toString('base64url');
const WEBHOOK_SECRET = `whsec-${crypto.randomBytes(16).toString('hex')}`;
const API_KEY = `apikey-${crypto.randomBytes(16).toString('hex')}`;
const BAD_KEY = crypto.randomBytes(31).toString('base64');

/** Every spelling of a secret that could plausibly end up in a log. */
function spellings(name: string, secret: string | Buffer): [string, string][] {
  const raw = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  const forms: [string, string][] = [
    [`${name} base64`, raw.toString('base64')],
    [`${name} base64url`, raw.toString('base64url')],
    [`${name} hex`, raw.toString('hex')],
  ];
  if (typeof secret === 'string') forms.push([`${name} raw`, secret]);
  // Padding may be cut where a string is split; search without it.
  return forms.map(([n, f]) => [n, f.replace(/=+$/, '')]);
}

const SECRETS: [string, string][] = [
  ...spellings('codec key k1', K1),
  ...spellings('codec key k2', K2),
  ...spellings('codec key k1 (as configured)', K1.toString('base64')),
  ...spellings('codec token', TOKEN),
  ...spellings('webhook secret', WEBHOOK_SECRET),
  ...spellings('API key', API_KEY),
  ...spellings('rejected key', BAD_KEY),
];

interface Proc {
  child: ChildProcessWithoutNullStreams;
  output: () => string;
  exit: Promise<number | null>;
}

describe('no secrets in logs', () => {
  let t: TestEnv;
  let client: SluiceClient;
  let receiver: Receiver;
  const logs: { what: string; text: () => string }[] = [];
  const procs: Proc[] = [];

  function sluice(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Proc {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'sluice'), ...args], {
      cwd: t.dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const exit = new Promise<number | null>((resolve) =>
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve(code);
      }),
    );
    const proc = { child, output: () => out, exit };
    procs.push(proc);
    logs.push({ what: `sluice ${args.join(' ')}`, text: () => out });
    return proc;
  }

  beforeAll(async () => {
    if (!fs.existsSync(path.join(REPO_ROOT, 'dist', 'cli', 'commands', 'codec-server.js'))) {
      throw new Error('dist/ is missing or stale: run `npm run build` (npm test does) first');
    }
    receiver = await startReceiver();
    t = makeTestEnv('sec-logs', {
      SLUICE_CODEC_KEYS: `k2:${K2.toString('base64')},k1:${K1.toString('base64')}`,
      SLUICE_CODEC_TOKEN: TOKEN,
      SLUICE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      SLUICE_WEBHOOK_ALLOW: '127.0.0.1',
      // The dev server ignores the key; TLS off explicitly, so it is sent and must still never be logged.
      TEMPORAL_API_KEY: API_KEY,
      TEMPORAL_TLS: 'false',
      SLUICE_LOG_LEVEL: 'debug',
      SLUICE_CODEC_PORT: '0',
    });
    client = await connectClient(t);
  });

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exit));
    await client?.close();
    await receiver?.close();
  });

  it('sluice codec-server refuses to start without keys or a token, naming the variables (exit 2)', async () => {
    const { SLUICE_CODEC_TOKEN: _t, SLUICE_CODEC_KEYS: _k, ...bare } = t.env;
    const noToken = sluice(['codec-server'], { ...bare, SLUICE_CODEC_KEYS: t.env.SLUICE_CODEC_KEYS });
    expect(await noToken.exit).toBe(2);
    expect(noToken.output()).toMatch(/SLUICE_CODEC_TOKEN: required by the codec server/);
    const noKeys = sluice(['codec-server', '--json'], { ...bare, SLUICE_CODEC_TOKEN: TOKEN });
    expect(await noKeys.exit).toBe(2);
    expect(noKeys.output()).toMatch(/SLUICE_CODEC_KEYS: required by the codec server/);
  });

  it('a full run writes none of the configured keys and tokens to any log', async () => {
    // Workers in their own process, at debug level.
    const worker = sluice(['worker', '--tiers', 'default,critical'], t.env, 300_000);
    await waitFor('the worker to poll', () => worker.output().includes('worker polling'), 60_000);

    // A video pipeline through the CLI (encrypted client in the CLI process, encrypted worker).
    const video = await sampleVideo(t, { seconds: 2 });
    const run = sluice(
      [
        'video',
        video,
        '--package',
        'mp4',
        '--renditions',
        '240p',
        '--chunk-seconds',
        '1',
        '--thumbnails',
        '1',
        '--wait',
        '--json',
      ],
      t.env,
    );
    expect(await run.exit).toBe(0);

    // Webhooks: one delivered, one refused by the receiver (401: the error path logs too).
    receiver.respond = (req) => ({ status: req.url?.includes('deny') ? 401 : 200 });
    const ok = await client.startJobsPipeline({
      idempotencyKey: `logs-ok-${t.suffix}`,
      jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 1 } }],
      webhook: { url: receiver.url },
    });
    const denied = await client.startJobsPipeline({
      idempotencyKey: `logs-deny-${t.suffix}`,
      jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 1 } }],
      webhook: { url: `${receiver.url}?deny=1` },
    });
    expect(await sluice(['result', ok.workflowId, '--json'], t.env).exit).toBe(0);
    // A refused completion webhook does not fail the run: its result says "not delivered".
    expect(await sluice(['result', denied.workflowId, '--json'], t.env).exit).toBe(0);
    expect(await sluice(['status', ok.workflowId, '--json'], t.env).exit).toBe(0);
    expect(receiver.requests.length).toBeGreaterThanOrEqual(2);

    // The codec server: one good and one bad token, one bad body.
    const codecServer = sluice(['codec-server', '--json'], t.env);
    await waitFor('the codec server', () => /"url":"http:[^"]+"/.test(codecServer.output()), 30_000);
    const url = (
      JSON.parse(
        codecServer
          .output()
          .split('\n')
          .find((l) => l.startsWith('{'))!,
      ) as { url: string }
    ).url;
    const decode = (auth: string, body: string) =>
      fetch(`${url}/decode`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body,
      });
    expect((await decode(`Bearer ${TOKEN}`, '{"payloads":[]}')).status).toBe(200);
    expect((await decode(`Bearer ${crypto.randomBytes(20).toString('hex')}`, '{"payloads":[]}')).status).toBe(401);
    expect(
      (
        await decode(
          `Bearer ${TOKEN}`,
          '{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA=="},"data":"AAAA"}]}',
        )
      ).status,
    ).toBe(400);
    codecServer.child.kill('SIGTERM');
    expect(await codecServer.exit).toBe(0);

    // `sluice up` with encryption on: its own dev server, started with --ui-codec-endpoint.
    const upDir = path.join(t.dir, 'up');
    const [port, uiPort] = [await freePort(), await freePort()];
    const { TEMPORAL_ADDRESS: _a, TEMPORAL_API_KEY: _k, TEMPORAL_TLS: _t, ...upEnv } = t.env;
    const up = sluice(
      ['up', '--no-demo'],
      {
        ...upEnv,
        SLUICE_DATA_DIR: upDir,
        SLUICE_DEV_SERVER_PORT: String(port),
        SLUICE_DEV_UI_PORT: String(uiPort),
        SLUICE_SCALE_POLL_MS: '0',
        TEMPORAL_CLI_PATH: process.env.TEMPORAL_CLI_PATH,
      },
      180_000,
    );
    await waitFor('sluice up to serve', () => up.output().includes('serving; press Ctrl-C'), 120_000);
    const settings = (await (await fetch(`http://127.0.0.1:${uiPort}/api/v1/settings`)).json()) as {
      Codec?: { Endpoint?: string };
    };
    const endpoint = settings.Codec?.Endpoint ?? '';
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]{32}$/);
    // The UI's endpoint decodes without a bearer token (its path secret), for the UI's origin.
    const res = await fetch(`${endpoint}/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: `http://127.0.0.1:${uiPort}` },
      body: '{"payloads":[]}',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(`http://127.0.0.1:${uiPort}`);
    up.child.kill('SIGTERM');
    expect(await up.exit).toBe(0);
    for (const f of listFiles(upDir).filter((f) => f.endsWith('.log'))) {
      logs.push({ what: `up: ${f}`, text: () => fs.readFileSync(path.join(upDir, f), 'utf8') });
    }

    // A rejected key is reported by ID and position, never echoed.
    const bad = sluice(['status', 'x', '--json'], { ...t.env, SLUICE_CODEC_KEYS: `k1:${BAD_KEY}` });
    expect(await bad.exit).toBe(2);
    expect(bad.output()).toMatch(/SLUICE_CODEC_KEYS: key k1 must be 32 bytes/);

    // The in-process logger at trace, through the codec server's error paths.
    let inProcess = '';
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        inProcess += chunk.toString();
        done();
      },
    });
    const local = await startCodecServer({
      codec: codecFor(t.config.codec)!,
      token: new Secret(TOKEN),
      corsOrigins: [],
      port: 0,
      log: pino({ level: 'trace' }, sink),
    });
    try {
      await fetch(`${local.url}/decode`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}` },
        body: '{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"azE="},"data":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}',
      });
    } finally {
      await local.close();
    }
    logs.push({ what: 'in-process logger', text: () => inProcess });
    expect(inProcess).toMatch(/codec error/);

    worker.child.kill('SIGTERM');
    expect(await worker.exit).toBe(0);

    // The run produced real logs to search.
    const all = logs.map((l) => l.text()).join('\n');
    expect(all).toMatch(/worker polling/);
    expect(all).toMatch(/codec server on/);
    expect(all).toMatch(/"status":"COMPLETED"/);
    const leaks = logs.flatMap((l) =>
      SECRETS.filter(([, s]) => l.text().includes(s)).map(([name]) => `${name} in ${l.what}`),
    );
    expect(leaks).toEqual([]);
  });
});
