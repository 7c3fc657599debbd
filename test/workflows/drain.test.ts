/**
 * Graceful drain, proven: SIGTERM a real worker process (`sluice worker`) in the middle of a
 * video chunk. Readiness turns false, the process exits 0 within its grace, the chunk stops at
 * a segment boundary and resumes on another worker from its verified segments, and the output
 * is identical to an uninterrupted run.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../../src/activities/media/ffmpeg';
import type { TranscodeChunkResult } from '../../src/activities/media';
import type { SluiceClient } from '../../src/client';
import type { VideoPipelineResult } from '../../src/shared/video';
import { connectClient, listFiles, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';
import { readyz, spawnWorker, until } from '../helpers/processes';

let t: TestEnv;
let client: SluiceClient;
let source: string;
let worker: ChildProcess | undefined;

const GRACE_MS = 1500;
const request = { renditions: ['480p'], chunkSeconds: 40, thumbnails: 0, tenant: 'drain', package: 'mp4' };

beforeAll(async () => {
  t = makeTestEnv('drain', { SLUICE_SHUTDOWN_GRACE_MS: String(GRACE_MS) });
  source = await sampleVideo(t, { seconds: 40, width: 640, height: 360, fps: 25 });
  client = await connectClient(t);
});

afterAll(async () => {
  worker?.kill('SIGKILL');
  await client?.close();
});

async function videoFrameMd5(file: string): Promise<string> {
  const { stdout } = await runProcess(t.binaries.ffmpeg, [
    '-v',
    'error',
    '-i',
    file,
    '-map',
    '0:v:0',
    '-f',
    'md5',
    '-',
  ]);
  return stdout.trim();
}

describe('SIGTERM in the middle of a chunk', () => {
  let clean: VideoPipelineResult;

  it('an uninterrupted run gives the reference output', async () => {
    const host = await startHost(t, ['default']);
    try {
      const { workflowId } = await client.startVideoPipeline({ source, ...request, idempotencyKey: 'clean' });
      clean = await client.getResult<VideoPipelineResult>(workflowId);
    } finally {
      await host.shutdown();
    }
    expect(clean.renditions).toHaveLength(1);
  }, 300_000);

  it('drains: readiness false, exit 0 within the grace, and the chunk resumes elsewhere with identical output', async () => {
    const proc = await spawnWorker(t, ['default']);
    worker = proc.child;
    const { port, exited } = proc;

    const { workflowId, runId } = await client.startVideoPipeline({ source, ...request, idempotencyKey: 'drained' });
    const chunkDir = path.join(t.outputDir, workflowId, runId!, '.work', '480p', 'chunk-00000');
    // Wait for the first finished segment, so the kill lands in the middle of the chunk.
    await until(
      'the first segment',
      () => listFiles(chunkDir),
      (files) => files.includes('seg-00000.ts'),
      90_000,
    );
    expect(listFiles(chunkDir)).not.toContain('done.json');

    const signalledAt = Date.now();
    worker.kill('SIGTERM');
    expect(
      await until(
        'readiness to drop',
        () => readyz(port),
        (s) => s !== 200,
        5_000,
      ),
    ).toBe(503);
    const code = await exited;
    const drainMs = Date.now() - signalledAt;
    expect(code, proc.stderr()).toBe(0);
    expect(drainMs).toBeLessThan(GRACE_MS + 5_000);

    // Another worker picks the chunk up and finishes it from the verified segments.
    const host = await startHost(t, ['default']);
    let drained: VideoPipelineResult;
    try {
      drained = await client.getResult<VideoPipelineResult>(workflowId);
    } finally {
      await host.shutdown();
    }

    const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
    const events = history.events ?? [];
    const transcodeAttempts = events
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 0);
    expect(Math.max(...transcodeAttempts)).toBeGreaterThanOrEqual(2);
    const results = events
      .map((e) => e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data)
      .filter((d): d is Uint8Array => d instanceof Uint8Array)
      .map((d) => JSON.parse(Buffer.from(d).toString()) as Partial<TranscodeChunkResult>)
      .filter((r) => r.chunkIndex !== undefined);
    expect(results).toHaveLength(1);
    expect(results[0]?.resumedSegments).toBeGreaterThanOrEqual(1);
    expect(results[0]?.segments).toBe(4);

    const [a, b] = [clean.renditions[0], drained.renditions[0]];
    expect(b?.durationSec).toBeCloseTo(a?.durationSec ?? 0, 2);
    expect(await videoFrameMd5(b?.path ?? '')).toBe(await videoFrameMd5(a?.path ?? ''));
    expect(b?.sha256).toBe(a?.sha256);
    expect(fs.existsSync(path.join(t.outputDir, workflowId, runId!, '.work'))).toBe(false);
  }, 300_000);
});
