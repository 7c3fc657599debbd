/**
 * bench:peers — what Sluice costs, side by side in one run on one machine.
 *
 * 1. Framework overhead: N no-op sub-jobs through Sluice's workers (WorkerHost: interceptors,
 *    weighted slots, metrics, the fan-out helper) versus a bare `@temporalio/worker` Worker
 *    running a minimal windowed fan-out workflow, on the same dev server with the same window,
 *    slots and activity body, and the same workflow shape (one workflow: N ≤ the burst's batch
 *    threshold of 1,000). After WARMUP untimed runs of N on each side, runs rotate, REPS times each;
 *    medians, with the CPU each run used. Throughput ratio Sluice / bare (target ≥ 0.95). Also
 *    reported: 2 × N sub-jobs, where Sluice switches to batched child workflows (its design for
 *    fan-outs up to 10,000) and the bare workflow does not.
 * 2. Peer comparison, at each concurrency of `--io-concurrency`: the same fan-out/fan-in of 1,000
 *    sub-jobs through BullMQ's FlowProducer on the local Redis (the parent job completes when all
 *    children have, every child enqueued at once). Every side runs at most that many sub-jobs at
 *    once (Sluice slots, bare SDK slots, BullMQ worker concurrency). Sluice runs as configured for
 *    short I/O sub-jobs: `--io-pack` sub-jobs per activity task (the fan-out's `pack`; each sub-job
 *    keeps its own result, attempts and failure) and SLUICE_PREFETCH = the concurrency (BullMQ,
 *    too, fetches the next job as it completes one), everything enqueued at once. Alongside, one
 *    activity task per sub-job: with the same prefetch and a window of `--io-window` × the
 *    concurrency; with Sluice's defaults; and on the plain bare SDK worker, both with everything
 *    enqueued at once, to show what each setting buys and how much of the gap is Temporal's own.
 *    Medians of `--io-reps` rotated runs, with the CPU each run used. With 100 ms I/O sub-jobs:
 *    wall-time ratio Sluice / BullMQ (target ≤ 1.10). With no-op sub-jobs: the ratio, reported
 *    as the cost of durability.
 *
 * 3. Tracing overhead: the same no-op fan-out of `--tracing-jobs` sub-jobs through two `sluice
 *    worker` processes (compiled code, default tier, `--concurrency` slots), one exporting spans
 *    over OTLP to a real Jaeger v2 started here (.tools/jaeger) and one with tracing off, started
 *    by a traced and a plain client; runs rotate, `--tracing-reps` each after one untimed run.
 *    Overhead = median wall time on ÷ off − 1 (target ≤ 3 %), with each worker's CPU per run.
 *    `--tracing-only` runs just this section.
 *
 *   npm run bench:peers [-- --jobs 1000 --concurrency 50 --io-concurrency 10,50 --overhead-jobs 1000 --reps 11
 *                      --warmup 2 --io-reps 3 --io-window 4 --io-pack 10 --tracing-jobs 1000 --tracing-reps 7
 *                      --tracing-only]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client';
import { FlowProducer, Worker as BullWorker, type Job } from 'bullmq';
import IORedis from 'ioredis';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { taskQueueFor } from '../src/shared/constants';
import { freePort } from '../src/devserver/dev-server';
import { shutdownTracing, startTracing } from '../src/tracing';
import { startJaeger } from '../test/helpers/jaeger';
import { WorkerHost } from '../src/workers/host';
import type { BurstInput, BurstResult } from '../src/workflows/burst';
import { listArg, numberArg, saveFigures, startBenchEnv, type BenchEnv } from './harness';

const JOBS = numberArg('jobs', 1000);
const CONCURRENCY = numberArg('concurrency', 50);
const OVERHEAD_JOBS = numberArg('overhead-jobs', 1000);
const REPS = numberArg('reps', 11);
/** Untimed full-size runs per side before the overhead is timed. */
const WARMUP = numberArg('warmup', 2);
const IO_CONCURRENCY = listArg('io-concurrency', [10, CONCURRENCY]);
const IO_REPS = numberArg('io-reps', 3);
/** Sluice's window in the peer comparison, in multiples of the concurrency. */
const IO_WINDOW = numberArg('io-window', 4);
/** Sub-jobs per activity task in the packed Sluice run of the peer comparison. */
const IO_PACK = numberArg('io-pack', 10);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TRACING_JOBS = numberArg('tracing-jobs', 1000);
const TRACING_REPS = numberArg('tracing-reps', 7);
const TRACING_ONLY = process.argv.includes('--tracing-only');

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The sides of the peer comparison, in the order their runs rotate. */
const SIDES = ['sluicePacked', 'sluice', 'sluiceDefaults', 'bare', 'bullmq'] as const;
type SideKey = (typeof SIDES)[number];

