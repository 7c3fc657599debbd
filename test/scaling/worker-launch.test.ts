/**
 * The worker launch environment the Kubernetes manifests (see test/deploy) and the benchmarks use:
 * the worker V8 flags added to NODE_OPTIONS, operator flags win, and a real `sluice worker`
 * started that way runs with the capped heap (its /metrics says so).
 */
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { WORKER_MALLOC_ARENA_MAX, WORKER_V8_FLAGS } from '../../src/shared/constants';
import { workerNodeOptions, workerProcessEnv } from '../../src/shared/node-options';
import { makeTestEnv } from '../helpers/env';
import { spawnWorker } from '../helpers/processes';

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
    // spawnWorker's own environment plus the worker launch settings (NODE_OPTIONS, MALLOC_ARENA_MAX).
    const worker = await spawnWorker(makeTestEnv('worker-launch'), ['low'], workerProcessEnv({}));
    try {
      const text = await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text();
      const limit = Number(/^sluice_v8_heap_limit_bytes (\d+)/m.exec(text)?.[1]);
      const oldSpaceMB = Number(WORKER_V8_FLAGS['--max-old-space-size']);
      // Old space plus a young generation of a few MB; this test process runs with V8's default.
      expect(limit).toBeGreaterThanOrEqual(oldSpaceMB * MB);
      expect(limit).toBeLessThan((oldSpaceMB + 16) * MB);
      expect(v8.getHeapStatistics().heap_size_limit).toBeGreaterThan(limit);
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
  }, 90_000);
});
