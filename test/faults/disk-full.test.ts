/**
 * Fault: the output disk fills up (a 1 MiB tmpfs mounted over the output directory). The
 * pipeline fails once with a clear non-retryable OutputUnwritable failure — no retry storm —
 * and leaves no partial artifacts.
 */
import { execFileSync } from 'node:child_process';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { FailureType } from '../../src/shared/constants';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, listFiles, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;

beforeAll(async () => {
  t = makeTestEnv('fault-disk');
  // A real ENOSPC: root ignores permissions, so a tiny filesystem is the honest way to fill a disk.
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', t.outputDir]);
  host = await startHost(t, ['default']);
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
  execFileSync('umount', [t.outputDir]);
});

describe('disk full', () => {
  it('fails once as non-retryable OutputUnwritable and leaves no partial artifacts', async () => {
    const source = await sampleVideo(t, { seconds: 40, width: 640, height: 360, fps: 25 });
    const { workflowId } = await client.startVideoPipeline({
      source,
      renditions: ['720p'],
      chunkSeconds: 10,
      thumbnails: 0,
      tenant: 'disk',
      package: 'mp4',
      idempotencyKey: 'full',
    });
    const err = await client.getResult(workflowId).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    let cur: unknown = (err as WorkflowFailedError).cause;
    const types: (string | null | undefined)[] = [];
    while (cur instanceof Error) {
      if (cur instanceof ApplicationFailure) types.push(cur.type);
      cur = (cur as { cause?: unknown }).cause;
    }
    expect(types).toContain(FailureType.OutputUnwritable);
    const events = (await client.temporal.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const attempts = events.map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 1);
    expect(Math.max(...attempts)).toBe(1);
    expect(listFiles(t.outputDir)).toEqual([]);
  });
});
