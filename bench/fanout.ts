/**
 * bench:fanout — 10,000 sub-jobs in one report pipeline (10 monthly partitions × 1,000 shards),
 * through the shared fan-out helper's batched child workflows, on a private dev server with the
 * worker in this process. Prints wall time, sub-jobs/s, the largest history length (parent and
 * every child run) and the peak RSS of the worker process.
 *
 *   npm run bench:fanout [-- --months 10 --shards 1000 --window 64 --slots 32 --duckdb-threads N]
 */
import { performance } from 'node:perf_hooks';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { SluiceClient } from '../src/client';
import { generateOrders } from '../src/data/generate';
import { taskQueueFor } from '../src/shared/constants';
import { numberArg, rssOf, spawnWorker, startBenchEnv } from './harness';

async function main(): Promise<void> {
  const months = numberArg('months', 10);
  const shards = numberArg('shards', 1000);
  const window = numberArg('window', 64);
  const slots = numberArg('slots', 32);
  const duckdbThreads = numberArg('duckdb-threads', 0);
  Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  const bench = await startBenchEnv('fanout', {
    SLUICE_LOG_LEVEL: 'silent',
    SLUICE_SLOTS_DEFAULT: String(slots),
    ...(duckdbThreads > 0 ? { SLUICE_DUCKDB_THREADS: String(duckdbThreads) } : {}),
  });
  const { config, env } = bench;
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
    await bench.close();
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
