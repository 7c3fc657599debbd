/**
 * A 2-hour input with 10 s chunks: 720 transcode sub-jobs, above the 500 threshold, so the
 * fan-out runs through batched child workflows and no history nears 10,240 events. The media
 * is tiny (32×18 at 1 fps, generated) so the test measures orchestration, not encoding.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import type { VideoPipelineResult } from '../../src/shared/video';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;

beforeAll(async () => {
  t = makeTestEnv('long', { SLUICE_SLOTS_DEFAULT: '8' });
  host = await startHost(t, ['default']);
  client = await connectClient(t);
}, 300_000);

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
});

describe('a 2-hour input with 10 s chunks', () => {
  it('completes through batched child workflows with every history under 10,240 events', async () => {
    const source = await sampleVideo(t, { seconds: 7200, width: 32, height: 18, fps: 1, audio: false });
    const { workflowId } = await client.startVideoPipeline({
      source,
      renditions: ['240p'],
      chunkSeconds: 10,
      thumbnails: 2,
      tenant: 'long',
      package: 'mp4',
      idempotencyKey: 'two-hours',
    });
    const result = await client.getResult<VideoPipelineResult>(workflowId);

    expect(Math.abs((result.renditions[0]?.durationSec ?? 0) - 7200)).toBeLessThanOrEqual(0.5);
    expect(result.thumbnails).toHaveLength(2);

    const parent = await client.temporal.workflow.getHandle(workflowId).describe();
    const { executions } = await client.temporal.workflowService.listWorkflowExecutions({
      namespace: 'default',
      query: `ParentWorkflowId = '${workflowId}'`,
    });
    // 722 sub-jobs (720 chunks + 2 thumbnails) in batches of 250.
    expect(executions).toHaveLength(3);
    const lengths = [parent.historyLength];
    for (const e of executions) {
      const child = await client.temporal.workflow
        .getHandle(e.execution?.workflowId ?? '', e.execution?.runId ?? undefined)
        .describe();
      expect(child.status.name).toBe('COMPLETED');
      lengths.push(child.historyLength);
    }
    expect(Math.max(...lengths)).toBeLessThanOrEqual(10_240);
  }, 900_000);
});
