/**
 * A real S3-compatible server for the tests: versitygw (posix backend) from `.tools/`, built by
 * scripts/ci-deps.sh, on a free port of 127.0.0.1 (or a given address) with a data folder of its
 * own. Never a mock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { createS3Client } from '../../src/storage/s3';

export const VERSITYGW = path.resolve(__dirname, '..', '..', '.tools', 'versitygw');

export interface S3Server {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  dir: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** Starts it again on the same address and folder. */
  start(): Promise<void>;
}

async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`versitygw did not listen on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts versitygw on `host:port` (a free port of 127.0.0.1 by default). */
export async function startS3Server(opts: { host?: string; port: number; dir?: string }): Promise<S3Server> {
  if (!fs.existsSync(VERSITYGW)) {
    throw new Error(`${VERSITYGW} is missing: run 'bash scripts/ci-deps.sh' (npm test does) to build it`);
  }
  const host = opts.host ?? '127.0.0.1';
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-s3-'));
  fs.mkdirSync(dir, { recursive: true });
  const accessKey = `test${crypto.randomBytes(6).toString('hex')}`;
  const secretKey = crypto.randomBytes(18).toString('hex');
  let child: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    child = spawn(
      VERSITYGW,
      ['--access', accessKey, '--secret', secretKey, '--port', `${host}:${opts.port}`, 'posix', dir],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
      },
    );
    child.stdout?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const exited = new Promise<never>((_, reject) =>
      child!.once('exit', (code) => reject(new Error(`versitygw exited (${code}): ${log}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([waitForPort(host, opts.port, 20_000), exited]);
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  };
  await start();
  return { endpoint: `http://${host}:${opts.port}`, accessKey, secretKey, dir, stop, start };
}

/** Environment that points Sluice (the AWS SDK) at this server. */
export function s3Env(server: Pick<S3Server, 'endpoint' | 'accessKey' | 'secretKey'>): NodeJS.ProcessEnv {
  return {
    AWS_ENDPOINT_URL_S3: server.endpoint,
    AWS_ACCESS_KEY_ID: server.accessKey,
    AWS_SECRET_ACCESS_KEY: server.secretKey,
    AWS_REGION: 'us-east-1',
  };
}

/** Creates a bucket with a unique name and returns it. */
export async function createBucket(
  server: Pick<S3Server, 'endpoint' | 'accessKey' | 'secretKey'>,
  name: string,
): Promise<string> {
  const bucket = `${name}-${crypto.randomBytes(4).toString('hex')}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  const client = createS3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}
