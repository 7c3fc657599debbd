/**
 * The local autoscaler with real worker processes (`node bin/sluice worker`) on the real dev
 * server: a burst scales it up, the drain scales it back down by SIGTERM without failing or
 * losing an activity, and a worker recycled after N tasks is replaced.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { defaultSpawnWorker } from '../../src/scaling/autoscaler';
import { runBurst } from '../../src/demo/burst';
import { WORKER_MALLOC_ARENA_MAX, WORKER_V8_FLAGS } from '../../src/shared/constants';
import { REPO_ROOT, makeTestEnv } from '../helpers/env';

describe('local autoscaler', () => {
  it('scales up on a burst, drains and scales down, recycles after N tasks, and loses nothing', async () => {
    expect(fs.existsSync(path.join(REPO_ROOT, 'dist', 'workflow-bundle.js')), 'npm run build first').toBe(true);
    const t = makeTestEnv('autoscaler', {
      SLUICE_SLOTS_HIGH: '2',
      SLUICE_SCALE_MIN: '1',
      SLUICE_SCALE_MAX: '2',
      SLUICE_SCALE_POLL_MS: '1000',
      SLUICE_SCALE_TARGET_SECONDS: '2',
      SLUICE_AUTOSCALE_UP_STABILIZATION_MS: '500',
      SLUICE_AUTOSCALE_DOWN_COOLDOWN_MS: '3000',
      SLUICE_WORKER_MAX_TASKS: '60',
      SLUICE_SHUTDOWN_GRACE_MS: '10000',
    });
    const env = { ...process.env, ...t.env };
    const config = loadConfig(env, t.dir);

    const launched: NodeJS.ProcessEnv[] = [];
    const report = await runBurst({
      config,
      env,
      spawnWorker: (tier, workerEnv) => {
        launched.push(workerEnv);
        return defaultSpawnWorker(tier, workerEnv);
      },
      log: createLogger('warn'),
      tier: 'high',
      jobs: 150,
      ms: 300,
      scaleDownTimeoutMs: 90_000,
      watchMs: 4_000,
    });

    // Nothing failed, nothing was retried: every sub-job ran once.
    expect(report.result).toMatchObject({ succeeded: 150, failed: 0, retriedAttempts: 0 });
    expect(report.failedActivities).toBe(0);
    // It scaled up to the maximum, and the work was shared.
    expect(report.maxReplicas).toBe(2);
    expect(report.firstScaleUpMs).toBeDefined();
    expect(Object.keys(report.result.byProcess).length).toBeGreaterThanOrEqual(2);
    // After the drain it scaled down to the minimum and never up again.
    expect(report.changesAfterDrain.filter((c) => c.type === 'scale-up')).toEqual([]);
    expect(report.changesAfterDrain.at(-1)).toMatchObject({ type: 'scale-down', to: 1 });
    // Recycling: a worker left after 60 tasks with exit 0 and was replaced.
    const recycled = report.events.filter((e) => e.type === 'replaced' && e.reason === 'recycled');
    expect(recycled.length).toBeGreaterThanOrEqual(1);
    // Every worker ran with the worker V8 flags and malloc arenas, as in the Kubernetes manifests.
    expect(launched.length).toBeGreaterThanOrEqual(3);
    for (const e of launched) {
      for (const [flag, value] of Object.entries(WORKER_V8_FLAGS)) expect(e.NODE_OPTIONS).toContain(`${flag}=${value}`);
      expect(e.MALLOC_ARENA_MAX).toBe(WORKER_MALLOC_ARENA_MAX);
    }
    // Every worker that left (scaled down, recycled, or stopped at the end) exited 0 after draining.
    expect(report.exits.length).toBeGreaterThanOrEqual(3);
    expect(report.exits.every((e) => e.code === 0)).toBe(true);
  }, 240_000);
});
