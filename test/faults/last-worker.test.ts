/**
 * The local autoscaler never stops the last worker of a tier while an activity runs on it: with
 * SLUICE_SCALE_MIN=0 and an empty backlog the planner asks for 0 workers, but the one running a
 * long sub-job stays until it is done (the sub-job runs once, never cancelled), and the tier goes
 * to 0 afterwards.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { temporal } from '@temporalio/proto';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { LocalAutoscaler, type AutoscalerEvent } from '../../src/scaling/autoscaler';
import type { BurstSleepResult } from '../../src/activities/burst';
import { SluiceClient, type JobsPipelineResult } from '../../src/client';
import { REPO_ROOT, makeTestEnv } from '../helpers/env';
import { until } from '../helpers/processes';

describe('local autoscaler and running work', () => {
  it('keeps the last worker of a tier while its activity runs, then scales to 0', async () => {
    expect(fs.existsSync(path.join(REPO_ROOT, 'dist', 'workflow-bundle.js')), 'npm run build first').toBe(true);
    const t = makeTestEnv('last-worker', {
      SLUICE_SCALE_MIN: '0',
      SLUICE_SCALE_MAX: '1',
      SLUICE_SCALE_POLL_MS: '300',
      // Backlog-only planning: nothing queued means 0 workers wanted.
      SLUICE_SCALE_TASK_SECONDS: '0.001',
      SLUICE_AUTOSCALE_UP_STABILIZATION_MS: '0',
      SLUICE_AUTOSCALE_DOWN_COOLDOWN_MS: '500',
      // Shorter than the sub-job: a worker stopped mid-run would cancel it.
      SLUICE_SHUTDOWN_GRACE_MS: '1000',
    });
    const env = { ...process.env, ...t.env };
    const config = loadConfig(env, t.dir);
    const client = await SluiceClient.connect({ config });
    const events: AutoscalerEvent[] = [];
    const autoscaler = new LocalAutoscaler({
      config,
      tiers: ['low'],
      log: createLogger('warn'),
      service: client.temporal.workflowService,
      baseEnv: env,
      serveHttp: false,
      onEvent: (e) => events.push(e),
    });
    try {
      await autoscaler.start();
      const { workflowId } = await client.startJobsPipeline({
        tier: 'low',
        tenant: 'lastworker',
        idempotencyKey: 'long-one',
        jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 8_000 } }],
      });
      // Bounded: if no worker ever runs it, fail saying what the autoscaler saw and did.
      const result = await Promise.race([
        client.getResult<JobsPipelineResult>(workflowId),
        new Promise<never>((_, reject) =>
          setTimeout(
            () =>
              reject(
                new Error(
                  `the pipeline did not finish in 120 s; autoscaler events: ${JSON.stringify([
                    ...events.filter((e) => e.type !== 'plan'),
                    ...events.filter((e) => e.type === 'plan').slice(-3),
                  ]).slice(0, 4_000)}`,
                ),
              ),
            120_000,
          ).unref(),
        ),
      ]);
      // When the sub-job ended: its activity's completion in the history.
      const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
      const completed = history.events?.find(
        (e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
      );
      const doneAt = Number(completed?.eventTime?.seconds ?? 0) * 1000 + (completed?.eventTime?.nanos ?? 0) / 1e6;
      expect(doneAt).toBeGreaterThan(0);
      expect(result.succeeded).toBe(1);
      expect((result.results[0] as BurstSleepResult).attempt).toBe(1);

      const downs = events.filter((e) => e.type === 'scale-down');
      const held = events.filter((e) => e.type === 'held');
      // The planner wanted 0 while the sub-job ran, and the worker was held instead.
      expect(held.length).toBeGreaterThan(0);
      expect(
        downs.filter((e) => e.at < doneAt),
        JSON.stringify(events.filter((e) => e.type !== 'plan')),
      ).toEqual([]);
      // Once it is done the tier goes to 0. Under load a /metrics scrape can miss its 1 s timeout,
      // and the autoscaler then holds the worker (the safe side): allow a few cooldowns more.
      await until(
        'the tier to scale to 0',
        () => autoscaler.replicas('low'),
        (n) => n === 0,
        90_000,
      );
      expect(events.filter((e) => e.type === 'exited' && !e.drained)).toEqual([]);
    } finally {
      await autoscaler.stop();
      await client.close();
    }
  });
});
