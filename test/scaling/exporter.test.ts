/**
 * Backlog exporter and `sluice capacity` against the real dev server with a real backlog:
 * workflows started on a tier queue that no worker polls.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import client from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { createLogger } from '../../src/logger';
import type { CapacityReport } from '../../src/cli/commands/capacity';
import { BacklogExporter } from '../../src/scaling/exporter';
import { taskQueueFor } from '../../src/shared/constants';
import { REPO_ROOT, connectClient, makeTestEnv } from '../helpers/env';

const run = promisify(execFile);
const JOBS = 5;

describe('backlog exporter and capacity planner on a real backlog', () => {
  // Drain target 1 s and 2 s tasks: 5 waiting tasks on `low` (2 slots) need 5 × 2 ÷ (1 × 2) = 5 replicas, +25%.
  const t = makeTestEnv('exporter', {
    SLUICE_SCALE_TARGET_SECONDS: '1',
    SLUICE_SCALE_TASK_SECONDS: '2',
    SLUICE_SCALE_MAX: '50',
    SLUICE_SLOTS_LOW: '2',
  });
  let sluice: SluiceClient;

  beforeAll(async () => {
    sluice = await connectClient(t);
    for (let i = 0; i < JOBS; i++) {
      await sluice.temporal.workflow.start('burstWorkflow', {
        workflowId: `burst:exporter:${t.suffix}-${i}`,
        taskQueue: taskQueueFor('low', t.suffix),
        args: [{ jobs: 1, ms: 1 }],
      });
    }
  });
  afterAll(async () => {
    for (let i = 0; i < JOBS; i++) {
      await sluice.temporal.workflow
        .getHandle(`burst:exporter:${t.suffix}-${i}`)
        .terminate('test done')
        .catch(() => undefined);
    }
    await sluice?.close();
  });

  it('publishes the backlog of every tier × queue type and the desired replicas', async () => {
    const registry = new client.Registry();
    const exporter = new BacklogExporter({
      service: sluice.temporal.workflowService,
      config: t.config,
      registry,
      log: createLogger('silent'),
    });
    // Stats are cached by the server for a few seconds: poll until the backlog shows (bounded).
    let low = undefined as Awaited<ReturnType<BacklogExporter['pollOnce']>> | undefined;
    for (let i = 0; i < 60; i++) {
      low = await exporter.pollOnce();
      if (low.stats.some((s) => s.tier === 'low' && s.queueType === 'workflow' && s.backlog === JOBS)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const stats = low?.stats ?? [];
    expect(stats).toHaveLength(8);
    expect(stats.find((s) => s.tier === 'low' && s.queueType === 'workflow')?.backlog).toBe(JOBS);
    expect(stats.find((s) => s.tier === 'critical' && s.queueType === 'activity')?.backlog).toBe(0);
    const plan = low?.plans.find((p) => p.tier === 'low');
    expect(plan?.terms.drainReplicas).toBeCloseTo(5);
    expect(plan?.desiredReplicas).toBeGreaterThanOrEqual(7);
    expect(low?.plans.find((p) => p.tier === 'critical')?.desiredReplicas).toBe(1);

    const text = await registry.metrics();
    const queue = taskQueueFor('low', t.suffix);
    expect(text).toContain(`sluice_task_queue_backlog{tier="low",task_queue="${queue}",queue_type="workflow"} ${JOBS}`);
    expect(text).toMatch(
      new RegExp(
        `sluice_task_queue_backlog_age_seconds\\{tier="low",task_queue="${queue}",queue_type="workflow"\\} [0-9.]+`,
      ),
    );
    expect(text).toContain(`sluice_desired_replicas{tier="low"} ${plan?.desiredReplicas}`);
    await exporter.stop();
  });

  it('`sluice capacity --json` prints one object with a plan and an explanation per tier', async () => {
    const bin = path.join(REPO_ROOT, 'bin', 'sluice');
    expect(fs.existsSync(path.join(REPO_ROOT, 'dist', 'cli', 'main.js')), 'npm run build first').toBe(true);
    const { stdout, stderr } = await run(process.execPath, [bin, 'capacity', '--json'], {
      env: { ...process.env, ...t.env },
      timeout: 60_000,
    });
    expect(stdout.trim().split('\n')).toHaveLength(1);
    const report = JSON.parse(stdout) as CapacityReport;
    expect(report.tiers.map((p) => p.tier)).toEqual(['critical', 'high', 'default', 'low']);
    const low = report.tiers.find((p) => p.tier === 'low');
    expect(low?.inputs.backlog).toBe(JOBS);
    expect(low?.desiredReplicas).toBeGreaterThanOrEqual(7);
    expect(low?.explanation.join('\n')).toMatch(/drain: backlog 5 × 2 s ÷ \(1 s target × 2 slots\) = 5 replicas/);
    expect(stderr).not.toMatch(/error/i);

    const human = await run(process.execPath, [bin, 'capacity'], {
      env: { ...process.env, ...t.env },
      timeout: 60_000,
    });
    expect(human.stdout).toBe('');
    expect(human.stderr).toMatch(/low\s+desired \d+ {2}\(backlog 5/);
  });
});
