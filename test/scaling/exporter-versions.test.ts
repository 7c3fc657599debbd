/**
 * The backlog exporter with versioning on, against the real dev server: two builds of one tier's
 * Worker Deployment run side by side, one activity slot each, with runs pinned to each; the
 * activities they cannot take yet wait on their own build's queue, and /metrics shows one series
 * per build ID, as KEDA's per-version trigger sees them.
 */
import client from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBurstActivities } from '../../src/activities/burst';
import type { SluiceClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { BacklogExporter } from '../../src/scaling/exporter';
import { deploymentNameFor, taskQueueFor } from '../../src/shared/constants';
import { WorkerHost, loadWorkflowBundle } from '../../src/workers/host';
import { connectClient, makeTestEnv, type TestEnv } from '../helpers/env';

/** Sub-jobs per build; one runs (one slot), the rest wait on the build's activity queue. */
const JOBS = { a: 6, b: 3 } as const;

describe('backlog exporter per build ID', () => {
  let t: TestEnv;
  let sluice: SluiceClient;
  const hosts: WorkerHost[] = [];
  const ids: string[] = [];

  beforeAll(async () => {
    t = makeTestEnv('exp-versions', { SLUICE_SLOTS_LOW: '1' });
    sluice = await connectClient(t);
    // Builds a and b of the `low` tier, side by side (a becomes current, b registers idle).
    const bundle = await loadWorkflowBundle();
    for (const buildId of Object.keys(JOBS)) {
      hosts.push(
        await WorkerHost.start({
          config: loadConfig({ ...t.env, SLUICE_BUILD_ID: buildId }, t.dir),
          tiers: ['low'],
          log: createLogger('warn'),
          activities: createBurstActivities(),
          workflowBundle: bundle,
          serveHttp: false,
          exportBacklog: false,
        }),
      );
    }
    const deploymentName = deploymentNameFor('low', t.suffix);
    for (const [buildId, jobs] of Object.entries(JOBS)) {
      const id = `burst:exp-versions:${t.suffix}-${buildId}`;
      await sluice.temporal.workflow.start('burstWorkflow', {
        workflowId: id,
        taskQueue: taskQueueFor('low', t.suffix),
        args: [{ jobs, ms: 300_000 }],
        versioningOverride: { pinnedTo: { deploymentName, buildId } },
      });
      ids.push(id);
    }
  });
  afterAll(async () => {
    for (const id of ids)
      await sluice.temporal.workflow
        .getHandle(id)
        .terminate('test done')
        .catch(() => undefined);
    await sluice?.close();
    for (const host of hosts) await host.shutdown();
  });

  it("publishes each build's backlog as its own series", async () => {
    const registry = new client.Registry();
    const exporter = new BacklogExporter({
      service: sluice.temporal.workflowService,
      config: t.config,
      registry,
      log: createLogger('silent'),
      tiers: ['low'],
    });
    const backlogOf = (r: Awaited<ReturnType<BacklogExporter['pollOnce']>>, buildId: string) =>
      r.versions.find((v) => v.buildId === buildId && v.queueType === 'activity')?.backlog;
    // Stats are cached by the server for a few seconds: poll until both backlogs show (bounded).
    let polled: Awaited<ReturnType<BacklogExporter['pollOnce']>> | undefined;
    for (let i = 0; i < 60; i++) {
      polled = await exporter.pollOnce();
      if (backlogOf(polled, 'a') === JOBS.a - 1 && backlogOf(polled, 'b') === JOBS.b - 1) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(backlogOf(polled!, 'a')).toBe(JOBS.a - 1);
    expect(backlogOf(polled!, 'b')).toBe(JOBS.b - 1);

    const text = await registry.metrics();
    const labels = (buildId: string) =>
      `tier="low",task_queue="${taskQueueFor('low', t.suffix)}",queue_type="activity",deployment="${deploymentNameFor('low', t.suffix)}",build_id="${buildId}"`;
    expect(text).toContain(`sluice_task_queue_version_backlog{${labels('a')}} ${JOBS.a - 1}`);
    expect(text).toContain(`sluice_task_queue_version_backlog{${labels('b')}} ${JOBS.b - 1}`);
    expect(text).toMatch(
      new RegExp(`sluice_task_queue_version_backlog_age_seconds\\{${labels('b').replace(/[.]/g, '\\.')}\\} [0-9.e-]+`),
    );
    // The tier's total backlog is still published once, without a build label.
    expect(text).toMatch(
      new RegExp(
        `sluice_task_queue_backlog\\{tier="low",task_queue="${taskQueueFor('low', t.suffix)}",queue_type="workflow"\\} \\d+`,
      ),
    );
    await exporter.stop();
  });

  it('publishes no per-build series with versioning off', async () => {
    const registry = new client.Registry();
    const exporter = new BacklogExporter({
      service: sluice.temporal.workflowService,
      config: loadConfig({ ...t.env, SLUICE_VERSIONING: '0' }, t.dir),
      registry,
      log: createLogger('silent'),
      tiers: ['low'],
    });
    const polled = await exporter.pollOnce();
    expect(polled.versions).toEqual([]);
    expect(await registry.metrics()).not.toMatch(/sluice_task_queue_version_backlog\{/);
    await exporter.stop();
  });
});
