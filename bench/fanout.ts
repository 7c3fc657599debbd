/**
 * bench:fanout — 10,000 sub-jobs in one report pipeline (10 monthly partitions × 1,000 shards),
 * through the shared fan-out helper's batched child workflows, on a private dev server with the
 * worker in this process. Prints wall time, sub-jobs/s, the largest history length (parent and
 * every child run) and the peak RSS of the worker process.
 *
 *   npm run bench:fanout [-- --months 10 --shards 1000 --window 64 --slots 32 --duckdb-threads N]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { SluiceClient } from '../src/client';
import { loadConfig, type SluiceConfig } from '../src/config';
import { generateOrders } from '../src/data/generate';
import { freePort, startDevServer, type DevServerHandle } from '../src/devserver/dev-server';
import { taskQueueFor } from '../src/shared/constants';
import { workerProcessEnv } from '../src/shared/node-options';

export const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};

/** Peak and current RSS of a process, from /proc (VmHWM is the kernel's high-water mark). */
export function rssOf(pid: number): { peakMB: number; currentMB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakMB: +(kb('VmHWM') / 1024).toFixed(1), currentMB: +(kb('VmRSS') / 1024).toFixed(1) };
}

/**
 * The worker under test is the real `sluice worker --tiers default` (compiled: `npm run build`
 * first, which also writes the prebuilt workflow bundle), in its own process, so that its RSS is
 * the worker's alone. Resolves once it polls the tier's workflow queue.
 */
export async function spawnWorker(
  env: Record<string, string>,
  client: SluiceClient,
  taskQueue: string,
): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const bin = path.join(__dirname, '..', 'bin', 'sluice');
  if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'cli', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm run bench:fanout does)');
  const child = spawn(process.execPath, [bin, 'worker', '--tiers', 'default'], {
    // As the Kubernetes manifests launch it: with the worker V8 flags and malloc arena limit.
    env: workerProcessEnv({
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX,
      NODE_OPTIONS: process.env.NODE_OPTIONS,
      ...env,
    }),
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sluice worker exited with ${child.exitCode} before it polled`);
    if (Date.now() > deadline) throw new Error('sluice worker did not poll within 120 s');
    const d = await client.temporal.workflowService.describeTaskQueue({
      namespace: client.config.temporal.namespace,
      taskQueue: { name: taskQueue },
      taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
    });
    if ((d.pollers ?? []).length > 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A private dev server, a config pointed at it, and a temp dir. */
export async function benchEnv(
  name: string,
  extra: Record<string, string> = {},
): Promise<{ server: DevServerHandle; config: SluiceConfig; dir: string; env: Record<string, string> }> {
  Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sluice-bench-${name}-`));
  const server = await startDevServer({
    port: await freePort(),
    uiPort: await freePort(),
    dbFile: undefined,
    namespace: 'default',
    cliPath: undefined,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: server.address,
    SLUICE_MEDIA_ROOT: dir,
    SLUICE_OUTPUT_DIR: path.join(dir, 'out'),
    SLUICE_DATA_DIR: path.join(dir, 'data'),
    SLUICE_METRICS_PORT: '0',
    SLUICE_LOG_LEVEL: 'silent',
    SLUICE_TASK_QUEUE_SUFFIX: name,
    ...extra,
  };
  return { server, config: loadConfig(env, dir), dir, env };
}

async function main(): Promise<void> {
  const months = arg('months', 10);
  const shards = arg('shards', 1000);
  const window = arg('window', 64);
  const slots = arg('slots', 32);
  const duckdbThreads = arg('duckdb-threads', 0);
  const { server, config, dir, env } = await benchEnv('fanout', {
    SLUICE_SLOTS_DEFAULT: String(slots),
    ...(duckdbThreads > 0 ? { SLUICE_DUCKDB_THREADS: String(duckdbThreads) } : {}),
  });
  let worker: Awaited<ReturnType<typeof spawnWorker>> | undefined;
  let client: SluiceClient | undefined;
  try {
    await generateOrders({ dir: config.reports.partitionsDir, start: '2024-01', months, rowsPerMonth: 2_000, seed: 1 });
    client = await SluiceClient.connect({ config });
    worker = await spawnWorker(env, client, taskQueueFor('default', config.taskQueueSuffix));
    const pid = worker.child.pid as number;
    process.stderr.write(`worker RSS before the pipeline: ${rssOf(pid).currentMB} MB\n`);
    const began = performance.now();
    // RSS over time: a plateau is the working set, a steady climb would be a leak.
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(rssOf(pid).currentMB), 5_000);
    const to = `2024-${String(months).padStart(2, '0')}`;
    const { workflowId } = await client.startReportPipeline({
      from: '2024-01',
      to: months <= 12 ? to : '2024-12',
      measures: ['orders', 'revenue'],
      groupBy: ['month', 'region'],
      shards,
      window,
      policy: 'fail-fast',
      tenant: 'bench',
      idempotencyKey: `fanout-${Date.now()}`,
    });
    const result = await client.getReportResult(workflowId);
    const wallMs = performance.now() - began;
    clearInterval(sampler);
    const peakRssMB = rssOf(pid).peakMB;

    // Every run of the parent and of each child, continue-as-new chains included.
    const lengths: { id: string; runId: string; events: number }[] = [];
    for await (const wf of client.temporal.workflow.list({ query: `WorkflowId STARTS_WITH "${workflowId}"` })) {
      const d = await client.temporal.workflow.getHandle(wf.workflowId, wf.runId).describe();
      lengths.push({ id: wf.workflowId, runId: wf.runId, events: d.historyLength });
    }
    const largest = lengths.reduce((a, b) => (b.events > a.events ? b : a));
    const parent = lengths.find((l) => l.id === workflowId);
    const out = {
      subJobs: result.subJobs,
      used: result.used.length,
      wallSeconds: +(wallMs / 1000).toFixed(2),
      subJobsPerSecond: +(result.subJobs / (wallMs / 1000)).toFixed(1),
      workflowRuns: lengths.length,
      parentHistoryLength: parent?.events,
      largestHistoryLength: largest.events,
      largestHistoryWorkflow: largest.id,
      historyLimitOk: largest.events <= 10_240,
      peakWorkerRssMB: peakRssMB,
      rssLimitOk: peakRssMB <= 300,
      rssEvery5sMB: samples,
    };
    process.stdout.write(
      [
        `sub-jobs            ${out.subJobs} (${months} partitions × ${shards} shards, window ${window}, ${slots} slots)`,
        `wall time           ${out.wallSeconds} s`,
        `sub-jobs/s          ${out.subJobsPerSecond}`,
        `workflow runs       ${out.workflowRuns} (parent + batch children)`,
        `largest history     ${out.largestHistoryLength} events (${out.largestHistoryWorkflow}); parent ${out.parentHistoryLength}; limit 10,240 ${out.historyLimitOk ? 'OK' : 'EXCEEDED'}`,
        `peak worker RSS     ${out.peakWorkerRssMB} MB; limit 300 MB ${out.rssLimitOk ? 'OK' : 'EXCEEDED'}`,
        JSON.stringify(out),
        '',
      ].join('\n'),
    );
  } finally {
    await client?.close();
    await worker?.stop();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`bench:fanout failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
