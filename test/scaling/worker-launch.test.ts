/**
 * The worker launch environment the Kubernetes manifests (see test/deploy) and the benchmarks use:
 * the worker V8 flags added to NODE_OPTIONS, operator flags win, and a real `sluice worker`
 * started that way runs with the capped heap (its /metrics says so).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/devserver/dev-server';
import { WORKER_MALLOC_ARENA_MAX, WORKER_V8_FLAGS } from '../../src/shared/constants';
import { workerNodeOptions, workerProcessEnv } from '../../src/shared/node-options';
import { REPO_ROOT, makeTestEnv } from '../helpers/env';
import { readyz, until } from '../helpers/processes';

const MB = 1024 * 1024;

describe('worker launch settings', () => {
  it('adds the worker V8 flags to NODE_OPTIONS and keeps what the operator set', () => {
    expect(workerNodeOptions(undefined)).toBe('--max-semi-space-size=1 --max-old-space-size=256');
    expect(workerNodeOptions('--enable-source-maps')).toBe(
      '--enable-source-maps --max-semi-space-size=1 --max-old-space-size=256',
    );
    // The operator's heap size wins, spelled either way; the other flag is still added.
    expect(workerNodeOptions('--max-old-space-size=1024')).toBe('--max-old-space-size=1024 --max-semi-space-size=1');
    expect(workerNodeOptions('--max_old_space_size=1024')).toBe('--max_old_space_size=1024 --max-semi-space-size=1');
    expect(workerProcessEnv({ A: '1' })).toEqual({
      A: '1',
      NODE_OPTIONS: workerNodeOptions(undefined),
      MALLOC_ARENA_MAX: WORKER_MALLOC_ARENA_MAX,
    });
    expect(workerProcessEnv({ MALLOC_ARENA_MAX: '8' }).MALLOC_ARENA_MAX).toBe('8');
  });

  it('a worker launched with that environment runs with the capped heap', async () => {
    const t = makeTestEnv('worker-launch');
    const port = await freePort();
    const env = workerProcessEnv({
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...t.env,
      SLUICE_METRICS_PORT: String(port),
    });
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'sluice'), 'worker', '--tiers', 'low'], {
      env,
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await until(
        'the worker to be ready',
        () => readyz(port),
        (s) => s === 200,
        60_000,
      );
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const limit = Number(/^sluice_v8_heap_limit_bytes (\d+)/m.exec(text)?.[1]);
      const oldSpaceMB = Number(WORKER_V8_FLAGS['--max-old-space-size']);
      // Old space plus a young generation of a few MB; this test process runs with V8's default.
      expect(limit).toBeGreaterThanOrEqual(oldSpaceMB * MB);
      expect(limit).toBeLessThan((oldSpaceMB + 16) * MB);
      expect(v8.getHeapStatistics().heap_size_limit).toBeGreaterThan(limit);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 90_000);
});
