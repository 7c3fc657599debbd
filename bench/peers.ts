/**
 * bench:peers — what Sluice costs, side by side in one run on one machine.
 *
 * 1. Framework overhead: N no-op sub-jobs through Sluice's workers (WorkerHost: interceptors,
 *    weighted slots, metrics, the fan-out helper) versus a bare `@temporalio/worker` Worker
 *    running a minimal windowed fan-out workflow, on the same dev server with the same window,
 *    slots and activity body, and the same workflow shape (one workflow: N ≤ the burst's batch
 *    threshold of 1,000). Runs alternate, REPS times each; medians. Throughput ratio Sluice / bare
 *    (target ≥ 0.95). Also reported: 2 × N sub-jobs, where Sluice switches to batched child
 *    workflows (its design for fan-outs up to 10,000) and the bare workflow does not.
 * 2. Peer comparison: the same fan-out/fan-in of 1,000 sub-jobs through BullMQ's FlowProducer on
 *    the local Redis (parent job completes when all children have), with the same concurrency.
 *    With 100 ms I/O sub-jobs: wall-time ratio Sluice / BullMQ (target ≤ 1.10); with no-op
 *    sub-jobs: the ratio, reported as the cost of durability.
 *
 *   npm run bench:peers [-- --jobs 1000 --concurrency 50 --overhead-jobs 1000 --reps 3]
 */
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { FlowProducer, Worker as BullWorker, type Job } from 'bullmq';
import IORedis from 'ioredis';
import { createLogger } from '../src/logger';
import { taskQueueFor } from '../src/shared/constants';
import { WorkerHost } from '../src/workers/host';
import type { BurstInput, BurstResult } from '../src/workflows/burst';
import { numberArg, saveFigures, startBenchEnv } from './harness';