/** A fan-out runner: `run(jobs, ms, window, pack)` resolves with the wall time in seconds. */
interface Side {
  run(jobs: number, ms: number, window: number, pack?: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Sluice's worker (WorkerHost on the default tier, `slots` activity slots) running burstWorkflow.
 * The activity body is the same as the bare worker's and BullMQ's (the demo's burstSleep also
 * heartbeats: that is work, not framework).
 */
async function startSluice(bench: BenchEnv, client: Client, slots: number, prefetch = 0): Promise<Side> {
  const suffix = `peers-${slots}-${prefetch}`;
  const config = loadConfig(
    {
      ...bench.env,
      SLUICE_SLOTS_DEFAULT: String(slots),
      SLUICE_PREFETCH: String(prefetch),
      SLUICE_TASK_QUEUE_SUFFIX: suffix,
    },
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
    run: async (jobs, ms, window, pack) => {
      const t0 = performance.now();
      const result = await client.workflow.execute<(i: BurstInput) => Promise<BurstResult>>('burstWorkflow', {
        taskQueue: taskQueueFor('default', suffix),
        workflowId: `sluice-${slots}-${prefetch}-${jobs}-${ms}-${pack ?? 1}-${Date.now()}`,
        args: [{ jobs, ms, window, ...(pack ? { pack } : {}) }],
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

/** `node bin/sluice worker --tiers default` on its own queue suffix; resolves once /readyz answers 200. */
async function spawnBenchWorker(
  bench: BenchEnv,
  suffix: string,
  extraEnv: Record<string, string>,
): Promise<ChildProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'bin', 'sluice'), 'worker', '--tiers', 'default'], {
    cwd: bench.dir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...bench.env,
      SLUICE_TASK_QUEUE_SUFFIX: suffix,
      SLUICE_SLOTS_DEFAULT: String(CONCURRENCY),
      SLUICE_METRICS_PORT: String(port),
      ...extraEnv,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`worker ${suffix} exited (${child.exitCode}) before it was ready`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`worker ${suffix} not ready within 60 s`);
    }
    await sleep(200);
  }
}

/** SIGTERM (the worker drains and flushes its spans), then waits for the exit. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

/** Section 3: the no-op fan-out on a worker exporting spans to Jaeger versus one with tracing off. */
async function tracingSection(bench: BenchEnv, connection: Connection): Promise<{ figures: object; lines: string[] }> {
  const jaeger = await startJaeger();
  const children: ChildProcess[] = [];
  try {
    // This process is the traced side's client: its StartWorkflow spans go to Jaeger as well.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = jaeger.otlpEndpoint;
    startTracing({ enabled: true, serviceName: 'sluice-bench' }, 'sluice-bench');
    const traced = new Client({
      connection,
      interceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor()] },
    });
    const plain = new Client({ connection });
    const on = await spawnBenchWorker(bench, 'trace-on', { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpEndpoint });
    children.push(on);
    const off = await spawnBenchWorker(bench, 'trace-off', {});
    children.push(off);
    const cpu = { on: [] as number[], off: [] as number[] };
    const side = (client: Client, suffix: string, worker: ChildProcess, into: number[]) => async () => {
      const c0 = processCpuSeconds(worker.pid);
      const t0 = performance.now();
      const result = await client.workflow.execute<(i: BurstInput) => Promise<BurstResult>>('burstWorkflow', {
        taskQueue: taskQueueFor('default', suffix),
        workflowId: `${suffix}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
        args: [{ jobs: TRACING_JOBS, ms: 0, window: CONCURRENCY }],
      });
      const sec = (performance.now() - t0) / 1000;
      if (result.succeeded !== TRACING_JOBS)
        throw new Error(`${suffix}: ${result.succeeded}/${TRACING_JOBS} succeeded`);
      into.push(processCpuSeconds(worker.pid) - c0);
      return sec;
    };
    const runOff = side(plain, 'trace-off', off, cpu.off);
    const runOn = side(traced, 'trace-on', on, cpu.on);
    await runOff();
    await runOn();
    cpu.off.length = 0;
    cpu.on.length = 0;
    const [offRuns, onRuns] = await rotate(TRACING_REPS, [runOff, runOn]);
    const offSec = median(offRuns!);
    const onSec = median(onRuns!);
    const overheadPct = (onSec / offSec - 1) * 100;
    // Proof that the traced side exported: its latest trace in Jaeger (spans arrive in batches).
    await sleep(6_000);
    const latest = (await jaeger.traces('sluice-worker', 1))[0];
    const figures = {
      jobs: TRACING_JOBS,
      concurrency: CONCURRENCY,
      reps: TRACING_REPS,
      offSec: round(offSec),
      onSec: round(onSec),
      overheadPct: round(overheadPct, 1),
      target: '≤ 3 %',
      offRunsSec: offRuns!.map((x) => round(x)),
      onRunsSec: onRuns!.map((x) => round(x)),
      workerCpuPerRunSec: { off: round(median(cpu.off)), on: round(median(cpu.on)) },
      workerCpuOverheadPct: round((median(cpu.on) / median(cpu.off) - 1) * 100, 1),
      spansInLatestTrace: latest?.spans.length ?? 0,
    };
    const lines = [
      `  tracing overhead, ${TRACING_JOBS} no-op sub-jobs, window/slots ${CONCURRENCY}, one \`sluice worker\` process per side: off ${offSec.toFixed(2)} s, on (OTLP to Jaeger) ${onSec.toFixed(2)} s`,
      `    overhead: ${overheadPct.toFixed(1)} %  (target ≤ 3 %)  ${overheadPct <= 3 ? 'MET' : 'NOT MET'}  (medians of ${TRACING_REPS} rotated runs after 1 untimed each: off ${offRuns!.map((x) => x.toFixed(2)).join(', ')} s; on ${onRuns!.map((x) => x.toFixed(2)).join(', ')} s)`,
      `    worker CPU per run (median): off ${figures.workerCpuPerRunSec.off.toFixed(2)} s, on ${figures.workerCpuPerRunSec.on.toFixed(2)} s (+${figures.workerCpuOverheadPct.toFixed(1)} %; steadier than wall time on a loaded machine); spans in the traced side's latest trace in Jaeger: ${figures.spansInLatestTrace}`,
    ];
    return { figures, lines };
  } finally {
    for (const c of children) await stopChild(c);
    await shutdownTracing().catch(() => undefined);
    await jaeger.stop();
  }
}

/** Runs each of `sides` `reps` times, rotating which goes first; returns every run of each. */
async function rotate(reps: number, sides: (() => Promise<number>)[]): Promise<number[][]> {
  const runs = sides.map((): number[] => []);
  for (let r = 0; r < reps; r++) {
    for (let k = 0; k < sides.length; k++) {
      const i = (k + r) % sides.length;
      runs[i]!.push(await sides[i]!());
    }
  }
  return runs;
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
    if (TRACING_ONLY) {
      const tracing = await tracingSection(bench, connection);
      saveFigures('peers-tracing', tracing.figures);
      console.log([`bench:peers --tracing-only  ${os.availableParallelism()} cores`, ...tracing.lines].join('\n'));
      return;
    }
    // 1. Framework overhead: same window, slots and body on both sides.
    const sluice = await start(startSluice(bench, client, CONCURRENCY));
    const bare = await start(startBare(bench, client, CONCURRENCY));
    // Warm-up: WARMUP untimed runs of the full size on each side, alternating, so that the timed
    // runs measure the steady state of a long-running worker: bundles loaded, connections open, the
    // code of a 1,000-sub-job run compiled on both sides, and the fresh dev server's own start-up
    // cost spread over both. With shorter warm-ups Sluice's first timed runs were its slowest.
    for (let w = 0; w < WARMUP; w++) {
      await sluice.run(OVERHEAD_JOBS, 0, CONCURRENCY);
      await bare.run(OVERHEAD_JOBS, 0, CONCURRENCY);
    }
    // CPU of each timed run: this process (worker, client) and the Temporal server.
    const serverCpu = () => processCpuSeconds(bench.server.pid);
    const overheadCpu = { a: newCpuRecord(), b: newCpuRecord() };
    const [overheadA, overheadB] = await rotate(REPS, [
      () => meteredRun(() => sluice.run(OVERHEAD_JOBS, 0, CONCURRENCY), serverCpu, overheadCpu.a),
      () => meteredRun(() => bare.run(OVERHEAD_JOBS, 0, CONCURRENCY), serverCpu, overheadCpu.b),
    ]);
    const overhead = { a: overheadA!, b: overheadB! };
    const overheadCpuSec = (k: 'a' | 'b') => ({
      process: round(median(overheadCpu[k].process)),
      server: round(median(overheadCpu[k].backend)),
    });
    const overheadSluice = median(overhead.a);
    const overheadBare = median(overhead.b);
    const batchedSluice = await sluice.run(2 * OVERHEAD_JOBS, 0, CONCURRENCY);
    const batchedBare = await bare.run(2 * OVERHEAD_JOBS, 0, CONCURRENCY);
    await stop(sluice, bare);

    // 2. Peers, at each concurrency.
    const peers: {
      concurrency: number;
      pack: number;
      sluiceWindow: number;
      idealSec: number;
      /** Medians of the 100 ms I/O runs, by side. */
      ioSec: Record<SideKey, number>;
      /** Wall-time ratio of each side to BullMQ. */
      ioRatio: Record<SideKey, number>;
      ioRunsSec: Record<SideKey, number[]>;
      ioCpuSec: Record<SideKey, { process: number; backend: number }>;
      noopSluicePackedSec: number;
      noopSluiceSec: number;
      noopBullmqSec: number;
      noopPackedRatio: number;
      noopRatio: number;
    }[] = [];
    const redis = new IORedis(REDIS_URL, { maxRetriesPerRequest: null });
    for (const c of IO_CONCURRENCY) {
      // Sluice tuned for short I/O holds as many tasks again as it runs (SLUICE_PREFETCH = c); the
      // same worker runs the packed sub-jobs and, one task per sub-job, a window of IO_WINDOW × c
      // (so the server hands tasks to waiting pollers instead of storing a backlog of all of them).
      const window = Math.min(JOBS, IO_WINDOW * c);
      const tuned = await start(startSluice(bench, client, c, c));
      const defaults = await start(startSluice(bench, client, c));
      const b = await start(startBare(bench, client, c));
      const q = await start(startBull(c));
      for (const side of [tuned, defaults, b, q]) await side.run(50, 0, 50);
      await tuned.run(50, 0, 50, IO_PACK);
      const runs: Record<SideKey, (ms: number) => Promise<number>> = {
        sluicePacked: (ms) => tuned.run(JOBS, ms, JOBS, IO_PACK),
        sluice: (ms) => tuned.run(JOBS, ms, window),
        sluiceDefaults: (ms) => defaults.run(JOBS, ms, JOBS),
        bare: (ms) => b.run(JOBS, ms, JOBS),
        bullmq: (ms) => q.run(JOBS, ms, JOBS),
      };
      // CPU of each run: this process (workers, client, BullMQ) plus the Temporal server or Redis.
      const cpu = Object.fromEntries(SIDES.map((k) => [k, newCpuRecord()])) as Record<SideKey, CpuRecord>;
      const metered = (k: SideKey) => () =>
        meteredRun(() => runs[k](100), k === 'bullmq' ? () => redisCpuSeconds(redis) : serverCpu, cpu[k]);
      const ioRuns = await rotate(IO_REPS, SIDES.map(metered));
      const byKey = <T>(f: (k: SideKey, i: number) => T) =>
        Object.fromEntries(SIDES.map((k, i) => [k, f(k, i)])) as Record<SideKey, T>;
      const ioSec = byKey((_k, i) => median(ioRuns[i]!));
      const noopSluicePacked = await runs.sluicePacked(0);
      const noopSluice = await runs.sluice(0);
      const noopBull = await runs.bullmq(0);
      peers.push({
        concurrency: c,
        pack: IO_PACK,
        sluiceWindow: window,
        idealSec: round((Math.ceil(JOBS / c) * 100) / 1000),
        ioSec: byKey((k) => round(ioSec[k])),
        ioRatio: byKey((k) => round(ioSec[k] / ioSec.bullmq, 3)),
        ioRunsSec: byKey((_k, i) => ioRuns[i]!.map((x) => round(x))),
        ioCpuSec: byKey((k) => ({ process: round(median(cpu[k].process)), backend: round(median(cpu[k].backend)) })),
        noopSluicePackedSec: round(noopSluicePacked),
        noopSluiceSec: round(noopSluice),
        noopBullmqSec: round(noopBull),
        noopPackedRatio: round(noopSluicePacked / noopBull, 2),
        noopRatio: round(noopSluice / noopBull, 2),
      });
      await stop(tuned, defaults, b, q);
    }
    redis.disconnect();

    const tracing = await tracingSection(bench, connection);

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
        warmupRuns: WARMUP,
        sluiceRunsSec: overhead.a.map((x) => round(x)),
        bareRunsSec: overhead.b.map((x) => round(x)),
        cpuPerRunSec: { sluice: overheadCpuSec('a'), bare: overheadCpuSec('b') },
      },
      batched: {
        jobs: 2 * OVERHEAD_JOBS,
        sluiceSec: round(batchedSluice),
        bareSec: round(batchedBare),
        throughputRatio: round(batchedBare / batchedSluice, 3),
        note: 'Sluice runs batched child workflows above 1,000 sub-jobs; the bare workflow keeps one history',
      },
      peers: { jobs: JOBS, ioReps: IO_REPS, ioTarget: '≤ 1.10', byConcurrency: peers },
      tracing: tracing.figures,
    };
    saveFigures('peers', figures);
    const out = [
      `bench:peers  ${figures.cores} cores`,
      `  framework overhead, ${OVERHEAD_JOBS} no-op sub-jobs, window/slots ${CONCURRENCY}: Sluice ${overheadSluice.toFixed(2)} s (${(OVERHEAD_JOBS / overheadSluice).toFixed(0)}/s), bare SDK worker ${overheadBare.toFixed(2)} s (${(OVERHEAD_JOBS / overheadBare).toFixed(0)}/s)`,
      `    throughput ratio Sluice/bare: ${throughputRatio.toFixed(3)}  (target ≥ 0.95)  ${throughputRatio >= 0.95 ? 'MET' : 'NOT MET'}  (medians of ${REPS} after ${WARMUP} untimed runs each: Sluice ${overhead.a.map((x) => x.toFixed(2)).join(', ')} s; bare ${overhead.b.map((x) => x.toFixed(2)).join(', ')} s)`,
      `    CPU per run (median; this process + Temporal server, ${os.availableParallelism()} cores): Sluice ${figures.overhead.cpuPerRunSec.sluice.process.toFixed(2)} + ${figures.overhead.cpuPerRunSec.sluice.server.toFixed(2)} s, bare ${figures.overhead.cpuPerRunSec.bare.process.toFixed(2)} + ${figures.overhead.cpuPerRunSec.bare.server.toFixed(2)} s`,
      `  ${2 * OVERHEAD_JOBS} no-op sub-jobs (Sluice batches into child workflows): Sluice ${batchedSluice.toFixed(2)} s, bare ${batchedBare.toFixed(2)} s — ratio ${(batchedBare / batchedSluice).toFixed(3)}`,
      `  fan-out/fan-in of ${JOBS} sub-jobs vs BullMQ FlowProducer (every child enqueued at once), same concurrency on every side, medians of ${IO_REPS}:`,
    ];
    const cpuText = (p: (typeof peers)[number], k: SideKey) =>
      `${p.ioCpuSec[k].process.toFixed(2)} + ${p.ioCpuSec[k].backend.toFixed(2)} s`;
    for (const p of peers) {
      const met = p.ioRatio.sluicePacked <= 1.1 ? 'MET' : 'NOT MET';
      out.push(
        `    concurrency ${p.concurrency}, 100 ms I/O (ideal ${p.idealSec.toFixed(2)} s): Sluice ${p.ioSec.sluicePacked.toFixed(2)} s (pack ${p.pack}, SLUICE_PREFETCH=${p.concurrency}), BullMQ ${p.ioSec.bullmq.toFixed(2)} s`,
        `      wall-time ratio Sluice/BullMQ: ${p.ioRatio.sluicePacked.toFixed(3)}  (target ≤ 1.10)  ${met}`,
        `      one activity task per sub-job: Sluice ${p.ioSec.sluice.toFixed(2)} s with SLUICE_PREFETCH=${p.concurrency} and window ${p.sluiceWindow} (ratio ${p.ioRatio.sluice.toFixed(3)}); everything enqueued at once: Sluice defaults ${p.ioSec.sluiceDefaults.toFixed(2)} s (ratio ${p.ioRatio.sluiceDefaults.toFixed(3)}), bare SDK ${p.ioSec.bare.toFixed(2)} s (ratio ${p.ioRatio.bare.toFixed(3)})`,
        `      CPU per run (median; this process + Temporal server or Redis, ${os.availableParallelism()} cores): Sluice packed ${cpuText(p, 'sluicePacked')}, Sluice prefetch ${cpuText(p, 'sluice')}, bare SDK ${cpuText(p, 'bare')}, BullMQ ${cpuText(p, 'bullmq')}`,
        `    concurrency ${p.concurrency}, no-op: Sluice packed ${p.noopSluicePackedSec.toFixed(2)} s (ratio ${p.noopPackedRatio.toFixed(2)}), one task per sub-job ${p.noopSluiceSec.toFixed(2)} s (ratio ${p.noopRatio.toFixed(2)}), BullMQ ${p.noopBullmqSec.toFixed(2)} s: the cost of durability`,
      );
    }
    out.push(...tracing.lines);
    console.log(out.join('\n'));
  } finally {
    for (const s of open.reverse()) await s.close().catch(() => undefined);
    await connection.close();
    await bench.close();
  }
}

/** User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere). */
function processCpuSeconds(pid: number | undefined): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime + stime, in clock ticks (USER_HZ, 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Redis server CPU seconds so far (INFO cpu). */
async function redisCpuSeconds(redis: IORedis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/** CPU seconds of each run: this process, and the backend (Temporal server or Redis). */
interface CpuRecord {
  process: number[];
  backend: number[];
}

function newCpuRecord(): CpuRecord {
  return { process: [], backend: [] };
}

/** Runs `run` (which resolves with its wall time) and records the CPU it used in `into`. */
async function meteredRun(
  run: () => Promise<number>,
  backendCpuSeconds: () => number | Promise<number>,
  into: CpuRecord,
): Promise<number> {
  const p0 = process.cpuUsage();
  const b0 = await backendCpuSeconds();
  const wall = await run();
  const p = process.cpuUsage(p0);
  into.process.push((p.user + p.system) / 1e6);
  into.backend.push((await backendCpuSeconds()) - b0);
  return wall;
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
