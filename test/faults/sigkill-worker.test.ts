/**
 * Fault: SIGKILL a worker process in the middle of a chunk. Nothing is drained; the server times
 * the attempt out after its heartbeat timeout, another worker resumes the chunk from the segments
 * its heartbeats recorded, and the output is byte-identical to an uninterrupted run.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TranscodeChunkResult } from '../../src/activities/media';
import type { SluiceClient } from '../../src/client';
import type { VideoPipelineResult } from '../../src/shared/video';
import { connectClient, listFiles, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';
import { spawnWorker, until, type WorkerProcess } from '../helpers/processes';

let t: TestEnv;
let client: SluiceClient;
let source: string;
let victim: WorkerProcess | undefined;
const request = { renditions: ['480p'], chunkSeconds: 40, thumbnails: 0, tenant: 'kill' };

beforeAll(async () => {
  t = makeTestEnv('fault-kill');
  source = await sampleVideo(t, { seconds: 40, width: 640, height: 360, fps: 25 });
  client = await connectClient(t);
});

afterAll(async () => {
  victim?.child.kill('SIGKILL');
  await client?.close();
});

describe('SIGKILL in the middle of a chunk', () => {
  it('resumes on another worker after the heartbeat timeout with identical output', async () => {
    const cleanHost = await startHost(t, ['default']);
    let clean: VideoPipelineResult;
    try {
      clean = await client.getResult<VideoPipelineResult>(
        (await client.startVideoPipeline({ source, ...request, idempotencyKey: 'clean' })).workflowId,
      );
    } finally {
      await cleanHost.shutdown();
    }

    victim = await spawnWorker(t, ['default']);
    const { workflowId } = await client.startVideoPipeline({ source, ...request, idempotencyKey: 'killed' });
    const chunkDir = path.join(t.outputDir, workflowId, '.work', '480p', 'chunk-00000');
    await until(
      'the first segment',
      () => listFiles(chunkDir),
      (f) => f.includes('seg-00000.ts'),
      90_000,
    );
    victim.child.kill('SIGKILL');
    expect(await victim.exited).toBeNull();

    const rescuer = await startHost(t, ['default']);
    let resumed: VideoPipelineResult;
    try {
      resumed = await client.getResult<VideoPipelineResult>(workflowId);
    } finally {
      await rescuer.shutdown();
    }
    const events = (await client.temporal.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    expect(events.some((e) => e.activityTaskTimedOutEventAttributes)).toBe(false); // retried attempts time out inside the server, not as events
    const results = events
      .map((e) => e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data)
      .filter((d): d is Uint8Array => d instanceof Uint8Array)
      .map((d) => JSON.parse(Buffer.from(d).toString()) as Partial<TranscodeChunkResult>)
      .filter((r) => r.chunkIndex !== undefined);
    expect(results[0]?.resumedSegments).toBeGreaterThanOrEqual(1);
    const attempts = events.map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 0);
    expect(Math.max(...attempts)).toBeGreaterThanOrEqual(2);
    expect(resumed.renditions[0]?.sha256).toBe(clean.renditions[0]?.sha256);
  }, 300_000);
});
