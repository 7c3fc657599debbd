/**
 * `sluice up` supervises its dev server (issue 15 item 5): the server SIGKILLed under it is
 * restarted on the same SQLite file, and `/readyz` answers 503 while it is down, 200 once back.
 */
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/devserver/dev-server';
import { REPO_ROOT, makeTestEnv } from '../helpers/env';
import { readyz, until } from '../helpers/processes';

describe('sluice up supervises its dev server', () => {
  it('restarts a killed dev server on the same SQLite file; /readyz is 503 while it is down', async () => {
    const t = makeTestEnv('up-supervise');
    const [port, uiPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    const { TEMPORAL_ADDRESS: _remote, ...embedded } = t.env;
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'sluice'), 'up', '--no-demo'], {
      cwd: t.dir,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...embedded,
        SLUICE_MEDIA_ROOT: t.dir,
        SLUICE_DEV_SERVER_PORT: String(port),
        SLUICE_DEV_UI_PORT: String(uiPort),
        SLUICE_METRICS_PORT: String(metricsPort),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await until('sluice up serving', () => stderr.includes('serving; press Ctrl-C'), Boolean, 120_000);
      await until(
        '/readyz 200',
        () => readyz(metricsPort),
        (s) => s === 200,
        30_000,
      );
      // The dev server is this `sluice up`'s child: find and kill it.
      const pid = Number(
        execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(child.pid)], { encoding: 'utf8' })
          .split('\n')
          .find((l) => l.includes('temporal'))
          ?.trim()
          .split(/\s+/)[0],
      );
      expect(pid).toBeGreaterThan(0);
      process.kill(pid, 'SIGKILL');
      await until(
        '/readyz 503 while the server is down',
        () => readyz(metricsPort),
        (s) => s === 503,
        30_000,
      );
      await until(
        '/readyz 200 after the restart',
        () => readyz(metricsPort),
        (s) => s === 200,
        120_000,
      );
      expect(stderr).toContain(`restarting it on ${path.join(t.dir, 'data', 'temporal.sqlite')}`);
      expect(stderr).toMatch(/attempt 1 of \d+/);
      expect(stderr).toContain(`the Temporal dev server is back on 127.0.0.1:${port}`);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
