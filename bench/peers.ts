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
 * 2. Peer comparison, at each concurrency of `--io-concurrency`: the same fan-out/fan-in of 1,000
 *    sub-jobs through BullMQ's FlowProducer on the local Redis (the parent job completes when all
 *    children have). Every side gets the same concurrency (Sluice slots, bare SDK slots, BullMQ
 *    worker concurrency) and every child is enqueued at once, as FlowProducer does. With 100 ms
 *    I/O sub-jobs: wall-time ratio Sluice / BullMQ (target ≤ 1.10); the bare SDK worker runs the
 *    same fan-out, to show how much of the gap is Temporal's own. With no-op sub-jobs: the ratio,
 *    reported as the cost of durability.
 *
 *   npm run bench:peers [-- --jobs 1000 --concurrency 50 --io-concurrency 10,50 --overhead-jobs 1000 --reps 5]
 */
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { FlowProducer, Worker as BullWorker, type Job } from 'bullmq';
import IORedis from 'ioredis';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { taskQueueFor } from '../src/shared/constants';
import { WorkerHost } from '../src/workers/host';
import type { BurstInput, BurstResult } from '../src/workflows/burst';
import { numberArg, saveFigures, startBenchEnv, type BenchEnv } from './harness';

const JOBS = numberArg('jobs', 1000);
const CONCURRENCY = numberArg('concurrency', 50);
const OVERHEAD_JOBS = numberArg('overhead-jobs', 1000);
const REPS = numberArg('reps', 5);
const IO_CONCURRENCY = listArg('io-concurrency', [10, CONCURRENCY]);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

