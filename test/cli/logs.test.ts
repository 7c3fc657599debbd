/**
 * Log format of the CLI: a person at a terminal reads formatted lines; a pipe (a log shipper, a
 * test, a container runtime) gets one JSON object a line; SLUICE_LOG_FORMAT=json forces JSON on a
 * terminal too. The terminal is a real pseudo-TTY from util-linux `script`.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, makeTestEnv, type TestEnv } from '../helpers/env';

let t: TestEnv;

beforeAll(() => {
  t = makeTestEnv('logs');
});

/** Strips ANSI colour codes and carriage returns (a pty turns \n into \r\n). */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
const plain = (s: string) => s.replace(ANSI, '').replace(/\r/g, '');

/** Lines of `out` that are JSON log objects with this message. */
function jsonLines(out: string, msg: string): Record<string, unknown>[] {
  return plain(out)
    .split('\n')
    .flatMap((l) => {
      try {
        const v = JSON.parse(l) as Record<string, unknown>;
        return v && v.msg === msg ? [v] : [];
      } catch {
        return [];
      }
    });
}

/**
 * Starts `sluice worker --tiers low` (on a pseudo-TTY when `tty`), reads its output until the
 * "worker created" log line shows, then stops it with SIGTERM. Returns everything it wrote on
 * stderr (on a TTY, stdout and stderr are the same terminal).
 */
function workerOutput(opts: { tty: boolean; env?: NodeJS.ProcessEnv }): Promise<string> {
  const sluice = [process.execPath, path.join(REPO_ROOT, 'bin', 'sluice'), 'worker', '--tiers', 'low'];
  const [cmd, args] = opts.tty
    ? ['script', ['-qfec', sluice.map((a) => `'${a}'`).join(' '), '/dev/null']]
    : [sluice[0] as string, sluice.slice(1)];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: t.dir,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        SHELL: '/bin/sh',
        TERM: 'xterm',
        ...t.env,
        SLUICE_LOG_LEVEL: 'info',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: the stop reaches script, its shell and the worker.
      detached: true,
    });
    let out = '';
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      try {
        process.kill(-(child.pid as number), signal);
      } catch {
        // Already gone.
      }
    };
    const onData = (d: Buffer) => {
      out += d.toString();
      if (!stopping && plain(out).includes('worker created')) {
        stopping = true;
        stop('SIGTERM');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const deadline = setTimeout(() => stop('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('close', () => {
      clearTimeout(deadline);
      if (!plain(out).includes('worker created')) reject(new Error(`no "worker created" line in:\n${out}`));
      else resolve(out);
    });
  });
}

describe('log format', () => {
  it('on a terminal, log lines are readable text, not JSON', async () => {
    const out = plain(await workerOutput({ tty: true }));
    expect(out).toMatch(/INFO \(sluice\): worker created/);
    expect(out).toMatch(/tier: "low"/);
    expect(jsonLines(out, 'worker created')).toEqual([]);
  });

  it('on a pipe, every log line is one JSON object', async () => {
    const out = await workerOutput({ tty: false });
    const [line] = jsonLines(out, 'worker created');
    expect(line).toMatchObject({ level: 30, name: 'sluice', tier: 'low', msg: 'worker created' });
    expect(out).not.toMatch(/INFO \(sluice\)/);
  });

  it('SLUICE_LOG_FORMAT=json gives JSON on a terminal too', async () => {
    const out = await workerOutput({ tty: true, env: { SLUICE_LOG_FORMAT: 'json' } });
    expect(jsonLines(out, 'worker created')).toHaveLength(1);
    expect(plain(out)).not.toMatch(/INFO \(sluice\)/);
  });
});
