/**
 * Every metric named in the alert rules and the Grafana dashboard is one a live worker process
 * exposes: a real WorkerHost with its backlog exporter, scraped over HTTP after it ran a burst.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBurstActivities } from '../../src/activities/burst';
import type { SluiceClient } from '../../src/client';
import { taskQueueFor } from '../../src/shared/constants';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, startHost } from '../helpers/env';
import { DEPLOY } from './helpers';

/** Metric names (not recording rules, which contain a colon) used in PromQL text. */
function metricNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/\b(sluice_[a-z0-9_]+)\b/g)) {
    names.add((m[1] as string).replace(/_(bucket|sum|count)$/, ''));
  }
  return names;
}

describe('metrics named in rules and dashboard are exposed by a live /metrics', () => {
  const t = makeTestEnv('metrics-live', { SLUICE_SCALE_POLL_MS: '500' });
  let host: WorkerHost;
  let client: SluiceClient;

  beforeAll(async () => {
    host = await startHost(t, ['critical'], createBurstActivities());
    client = await connectClient(t);
  });
  afterAll(async () => {
    await client?.close();
    await host?.shutdown();
  });

  it('every referenced metric is served after a small burst', async () => {
    const handle = await client.temporal.workflow.start('burstWorkflow', {
      workflowId: `burst:metrics-live:${t.suffix}`,
      taskQueue: taskQueueFor('critical', t.suffix),
      args: [{ jobs: 3, ms: 10 }],
    });
    await expect(handle.result()).resolves.toMatchObject({ succeeded: 3, failed: 0 });

    const text = await (await fetch(`http://127.0.0.1:${host.port}/metrics`)).text();
    expect(text).toMatch(/sluice_activities_completed_total\{activity_type="burstSleep",tier="critical"\} 3/);
    const exposed = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));

    const referenced = metricNames(
      [
        fs.readFileSync(path.join(DEPLOY, 'prometheus/sluice-rules.yaml'), 'utf8'),
        fs.readFileSync(path.join(DEPLOY, 'components/monitoring/sluice-dashboard.json'), 'utf8'),
        fs.readFileSync(path.join(DEPLOY, 'components/hpa-external/prometheus-adapter-values.yaml'), 'utf8'),
        ...['critical', 'high', 'default', 'low'].map((tier) =>
          fs.readFileSync(path.join(DEPLOY, `components/hpa-external/hpa-${tier}.yaml`), 'utf8'),
        ),
      ].join('\n'),
    );
    expect(referenced.size).toBeGreaterThan(10);
    // Includes sluice_dlq_depth, which the dead-letter module registers on the worker's registry.
    expect(referenced).toContain('sluice_dlq_depth');
    expect([...referenced].filter((n) => !exposed.has(n))).toEqual([]);
  });

  it('the backlog exporter publishes every tier × queue type and the desired replicas', async () => {
    const deadline = Date.now() + 30_000;
    let text = '';
    while (Date.now() < deadline) {
      text = await (await fetch(`http://127.0.0.1:${host.port}/metrics`)).text();
      if (/sluice_backlog_last_poll_timestamp_seconds \d/.test(text)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const tier of ['critical', 'high', 'default', 'low']) {
      for (const type of ['workflow', 'activity']) {
        expect(text).toContain(
          `sluice_task_queue_backlog{tier="${tier}",task_queue="${taskQueueFor(tier as 'low', t.suffix)}",queue_type="${type}"}`,
        );
      }
      expect(text).toMatch(new RegExp(`sluice_desired_replicas\\{tier="${tier}"\\} \\d+`));
    }
  });
});
