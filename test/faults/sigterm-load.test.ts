/**
 * Fault: SIGTERM a worker process under load (two pipelines of many short chunks in flight).
 * It exits 0 within its grace period and no activity fails; the pipelines finish on another worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { connectClient, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';
import { spawnWorker, until, type WorkerProcess } from '../helpers/processes';

const GRACE_MS = 10_000;
let t: TestEnv;
let client: SluiceClient;
let worker: WorkerProcess | undefined;

beforeAll(async () => {
  t = makeTestEnv('fault-term', { SLUICE_SHUTDOWN_GRACE_MS: String(GRACE_MS) });
  client = await connectClient(t);
});

afterAll(async () => {
  worker?.child.kill('SIGKILL');
  await client?.close();
});

describe('SIGTERM under load', () => {
  it('exits 0 within the grace with zero failed activities, and the work completes elsewhere', async () => {
    const source = await sampleVideo(t, { seconds: 30, width: 160, height: 90, fps: 10 });
    worker = await spawnWorker(t, ['default']);
    const ids: string[] = [];
    for (const key of ['load-a', 'load-b']) {
      ids.push(
        (
          await client.startVideoPipeline({
            source,
            renditions: ['240p', '360p'],
            chunkSeconds: 1,
            thumbnails: 3,
            tenant: 'term',
            package: 'mp4',
            idempotencyKey: key,
          })
        ).workflowId,
      );
    }
    await until(
      'work in flight',
      () => client.getProgress(ids[0] as string).catch(() => undefined),
      (p) => (p?.done ?? 0) >= 8,
      90_000,
    );

    const signalledAt = Date.now();
    worker.child.kill('SIGTERM');
    const code = await worker.exited;
    expect(code, worker.stderr()).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(GRACE_MS + 3_000);

    const host = await startHost(t, ['default']);
    try {
      for (const id of ids) await client.getResult(id);
    } finally {
      await host.shutdown();
    }
    for (const id of ids) {
      const events = (await client.temporal.workflow.getHandle(id).fetchHistory()).events ?? [];
      expect(
        events.filter((e) => e.activityTaskFailedEventAttributes || e.activityTaskTimedOutEventAttributes),
      ).toEqual([]);
      const attempts = events.map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 1);
      expect(Math.max(...attempts)).toBe(1);
    }
  });
});
