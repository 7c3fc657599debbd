/**
 * Foreign clients against the real dev server: a Go program on go.temporal.io/sdk
 * (test/foreign-client) and the `temporal` CLI start pipelines with minimal JSON input and no
 * search attributes, priority or memo, and get the same behaviour as Sluice's own client.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { findTemporalCli } from '../../src/devserver/cli-binary';
import { taskQueueFor } from '../../src/shared/constants';
import type { WorkerHost } from '../../src/workers/host';
import { REPO_ROOT, connectClient, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';
import { searchAttributes, smallPartitions } from '../report/helpers';

const run = promisify(execFile);
const GO_SOURCE = path.join(REPO_ROOT, 'test', 'foreign-client');
const GO_BINARY = path.join(REPO_ROOT, '.data', 'foreign-client', 'foreign-client');

/** Builds the Go client with the machine's Go when it is missing or older than its sources. */
async function buildGoClient(): Promise<string> {
  const newest = Math.max(...['main.go', 'go.mod', 'go.sum'].map((f) => fs.statSync(path.join(GO_SOURCE, f)).mtimeMs));
  if (fs.existsSync(GO_BINARY) && fs.statSync(GO_BINARY).mtimeMs >= newest) return GO_BINARY;
  const started = Date.now();
  await run('go', ['build', '-o', GO_BINARY, '.'], { cwd: GO_SOURCE, timeout: 600_000 });
  // The first build compiles the SDK and gRPC (minutes on two cores); later ones hit Go's cache.
  console.log(`built ${path.relative(REPO_ROOT, GO_BINARY)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return GO_BINARY;
}

interface GoSummary {
  video: { workflowId: string; renditions: { name: string }[]; thumbnails: unknown[] };
  report: { workflowId: string; used: string[]; partial: boolean };
  progress: Record<string, { stage: string; done: number; total: number }>;
  visibility: Record<string, string[]>;
  priorities: Record<string, string[]>;
  badInputs: Record<string, string>;
  failures: string[] | null;
}

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: string;
const tenant = `go${Date.now().toString(36)}`;

beforeAll(async () => {
  t = makeTestEnv('foreign');
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 2);
  // 720p: the default ladder (360p, 720p) fits it, so the default package (hls) keeps both.
  source = await sampleVideo(t, { seconds: 4, width: 1280, height: 720 });
  host = await startHost(t, ['high', 'default']);
  client = await connectClient(t);
}, 120_000);

afterAll(async () => {
  await client?.close();
  await host?.shutdown();
});

describe('a Go client (go.temporal.io/sdk) with minimal input', () => {
  let summary: GoSummary;

  beforeAll(async () => {
    const binary = await buildGoClient();
    const args = ['-address', inject('temporalAddress'), '-suffix', t.suffix, '-tenant', tenant, '-source', source];
    const { stdout } = await run(binary, [...args, '-from', '2024-01', '-to', '2024-02'], { timeout: 300_000 }).catch(
      (err: { stdout?: string; stderr?: string }) => {
        throw new Error(`foreign client failed:\n${err.stderr ?? ''}\n${err.stdout ?? ''}`);
      },
    );
    summary = JSON.parse(stdout) as GoSummary;
  }, 900_000);

  it('completes a video and a report whose inputs named no defaults', () => {
    expect(summary.failures).toBeNull();
    expect(summary.video.workflowId).toBe(`video:${tenant}:go-video`);
    expect(summary.video.renditions.map((r) => r.name)).toEqual(['360p', '720p']);
    expect(summary.video.thumbnails).toHaveLength(3);
    expect(summary.report).toMatchObject({ used: ['2024-01', '2024-02'], partial: false });
  });

  it('answers the progress query', () => {
    expect(summary.progress.video?.stage).toBe('done');
    expect(summary.progress.report?.stage).toBe('done');
    expect(summary.progress.video?.done).toBe(summary.progress.video?.total);
  });

  it('shows up in the README visibility queries: the pipelines set their own search attributes', async () => {
    expect(summary.visibility.video).toContain(`video:${tenant}:go-video`);
    expect(summary.visibility.report).toContain(`report:${tenant}:go-report`);
    expect(summary.visibility.high).toEqual([`video:${tenant}:go-video`]);
    expect(await searchAttributes(client, `video:${tenant}:go-video`)).toMatchObject({
      PipelineKind: 'video',
      Tier: 'high',
      Tenant: tenant,
    });
  });

  it('runs every activity with the tier priority key and the tenant as fairness key', () => {
    const video = summary.priorities.video ?? [];
    const report = summary.priorities.report ?? [];
    expect(video.length).toBeGreaterThan(5);
    expect(report.length).toBeGreaterThan(2);
    for (const line of video) expect(line).toMatch(new RegExp(` key=2 fairness=${tenant}$`));
    for (const line of report) expect(line).toMatch(new RegExp(` key=3 fairness=${tenant}$`));
  });

  it('gets non-retryable InvalidInput naming the field for a bad rendition, a bad policy and a tier off its queue', () => {
    expect(summary.badInputs.renditions).toContain('renditions.0: unknown rendition');
    expect(summary.badInputs.policy).toContain('policy: unknown policy "sometimes"');
    expect(summary.badInputs.tier).toContain(
      `tier: tier is low but the run was started on task queue ${taskQueueFor('default', t.suffix)}: start it on ${taskQueueFor('low', t.suffix)}`,
    );
  });
});

describe('the temporal CLI as a client', () => {
  it('`temporal workflow start` with minimal input completes and shows up in the same queries', async () => {
    const cli = findTemporalCli(process.env.TEMPORAL_CLI_PATH);
    expect(cli, 'the temporal CLI (npm run temporal:ensure)').toBeDefined();
    const address = ['--address', inject('temporalAddress')];
    const workflowId = `video:${tenant}:cli-video`;
    await run(cli!.path, [
      'workflow',
      'start',
      ...address,
      '--type',
      'videoPipelineWorkflow',
      '--task-queue',
      taskQueueFor('default', t.suffix),
      '--workflow-id',
      workflowId,
      '--input',
      JSON.stringify({ source, tenant, idempotencyKey: 'cli-video' }),
    ]);
    const { stdout: result } = await run(
      cli!.path,
      ['workflow', 'result', ...address, '--workflow-id', workflowId, '-o', 'json'],
      {
        timeout: 300_000,
      },
    );
    expect(result).toContain('"manifest"');
    let listed: string[] = [];
    for (let i = 0; i < 40 && !listed.includes(workflowId); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 500));
      const { stdout } = await run(cli!.path, [
        'workflow',
        'list',
        ...address,
        '--query',
        `PipelineKind="video" AND Tenant="${tenant}"`,
        '-o',
        'json',
      ]);
      listed = (JSON.parse(stdout || '[]') as { execution: { workflowId: string } }[]).map(
        (e) => e.execution.workflowId,
      );
    }
    expect(listed).toContain(workflowId);
    expect(await searchAttributes(client, workflowId)).toMatchObject({ Tier: 'default', Tenant: tenant });
  }, 400_000);

  it('a start under a workflow ID that does not match its input fails with InvalidInput naming the ID to use', async () => {
    const cli = findTemporalCli(process.env.TEMPORAL_CLI_PATH)!;
    const address = ['--address', inject('temporalAddress')];
    const workflowId = `upload-${tenant}`;
    await run(cli.path, [
      'workflow',
      'start',
      ...address,
      '--type',
      'videoPipelineWorkflow',
      '--task-queue',
      taskQueueFor('default', t.suffix),
      '--workflow-id',
      workflowId,
      '--input',
      JSON.stringify({ source, tenant, idempotencyKey: 'k1' }),
    ]);
    const err = await client.getResult(workflowId).catch((e: unknown) => e);
    const chain: string[] = [];
    for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) chain.push(e.message);
    expect(chain.join(' | ')).toContain(`workflowId: workflow ID ${workflowId} does not match its input`);
    expect(chain.join(' | ')).toContain(`must be started as video:${tenant}:k1`);
  }, 120_000);
});
