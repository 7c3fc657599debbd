/**
 * The `bin/sluice` contract: exit codes (0 ok, 1 pipeline failed, 2 invalid input, nothing
 * started), `--json` printing exactly one JSON object on stdout, and status/result/cancel.
 * Runs the compiled CLI (`npm test` builds first) against the run's real dev server.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { PACKED_ACTIVITY, taskQueueFor } from '../../src/shared/constants';
import type { WorkerHost } from '../../src/workers/host';
import { oneJson, runSluice, type CliRun } from '../helpers/cli';
import { REPO_ROOT, connectClient, listFiles, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';

describe('sluice video: invalid input exits 2, names the field, starts nothing', () => {
  let bad: TestEnv;
  let client: SluiceClient;

  beforeAll(async () => {
    bad = makeTestEnv('cli-bad');
    await sampleVideo(bad, { seconds: 2, name: 'ok.mp4' });
    fs.mkdirSync(path.join(bad.mediaRoot, 'folder'));
    fs.writeFileSync(path.join(bad.dir, 'outside.mp4'), 'x');
    fs.symlinkSync(path.join(bad.dir, 'outside.mp4'), path.join(bad.mediaRoot, 'link-out.mp4'));
    client = await connectClient(bad);
  });

  afterAll(async () => {
    await client?.close();
  });

  const cases: { name: string; args: string[]; field: RegExp }[] = [
    { name: 'a missing file', args: ['missing.mp4'], field: /source: missing\.mp4 is not a file in the media root/ },
    { name: 'a directory', args: ['folder'], field: /source: folder is a directory/ },
    {
      name: 'a .. path outside the media root',
      args: ['../outside.mp4'],
      field: /source: .* is not a file in the media root/,
    },
    {
      name: 'an absolute path outside the media root',
      args: ['/etc/hostname'],
      field: /source: .* is not a file in the media root/,
    },
    {
      name: 'a symlink leading outside the media root',
      args: ['link-out.mp4'],
      field: /source: .* is not a file in the media root/,
    },
    {
      name: 'an unknown rendition',
      args: ['ok.mp4', '--renditions', '360p,999p'],
      field: /renditions\.1: unknown rendition/,
    },
    {
      name: 'chunk seconds of zero',
      args: ['ok.mp4', '--chunk-seconds', '0'],
      field: /chunkSeconds: must be at least 1/,
    },
    {
      name: 'negative chunk seconds',
      args: ['ok.mp4', '--chunk-seconds', '-5'],
      field: /chunkSeconds: must be at least 1/,
    },
    {
      name: 'absurd chunk seconds',
      args: ['ok.mp4', '--chunk-seconds', '100000'],
      field: /chunkSeconds: must be at most 3600/,
    },
    {
      name: 'non-numeric chunk seconds',
      args: ['ok.mp4', '--chunk-seconds', 'abc'],
      field: /chunk-seconds must be a number/,
    },
    {
      name: 'thousands of thumbnails',
      args: ['ok.mp4', '--thumbnails', '5000'],
      field: /thumbnails: must be at most 100/,
    },
    {
      name: 'fractional thumbnails',
      args: ['ok.mp4', '--thumbnails', '2.5'],
      field: /thumbnails: must be a whole number/,
    },
    { name: 'an empty tenant', args: ['ok.mp4', '--tenant', ''], field: /tenant: must be 1-63 characters/ },
    {
      name: 'a tenant with unsafe characters',
      args: ['ok.mp4', '--tenant', '../acme'],
      field: /tenant: must be 1-63 characters/,
    },
    {
      name: 'a tenant with a control character',
      args: ['ok.mp4', '--tenant', 'ac\u0007me'],
      field: /tenant: must be 1-63 characters/,
    },
    {
      name: 'an idempotency key with a slash',
      args: ['ok.mp4', '--id', 'a/b'],
      field: /idempotencyKey: must be 1-128 characters/,
    },
    { name: 'an unknown priority', args: ['ok.mp4', '--priority', 'urgent'], field: /priority/ },
  ];

  it.each(cases)('rejects $name', async ({ args, field }) => {
    const run = await runSluice(bad, ['video', ...args, '--json']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(field);
    const out = oneJson(run);
    expect(String(out.error)).toMatch(/invalid/);
  });

  it('started nothing and wrote nothing for any of them', async () => {
    const { executions } = await client.temporal.workflowService.listWorkflowExecutions({
      namespace: 'default',
      query: `TaskQueue = 'sluice-default-${bad.suffix}'`,
    });
    expect(executions).toHaveLength(0);
    expect(listFiles(bad.outputDir)).toEqual([]);
  });

  it('a usage error (unknown command) exits 2', async () => {
    const run = await runSluice(bad, ['transmogrify']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown command/);
  });

  it.each(['status', 'result', 'cancel'])(
    '%s of an unknown pipeline ID exits 2 with "no such pipeline"',
    async (command) => {
      const id = `video:acme:never-${bad.suffix}`;
      const run = await runSluice(bad, [command, id, '--json']);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`no such pipeline: ${id}`);
      expect(oneJson(run)).toEqual({ error: 'no such pipeline', workflowId: id });
    },
  );

  it.each([
    {
      name: 'a media root that does not exist',
      env: () => ({ SLUICE_MEDIA_ROOT: '/nonexistent/media' }),
      want: /SLUICE_MEDIA_ROOT: \/nonexistent\/media does not exist/,
    },
    {
      name: 'a media root that is a file',
      env: () => ({ SLUICE_MEDIA_ROOT: '/etc/hostname' }),
      want: /SLUICE_MEDIA_ROOT: \/etc\/hostname is not a directory/,
    },
    {
      name: 'a DATABASE_URL that does not parse',
      env: () => ({ DATABASE_URL: 'notaurl' }),
      want: /DATABASE_URL: not a PostgreSQL URL/,
    },
  ])('$name exits 2 naming the variable, and starts nothing', async ({ env, want }) => {
    const run = await runSluice(bad, ['video', 'ok.mp4', '--id', 'cfg-err', '--json'], { env: env() });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(want);
    expect(run.stderr).not.toMatch(/ENOENT|getaddrinfo|\n\s+at /);
    oneJson(run);
    expect(await client.exists(`video:default:cfg-err`)).toBe(false);
  });

  it('an invalid environment exits 2 and names the variable', async () => {
    const run = await runSluice(bad, ['status', 'x', '--json'], { env: { SLUICE_METRICS_PORT: 'many' } });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/SLUICE_METRICS_PORT/);
    oneJson(run);
  });
});

describe('sluice video/status/result/cancel against running workers', () => {
  let t: TestEnv;
  let host: WorkerHost;
  let sample: string;

  beforeAll(async () => {
    t = makeTestEnv('cli');
    sample = await sampleVideo(t, { seconds: 6 });
    host = await startHost(t, ['default', 'low']);
  });

  afterAll(async () => {
    await host?.shutdown();
  });

  it('video --wait --json prints one object with the workflow ID, status and artifacts', async () => {
    const run = await runSluice(t, [
      'video',
      sample,
      '--package',
      'mp4',
      '--renditions',
      '240p',
      '--chunk-seconds',
      '3',
      '--thumbnails',
      '1',
      '--tenant',
      'cli',
      '--id',
      'k1',
      '--wait',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const out = oneJson(run) as {
      workflowId: string;
      status: string;
      result: { manifest: { path: string }; renditions: { name: string; path: string; durationSec: number }[] };
    };
    expect(out.workflowId).toBe('video:cli:k1');
    expect(out.status).toBe('COMPLETED');
    expect(fs.existsSync(out.result.manifest.path)).toBe(true);
    expect(out.result.renditions).toHaveLength(1);
    expect(out.result.renditions[0]?.name).toBe('240p');
    expect(fs.existsSync(out.result.renditions[0]?.path ?? '')).toBe(true);
    expect(Math.abs((out.result.renditions[0]?.durationSec ?? 0) - 6)).toBeLessThanOrEqual(0.5);
  });

  it('shows a progress bar while waiting on a terminal', async () => {
    // `script` gives the CLI a real pseudo-terminal, as a person running it would have.
    const cmd = [
      process.execPath,
      path.join(REPO_ROOT, 'bin', 'sluice'),
      'video',
      sample,
      '--package',
      'mp4',
      '--renditions',
      '240p',
      '--chunk-seconds',
      '1',
      '--thumbnails',
      '0',
      '--tenant',
      'cli',
      '--id',
      'tty',
      '--wait',
    ]
      .map((a) => `'${a.replace(/'/g, "'\\''")}'`)
      .join(' ');
    const run = await new Promise<CliRun>((resolve, reject) => {
      const child = spawn('script', ['-qefc', cmd, '/dev/null'], {
        cwd: t.dir,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'xterm', ...t.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr: '' }));
    });
    expect(run.code).toBe(0);
    // The last frame drawn is the finished pipeline: every sub-job done.
    expect(run.stdout).toMatch(/[a-z]+\s*\|█+\| (\d+)\/\1 sub-jobs/);
    expect(run.stdout).toMatch(/completed video:cli:tty/);
  });

  it('status and result of a finished pipeline', async () => {
    const status = await runSluice(t, ['status', 'video:cli:k1', '--json']);
    expect(status.code).toBe(0);
    expect(oneJson(status)).toMatchObject({
      workflowId: 'video:cli:k1',
      status: 'COMPLETED',
      stage: 'done',
      kind: 'video',
    });
    const result = await runSluice(t, ['result', 'video:cli:k1', '--json']);
    expect(result.code).toBe(0);
    expect(oneJson(result)).toMatchObject({ workflowId: 'video:cli:k1', status: 'COMPLETED' });
  });

  it('a failed pipeline exits 1 and prints the failure chain', async () => {
    fs.writeFileSync(path.join(t.mediaRoot, 'text.mp4'), 'not a video at all\n');
    const run = await runSluice(t, ['video', 'text.mp4', '--tenant', 'cli', '--id', 'broken', '--wait', '--json']);
    expect(run.code).toBe(1);
    const out = oneJson(run) as { status: string; failure: { type?: string; message: string }[] };
    expect(out.status).toBe('FAILED');
    expect(out.failure.some((f) => f.type === 'InvalidMedia')).toBe(true);
    expect(run.stderr).toMatch(/InvalidMedia/);
  });

  it('cancel stops a running pipeline', async () => {
    const long = await sampleVideo(t, { seconds: 40, width: 640, height: 360, fps: 25 });
    const start = await runSluice(t, [
      'video',
      long,
      '--package',
      'mp4',
      '--renditions',
      '720p',
      '--chunk-seconds',
      '20',
      '--thumbnails',
      '0',
      '--tenant',
      'cli',
      '--id',
      'to-cancel',
      '--priority',
      'low',
      '--json',
    ]);
    expect(start.code).toBe(0);
    expect(oneJson(start)).toMatchObject({ workflowId: 'video:cli:to-cancel', status: 'STARTED' });
    const cancel = await runSluice(t, ['cancel', 'video:cli:to-cancel', '--json']);
    expect(cancel.code).toBe(0);
    expect(oneJson(cancel)).toEqual({ workflowId: 'video:cli:to-cancel', cancelRequested: true });
    const result = await runSluice(t, ['result', 'video:cli:to-cancel', '--json']);
    expect(result.code).toBe(1);
    expect(oneJson(result)).toMatchObject({ status: 'FAILED' });
    expect(listFiles(path.join(t.outputDir, 'video:cli:to-cancel'))).toEqual([]);
  });
});

describe('sluice demo burst', () => {
  let t: TestEnv;
  let client: SluiceClient;

  beforeAll(async () => {
    // Quick polls and cooldown: the burst is small and the demo waits for the scale-down.
    t = makeTestEnv('demo', { SLUICE_SCALE_POLL_MS: '500', SLUICE_AUTOSCALE_UP_STABILIZATION_MS: '0' });
    client = await connectClient(t);
  });

  afterAll(async () => {
    await client?.close();
  });

  it.each(['0', '101', '2.5'])('--pack %s exits 2, names the option and starts nothing', async (pack) => {
    const run = await runSluice(t, ['demo', 'burst', '--jobs', '10', '--pack', pack]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/pack must be a whole number from 1 to 100/);
    const { executions } = await client.temporal.workflowService.listWorkflowExecutions({
      namespace: 'default',
      query: `TaskQueue = '${taskQueueFor('critical', t.suffix)}'`,
    });
    expect(executions).toHaveLength(0);
  });

  it('--pack 5 runs 20 sub-jobs as 4 packed activity tasks under the autoscaler', async () => {
    const run = await runSluice(
      t,
      ['demo', 'burst', '--jobs', '20', '--ms', '10', '--pack', '5', '--max', '1', '--cooldown-seconds', '1', '--json'],
      { timeoutMs: 90_000 },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('20 sub-jobs × 10 ms, 5 per activity task');
    const summary = oneJson(run) as { workflowId: string; failedActivities: number; byProcess: Record<string, number> };
    expect(summary.failedActivities).toBe(0);
    expect(Object.values(summary.byProcess).reduce((a, b) => a + b, 0)).toBe(20);
    // In the history: 4 runPacked tasks of 5 sub-jobs each, and no burstSleep task of its own.
    const history = await client.temporal.workflow.getHandle(summary.workflowId).fetchHistory();
    const scheduled = (history.events ?? []).flatMap((e) =>
      e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : [],
    );
    expect(scheduled).toEqual([PACKED_ACTIVITY, PACKED_ACTIVITY, PACKED_ACTIVITY, PACKED_ACTIVITY]);
  }, 120_000);
});
