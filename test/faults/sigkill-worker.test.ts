/**
 * Fault: SIGKILL a worker process in the middle of a chunk. Nothing is drained; the server times
 * the attempt out after its heartbeat timeout, another worker resumes the chunk from the segments
 * its heartbeats recorded, and the output is byte-identical to an uninterrupted run.
 *
 * Then the completion webhook: the worker that resumed the chunk is SIGKILLed the moment the
 * receiver has taken the delivery (the receiver's effect is done, the acknowledgement is lost).
 * The next worker sends it again with the same Idempotency-Key, so the receiver, deduplicating
 * by that key as the contract asks, applies exactly one delivery.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TranscodeChunkResult, TranscodeHeartbeat } from '../../src/activities/media';
import { signWebhook } from '../../src/activities/notify';
import type { SluiceClient } from '../../src/client';
import type { VideoPipelineResult } from '../../src/shared/video';
import { connectClient, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';
import { spawnWorker, until, type WorkerProcess } from '../helpers/processes';
import { startReceiver, type Receiver } from '../flow/helpers';

let t: TestEnv;
let client: SluiceClient;
let source: string;
let victim: WorkerProcess | undefined;
let second: WorkerProcess | undefined;
let receiver: Receiver;
const request = { renditions: ['480p'], chunkSeconds: 40, thumbnails: 0, tenant: 'kill', package: 'mp4' };
const SECRET = 'fault-kill-webhook-secret';

beforeAll(async () => {
  receiver = await startReceiver();
  t = makeTestEnv('fault-kill', { SLUICE_WEBHOOK_SECRET: SECRET, SLUICE_WEBHOOK_ALLOW: '127.0.0.1' });
  source = await sampleVideo(t, { seconds: 40, width: 640, height: 360, fps: 25 });
  client = await connectClient(t);
});

afterAll(async () => {
  victim?.child.kill('SIGKILL');
  second?.child.kill('SIGKILL');
  await client?.close();
  await receiver?.close();
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

    // Webhooks go out on the critical tier: every worker here serves it too.
    victim = await spawnWorker(t, ['default', 'critical']);
    const { workflowId, runId } = await client.startVideoPipeline({
      source,
      ...request,
      idempotencyKey: 'killed',
      webhook: { url: receiver.url },
    });
    const chunkDir = path.join(t.outputDir, workflowId, runId!, '.work', '480p', 'chunk-00000');
    // Killed once the first segment is checkpointed (progress.json, written right after each
    // segment and before its heartbeat), not the moment its file appears: a kill between the two
    // leaves nothing to resume from.
    const checkpointed = () =>
      fsp.readFile(path.join(chunkDir, 'progress.json'), 'utf8').then(
        (text) => (JSON.parse(text) as TranscodeHeartbeat).segments.length,
        () => 0,
      );
    await until('the first segment checkpointed', checkpointed, (n) => n >= 1, 90_000);
    victim.child.kill('SIGKILL');
    expect(await victim.exited).toBeNull();

    // The receiver applies each Idempotency-Key once; the first delivery also kills the worker
    // that sent it before the answer can reach it.
    const applied = new Map<string, string>();
    const worker2 = await spawnWorker(t, ['default', 'critical']);
    second = worker2;
    receiver.respond = (req, body) => {
      const key = String(req.headers['idempotency-key']);
      if (!applied.has(key)) applied.set(key, body);
      if (worker2.child.exitCode === null && worker2.child.signalCode === null) worker2.child.kill('SIGKILL');
      return { status: 200 };
    };
    await until(
      'the first webhook delivery',
      () => receiver.requests.length,
      (n) => n >= 1,
      240_000,
    );
    expect(await worker2.exited).toBeNull();

    const rescuer = await startHost(t, ['default', 'critical']);
    let resumed: VideoPipelineResult;
    try {
      resumed = await client.getResult<VideoPipelineResult>(workflowId);
    } finally {
      await rescuer.shutdown();
    }

    // Sent twice (the first answer was lost with its worker), applied once.
    const deliveries = receiver.requests;
    expect(deliveries.length).toBeGreaterThanOrEqual(2);
    const keys = new Set(deliveries.map((r) => r.headers['idempotency-key']));
    expect(keys.size).toBe(1);
    expect(applied.size).toBe(1);
    expect(resumed.webhook).toMatchObject({ delivered: true, status: 200 });
    expect(resumed.webhook?.attempt).toBeGreaterThanOrEqual(2);
    expect(keys.has(resumed.webhook?.idempotencyKey)).toBe(true);
    for (const r of deliveries) {
      const ts = String(r.headers['x-sluice-timestamp']);
      expect(r.headers['x-sluice-signature']).toBe(signWebhook(SECRET, ts, r.body));
      expect(JSON.parse(r.body)).toMatchObject({ event: 'pipeline.completed', workflowId, tenant: 'kill' });
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
