/**
 * A failure after the artifacts were finalized leaves them in place, and the result says so:
 * with a store that refuses to remove the run's `.work/` (a non-retryable Forbidden from the
 * cleanup activity, as a bucket policy without delete rights answers), the video and report
 * pipelines still complete, keep every artifact byte for byte, and carry `afterFinal` naming the
 * failed step. The real activities do everything else, on the real dev server.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Bottleneck from 'bottleneck';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMediaActivities, type CleanupInput } from '../../src/activities/media';
import type { CleanupReportInput } from '../../src/activities/reports';
import type { SluiceClient } from '../../src/client';
import type { Artifact } from '../../src/shared/artifact';
import { FailureType } from '../../src/shared/constants';
import type { ReportPipelineResult } from '../../src/shared/report';
import type { VideoPipelineResult } from '../../src/shared/video';
import { RangeBridge } from '../../src/storage/range-bridge';
import type { WorkerHost } from '../../src/workers/host';
import {
  connectClient,
  duckDbSource,
  listFiles,
  makeTestEnv,
  sampleVideo,
  startHost,
  storageOf,
  type TestEnv,
} from '../helpers/env';
import { reportActivities, smallPartitions } from '../report/helpers';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: string;
const bridge = new RangeBridge();
/** Cleanup calls, as the activities received them. */
const cleanups: { activity: string; removeArtifacts: boolean }[] = [];

const refuse = (activity: string) =>
  ApplicationFailure.create({
    type: FailureType.Forbidden,
    nonRetryable: true,
    message: `${activity}: the store refused to delete .work/ (injected)`,
  });

beforeAll(async () => {
  t = makeTestEnv('after-final');
  source = await sampleVideo(t, { seconds: 3 });
  await smallPartitions(t.config.reports.partitionsDir, '2025-01', 2);
  const storage = storageOf(t);
  const media = createMediaActivities({
    binaries: t.binaries,
    mediaRoot: t.mediaRoot,
    storage,
    bridge,
    limiter: new Bottleneck({ maxConcurrent: 2 }),
  });
  const reports = reportActivities(duckDbSource(t), storage);
  host = await startHost(t, ['default'], {
    ...media,
    ...reports,
    async cleanupPipeline(input: CleanupInput) {
      cleanups.push({ activity: 'cleanupPipeline', removeArtifacts: input.removeArtifacts });
      if (!input.removeArtifacts) throw refuse('cleanupPipeline');
      return media.cleanupPipeline(input);
    },
    async cleanupReport(input: CleanupReportInput) {
      cleanups.push({ activity: 'cleanupReport', removeArtifacts: input.removeArtifacts });
      if (!input.removeArtifacts) throw refuse('cleanupReport');
      return reports.cleanupReport(input);
    },
  });
  client = await connectClient(t);
});

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
  await bridge.close();
});

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function expectOnDisk(artifacts: Artifact[]): void {
  for (const a of artifacts) {
    expect(a.path).toBeDefined();
    expect(sha256(a.path!)).toBe(a.sha256);
  }
}

describe('a failure after the artifacts are final', () => {
  it('video: the run completes, its artifacts stay, and the result names the failed cleanup', async () => {
    const { workflowId, runId } = await client.startVideoPipeline({
      source,
      renditions: ['240p'],
      package: 'mp4',
      thumbnails: 1,
      tenant: 'final',
      idempotencyKey: 'video-cleanup-refused',
    });
    const result = await client.getResult<VideoPipelineResult>(workflowId);
    expect(result.afterFinal).toMatchObject({ step: 'cleanup', artifactsKept: true });
    expect(result.afterFinal?.error).toContain('the store refused to delete .work/');
    expectOnDisk([result.manifest, ...result.renditions, ...result.thumbnails]);
    const files = listFiles(path.join(t.outputDir, workflowId, runId!));
    expect(files.filter((f) => !f.startsWith('.work'))).toEqual(['240p.mp4', 'manifest.json', 'thumb-01.jpg']);
    // The intermediates stay too (under the run's own prefix): nothing was removed at all.
    expect(files.some((f) => f.startsWith('.work/'))).toBe(true);
    expect(cleanups.filter((c) => c.activity === 'cleanupPipeline')).toEqual([
      { activity: 'cleanupPipeline', removeArtifacts: false },
    ]);
  });

  it('report: the run completes, its artifacts stay, and the result names the failed cleanup', async () => {
    const { workflowId, runId } = await client.startReportPipeline({
      from: '2025-01',
      to: '2025-02',
      format: 'csv',
      tenant: 'final',
      idempotencyKey: 'report-cleanup-refused',
    });
    const result = await client.getResult<ReportPipelineResult>(workflowId);
    expect(result.afterFinal).toMatchObject({ step: 'cleanup', artifactsKept: true });
    expect(result.afterFinal?.error).toContain('the store refused to delete .work/');
    expectOnDisk([result.csv, result.json, result.html]);
    const files = listFiles(path.join(t.outputDir, workflowId, runId!));
    expect(files.filter((f) => !f.startsWith('.work'))).toEqual(['report.csv', 'report.html', 'report.json']);
    expect(cleanups.filter((c) => c.activity === 'cleanupReport')).toEqual([
      { activity: 'cleanupReport', removeArtifacts: false },
    ]);
  });
});
