/** Real `sluice worker` processes for drain and fault tests, and a bounded polling helper. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../../src/devserver/dev-server';
import { REPO_ROOT, type TestEnv } from './env';

export interface WorkerProcess {
  child: ChildProcess;
  /** Port of its /metrics, /healthz and /readyz. */
  port: number;
  exited: Promise<number | null>;
  stderr: () => string;
}

/** Polls `fn` every 100 ms until `ok`, failing after `timeoutMs`. */
export async function until<T>(
  what: string,
  fn: () => T | Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * HTTP status of the process's /readyz, or 'down'. With `pid`, an answer from another process
 * (two workers handed the same free port: the second exits, the first answers) is 'another process'.
 */
export async function readyz(port: number, pid?: number): Promise<number | 'down' | 'another process'> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    if (pid === undefined) return res.status;
    const body = (await res.json().catch(() => ({}))) as { pid?: number };
    return body.pid === pid ? res.status : 'another process';
  } catch {
    return 'down';
  }
}

/**
 * Starts `node bin/sluice worker --tiers …` (compiled code: `npm test` builds first) and waits
 * until it is ready (at most `readyTimeoutMs`, 60 s by default).
 */
export async function spawnWorker(
  t: Pick<TestEnv, 'dir' | 'env'>,
  tiers: string[],
  extraEnv: NodeJS.ProcessEnv = {},
  readyTimeoutMs = 60_000,
): Promise<WorkerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'sluice'), 'worker', '--tiers', tiers.join(',')], {
    cwd: t.dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...t.env, ...extraEnv, SLUICE_METRICS_PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  try {
    const state = await until(
      'the worker to be ready',
      async () => (gone() ? 'exited' : await readyz(port, child.pid)),
      (s) => s === 200 || s === 'exited',
      readyTimeoutMs,
    );
    if (state === 'exited') throw new Error(`exited (${child.exitCode ?? child.signalCode}) before it was ready`);
  } catch (err) {
    // A worker that never became ready is not left running; its last words say why.
    if (!gone()) child.kill('SIGKILL');
    throw new Error(`worker on port ${port}: ${(err as Error).message}; stderr: ${stderr.slice(-1_500)}`);
  }
  return { child, port, exited, stderr: () => stderr };
}