function listArg(name: string, fallback: number[]): number[] {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? '').split(',').map(Number) : fallback;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A fan-out runner: `run(jobs, ms, window)` resolves with the wall time in seconds. */
interface Side {
  run(jobs: number, ms: number, window: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Sluice's worker (WorkerHost on the default tier, `slots` activity slots) running burstWorkflow.
 * The activity body is the same as the bare worker's and BullMQ's (the demo's burstSleep also
 * heartbeats: that is work, not framework).
 */
async function startSluice(bench: BenchEnv, client: Client, slots: number): Promise<Side> {
  const suffix = `peers-${slots}`;
  const config = loadConfig(
    { ...bench.env, SLUICE_SLOTS_DEFAULT: String(slots), SLUICE_TASK_QUEUE_SUFFIX: suffix },
    bench.dir,
  );
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
  return {
    run: async (jobs, ms, window) => {
      const t0 = performance.now();
      const result = await client.workflow.execute<(i: BurstInput) => Promise<BurstResult>>('burstWorkflow', {
        taskQueue: taskQueueFor('default', suffix),
        workflowId: `sluice-${slots}-${jobs}-${ms}-${Date.now()}`,
        args: [{ jobs, ms, window }],
      });
      if (result.succeeded !== jobs) throw new Error(`sluice: ${result.succeeded}/${jobs} succeeded`);
      return (performance.now() - t0) / 1000;
    },
    close: () => host.shutdown(),
  };
}

/** The bare SDK worker: one Worker, `slots` slots, a minimal windowed fan-out workflow. */
async function startBare(bench: BenchEnv, client: Client, slots: number): Promise<Side> {
  const taskQueue = `bare-peers-${slots}`;
  const connection = await NativeConnection.connect({ address: bench.server.address });
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowsPath: path.join(__dirname, 'bare-workflows.ts'),
    activities: { sleep: async (ms: number) => (ms > 0 ? sleep(ms) : undefined) },
    maxConcurrentActivityTaskExecutions: slots,
  });
  const running = worker.run();
  return {
    run: async (jobs, ms, window) => {
      const t0 = performance.now();
      const done = await client.workflow.execute<(n: number, ms: number, window: number) => Promise<number>>(
        'bareFanOutWorkflow',
        { taskQueue, workflowId: `bare-${slots}-${jobs}-${ms}-${Date.now()}`, args: [jobs, ms, window] },
      );
      if (done !== jobs) throw new Error(`bare: ${done}/${jobs}`);
      return (performance.now() - t0) / 1000;
    },
    close: async () => {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

/** BullMQ: a parent job with `jobs` children; the parent's processor runs once all children completed. */
function startBull(concurrency: number): Side {
  const prefix = `sluice-bench-${process.pid}-${concurrency}`;
  const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
  const flow = new FlowProducer({ connection: redis, prefix });
  let finishParent: ((v: number) => void) | undefined;
  const children = new BullWorker(
    prefix + '-child',
    async (job: Job<{ ms: number }>) => {
      if (job.data.ms > 0) await sleep(job.data.ms);
      return 1;
    },
    { connection: redis.duplicate(), prefix, concurrency },
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
  return {
    run: async (jobs, ms) => {
      const t0 = performance.now();
      const finished = new Promise<number>((resolve) => (finishParent = resolve));
      await flow.add({
        name: 'parent',
        queueName: prefix + '-parent',
        children: Array.from({ length: jobs }, (_, i) => ({
          name: `c${i}`,
          queueName: prefix + '-child',
          data: { ms },
        })),
      });
      const n = await finished;
      if (n !== jobs) throw new Error(`bullmq: ${n}/${jobs}`);
      return (performance.now() - t0) / 1000;
    },
    close: async () => {
      await children.close();
      await parents.close();
      await flow.close();
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    },
  };
}

/** Runs `a` and `b` REPS times each, alternating which goes first; returns every run. */
async function alternate(reps: number, a: () => Promise<number>, b: () => Promise<number>) {
  const as: number[] = [];
  const bs: number[] = [];
  for (let r = 0; r < reps; r++) {
    if (r % 2 === 0) {
      as.push(await a());
      bs.push(await b());
    } else {
      bs.push(await b());
      as.push(await a());
    }
  }
  return { a: as, b: bs };
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  const bench = await startBenchEnv('peers', { SLUICE_LOG_LEVEL: 'silent', SLUICE_SCALE_POLL_MS: '0' });
  const connection = await Connection.connect({ address: bench.server.address });
  const client = new Client({ connection });
  const open: Side[] = [];
  const start = async <S extends Side>(side: Promise<S> | S): Promise<S> => {
    const s = await side;
    open.push(s);
    return s;
  };
  const stop = async (...sides: Side[]) => {
    for (const s of sides) {
      open.splice(open.indexOf(s), 1);
      await s.close();
    }
  };
  try {
    // 1. Framework overhead: same window, slots and body on both sides.
    const sluice = await start(startSluice(bench, client, CONCURRENCY));
    const bare = await start(startBare(bench, client, CONCURRENCY));
    // Warm-up: bundles loaded, connections open, caches warm.
    await sluice.run(50, 0, CONCURRENCY);
    await bare.run(50, 0, CONCURRENCY);
    const overhead = await alternate(
      REPS,
      () => sluice.run(OVERHEAD_JOBS, 0, CONCURRENCY),
      () => bare.run(OVERHEAD_JOBS, 0, CONCURRENCY),
    );
    const overheadSluice = median(overhead.a);
    const overheadBare = median(overhead.b);
    const batchedSluice = await sluice.run(2 * OVERHEAD_JOBS, 0, CONCURRENCY);
    const batchedBare = await bare.run(2 * OVERHEAD_JOBS, 0, CONCURRENCY);
    await stop(sluice, bare);

    // 2. Peers, at each concurrency; every child enqueued at once on every side.
    const peers: {
      concurrency: number;
      ioSluiceSec: number;
      ioBareSec: number;
      ioBullmqSec: number;
      ioRatio: number;
      ioBareRatio: number;
      idealSec: number;
      noopSluiceSec: number;
      noopBullmqSec: number;
      noopRatio: number;
    }[] = [];
    for (const c of IO_CONCURRENCY) {
      const s = await start(startSluice(bench, client, c));
      const b = await start(startBare(bench, client, c));
      const q = await start(startBull(c));
      await s.run(50, 0, 50);
      await b.run(50, 0, 50);
      await q.run(50, 0, 50);
      const ioSluice = await s.run(JOBS, 100, JOBS);
      const ioBare = await b.run(JOBS, 100, JOBS);
      const ioBull = await q.run(JOBS, 100, JOBS);
      const noopSluice = await s.run(JOBS, 0, JOBS);
      const noopBull = await q.run(JOBS, 0, JOBS);
      peers.push({
        concurrency: c,
        ioSluiceSec: round(ioSluice),
        ioBareSec: round(ioBare),
        ioBullmqSec: round(ioBull),
        ioRatio: round(ioSluice / ioBull, 3),
        ioBareRatio: round(ioBare / ioBull, 3),
        idealSec: round((Math.ceil(JOBS / c) * 100) / 1000),
        noopSluiceSec: round(noopSluice),
        noopBullmqSec: round(noopBull),
        noopRatio: round(noopSluice / noopBull, 2),
      });
      await stop(s, b, q);
    }

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
        sluiceRunsSec: overhead.a.map((x) => round(x)),
        bareRunsSec: overhead.b.map((x) => round(x)),
      },
      batched: {
        jobs: 2 * OVERHEAD_JOBS,
        sluiceSec: round(batchedSluice),
        bareSec: round(batchedBare),
        throughputRatio: round(batchedBare / batchedSluice, 3),
        note: 'Sluice runs batched child workflows above 1,000 sub-jobs; the bare workflow keeps one history',
      },
      peers: { jobs: JOBS, ioTarget: '≤ 1.10', byConcurrency: peers },
    };
    saveFigures('peers', figures);
    const out = [
      `bench:peers  ${figures.cores} cores`,
      `  framework overhead, ${OVERHEAD_JOBS} no-op sub-jobs, window/slots ${CONCURRENCY}: Sluice ${overheadSluice.toFixed(2)} s (${(OVERHEAD_JOBS / overheadSluice).toFixed(0)}/s), bare SDK worker ${overheadBare.toFixed(2)} s (${(OVERHEAD_JOBS / overheadBare).toFixed(0)}/s)`,
      `    throughput ratio Sluice/bare: ${throughputRatio.toFixed(3)}  (target ≥ 0.95)  ${throughputRatio >= 0.95 ? 'MET' : 'NOT MET'}  (medians of ${REPS}: Sluice ${overhead.a.map((x) => x.toFixed(2)).join(', ')} s; bare ${overhead.b.map((x) => x.toFixed(2)).join(', ')} s)`,
      `  ${2 * OVERHEAD_JOBS} no-op sub-jobs (Sluice batches into child workflows): Sluice ${batchedSluice.toFixed(2)} s, bare ${batchedBare.toFixed(2)} s — ratio ${(batchedBare / batchedSluice).toFixed(3)}`,
      `  fan-out/fan-in of ${JOBS} sub-jobs vs BullMQ FlowProducer, all enqueued at once, same concurrency on every side:`,
    ];
    for (const p of peers) {
      out.push(
        `    concurrency ${p.concurrency}, 100 ms I/O (ideal ${p.idealSec.toFixed(2)} s): Sluice ${p.ioSluiceSec.toFixed(2)} s, bare SDK ${p.ioBareSec.toFixed(2)} s, BullMQ ${p.ioBullmqSec.toFixed(2)} s`,
        `      wall-time ratio Sluice/BullMQ: ${p.ioRatio.toFixed(3)}  (target ≤ 1.10)  ${p.ioRatio <= 1.1 ? 'MET' : 'NOT MET'}; bare SDK/BullMQ ${p.ioBareRatio.toFixed(3)}`,
        `    concurrency ${p.concurrency}, no-op: Sluice ${p.noopSluiceSec.toFixed(2)} s, BullMQ ${p.noopBullmqSec.toFixed(2)} s — ratio ${p.noopRatio.toFixed(2)}: the cost of durability`,
      );
    }
    console.log(out.join('\n'));
  } finally {
    for (const s of open.reverse()) await s.close().catch(() => undefined);
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

// The Temporal runtime keeps the process alive after its workers shut down: exit explicitly.
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