const JOBS = numberArg('jobs', 1000);
const CONCURRENCY = numberArg('concurrency', 50);
const OVERHEAD_JOBS = numberArg('overhead-jobs', 1000);
const REPS = numberArg('reps', 3);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  const bench = await startBenchEnv('peers', {
    SLUICE_LOG_LEVEL: 'silent',
    SLUICE_SLOTS_DEFAULT: String(CONCURRENCY),
    SLUICE_SCALE_POLL_MS: '0',
  });
  const { server, config } = bench;
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  // The same activity body on both sides (the demo's burstSleep also heartbeats: that is work, not
  // framework), so the difference is Sluice's worker, interceptors, slots and fan-out helper.
  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  const host = await WorkerHost.start({
    config,
    tiers: ['default'],
    log: createLogger('silent'),
    serveHttp: false,
    activities: {
      burstSleep: async (input: { index: number; ms: number }) => {
        if (input.ms > 0) await sleep(input.ms);
        return { index: input.index, attempt: 1, pid: process.pid };
      },
    },
  });

  // The bare SDK worker: one Worker, the same slots, a minimal windowed fan-out workflow.
  const bareConnection = await NativeConnection.connect({ address: server.address });
  const bare = await Worker.create({
    connection: bareConnection,
    taskQueue: 'bare-peers',
    workflowsPath: path.join(__dirname, 'bare-workflows.ts'),
    activities: { sleep: async (ms: number) => (ms > 0 ? sleep(ms) : undefined) },
    maxConcurrentActivityTaskExecutions: CONCURRENCY,
  });
  const bareRun = bare.run();

  const sluiceFanOut = async (jobs: number, ms: number): Promise<number> => {
    const t0 = performance.now();
    const result = await client.workflow.execute<(i: BurstInput) => Promise<BurstResult>>('burstWorkflow', {
      taskQueue: taskQueueFor('default', 'peers'),
      workflowId: `sluice-${jobs}-${ms}-${Date.now()}`,
      args: [{ jobs, ms, window: CONCURRENCY }],
    });
    if (result.succeeded !== jobs) throw new Error(`sluice: ${result.succeeded}/${jobs} succeeded`);
    return (performance.now() - t0) / 1000;
  };
  const bareFanOut = async (jobs: number, ms: number): Promise<number> => {
    const t0 = performance.now();
    const done = await client.workflow.execute<(n: number, ms: number, window: number) => Promise<number>>(
      'bareFanOutWorkflow',
      {
        taskQueue: 'bare-peers',
        workflowId: `bare-${jobs}-${ms}-${Date.now()}`,
        args: [jobs, ms, CONCURRENCY],
      },
    );
    if (done !== jobs) throw new Error(`bare: ${done}/${jobs}`);
    return (performance.now() - t0) / 1000;
  };

  // BullMQ: parent job with JOBS children; the parent's processor runs once all children completed.
  const prefix = `sluice-bench-${process.pid}`;
  const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
  const flow = new FlowProducer({ connection: redis, prefix });
  let finishParent: ((v: number) => void) | undefined;
  const children = new BullWorker(
    prefix + '-child',
    async (job: Job<{ ms: number }>) => {
      if (job.data.ms > 0) await new Promise((r) => setTimeout(r, job.data.ms));
      return 1;
    },
    { connection: redis.duplicate(), prefix, concurrency: CONCURRENCY },
  );
  const parents = new BullWorker(
    prefix + '-parent',
    async (job: Job) => {
      const values = await job.getChildrenValues();
      finishParent?.(Object.keys(values).length);
      return Object.keys(values).length;
    },
    { connection: redis.duplicate(), prefix, concurrency: 1 },
  );
  const bullFanOut = async (jobs: number, ms: number): Promise<number> => {
    const t0 = performance.now();
    const finished = new Promise<number>((resolve) => (finishParent = resolve));
    await flow.add({
      name: 'parent',
      queueName: prefix + '-parent',
      children: Array.from({ length: jobs }, (_, i) => ({ name: `c${i}`, queueName: prefix + '-child', data: { ms } })),
    });
    const n = await finished;
    if (n !== jobs) throw new Error(`bullmq: ${n}/${jobs}`);
    return (performance.now() - t0) / 1000;
  };

  try {
    // Warm-up: bundles loaded, connections open, Redis scripts cached.
    await sluiceFanOut(50, 0);
    await bareFanOut(50, 0);
    await bullFanOut(50, 0);

    // Alternating runs, medians: neither side always goes first into a warmer server.
    const sluiceRuns: number[] = [];
    const bareRuns: number[] = [];
    for (let r = 0; r < REPS; r++) {
      if (r % 2 === 0) {
        sluiceRuns.push(await sluiceFanOut(OVERHEAD_JOBS, 0));
        bareRuns.push(await bareFanOut(OVERHEAD_JOBS, 0));
      } else {
        bareRuns.push(await bareFanOut(OVERHEAD_JOBS, 0));
        sluiceRuns.push(await sluiceFanOut(OVERHEAD_JOBS, 0));
      }
    }
    const overheadSluice = median(sluiceRuns);
    const overheadBare = median(bareRuns);
    const batchedSluice = await sluiceFanOut(2 * OVERHEAD_JOBS, 0);
    const batchedBare = await bareFanOut(2 * OVERHEAD_JOBS, 0);
    const ioSluice = await sluiceFanOut(JOBS, 100);
    const ioBull = await bullFanOut(JOBS, 100);
    const noopSluice = await sluiceFanOut(JOBS, 0);
    const noopBull = await bullFanOut(JOBS, 0);

    const throughputRatio = overheadBare / overheadSluice; // (jobs/s Sluice) ÷ (jobs/s bare)
    const figures = {
      bench: 'peers',
      cores: os.availableParallelism(),
      concurrency: CONCURRENCY,
      overhead: {
        jobs: OVERHEAD_JOBS,
        sluiceSec: round(overheadSluice),
        bareSec: round(overheadBare),
        sluiceJobsPerSec: round(OVERHEAD_JOBS / overheadSluice),
        bareJobsPerSec: round(OVERHEAD_JOBS / overheadBare),
        throughputRatio: round(throughputRatio, 3),
        target: '≥ 0.95',
        reps: REPS,
        sluiceRunsSec: sluiceRuns.map((x) => round(x)),
        bareRunsSec: bareRuns.map((x) => round(x)),
      },
      batched: {
        jobs: 2 * OVERHEAD_JOBS,
        sluiceSec: round(batchedSluice),
        bareSec: round(batchedBare),
        throughputRatio: round(batchedBare / batchedSluice, 3),
        note: 'Sluice runs batched child workflows above 1,000 sub-jobs; the bare workflow keeps one history',
      },
      io100ms: {
        jobs: JOBS,
        sluiceSec: round(ioSluice),
        bullmqSec: round(ioBull),
        ratio: round(ioSluice / ioBull, 3),
        target: '≤ 1.10',
      },
      noop: {
        jobs: JOBS,
        sluiceSec: round(noopSluice),
        bullmqSec: round(noopBull),
        ratio: round(noopSluice / noopBull, 3),
        note: 'the cost of durability: every sub-job is a persisted activity with history events',
      },
    };
    saveFigures('peers', figures);
    console.log(`bench:peers  ${figures.cores} cores, window/slots/concurrency ${CONCURRENCY}`);
    console.log(
      `  framework overhead, ${OVERHEAD_JOBS} no-op sub-jobs: Sluice ${overheadSluice.toFixed(2)} s (${(OVERHEAD_JOBS / overheadSluice).toFixed(0)}/s), bare SDK worker ${overheadBare.toFixed(2)} s (${(OVERHEAD_JOBS / overheadBare).toFixed(0)}/s)`,
    );
    console.log(
      `    throughput ratio Sluice/bare: ${throughputRatio.toFixed(3)}  (target ≥ 0.95)  ${throughputRatio >= 0.95 ? 'MET' : 'NOT MET'}  (medians of ${REPS}: Sluice ${sluiceRuns.map((x) => x.toFixed(2)).join(', ')} s; bare ${bareRuns.map((x) => x.toFixed(2)).join(', ')} s)`,
    );
    console.log(
      `  ${2 * OVERHEAD_JOBS} no-op sub-jobs (Sluice batches into child workflows): Sluice ${batchedSluice.toFixed(2)} s, bare ${batchedBare.toFixed(2)} s — ratio ${(batchedBare / batchedSluice).toFixed(3)}`,
    );
    console.log(
      `  ${JOBS} sub-jobs of 100 ms I/O: Sluice ${ioSluice.toFixed(2)} s, BullMQ FlowProducer ${ioBull.toFixed(2)} s`,
    );
    console.log(
      `    wall-time ratio Sluice/BullMQ: ${(ioSluice / ioBull).toFixed(3)}  (target ≤ 1.10)  ${ioSluice / ioBull <= 1.1 ? 'MET' : 'NOT MET'}`,
    );
    console.log(
      `  ${JOBS} no-op sub-jobs: Sluice ${noopSluice.toFixed(2)} s, BullMQ ${noopBull.toFixed(2)} s — ratio ${(noopSluice / noopBull).toFixed(2)}: the cost of durability`,
    );
  } finally {
    await children.close();
    await parents.close();
    await flow.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    bare.shutdown();
    await bareRun;
    await bareConnection.close();
    await host.shutdown();
    await connection.close();
    await bench.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
}

function round(x: number, digits = 2): number {
  return Number(x.toFixed(digits));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
