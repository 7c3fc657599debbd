/**
 * npm run soak — 2,000 mixed pipelines on one machine: video (tiny generated clips), report
 * (DuckDB over generated partitions) and webhook (a jobs pipeline delivering its completion
 * callback to a receiver on 127.0.0.1), across all four tiers and five tenants, at most
 * `--in-flight` at once, against one worker process serving every tier.
 *
 * Prints completions, failures, the worker's RSS after warm-up and at the end (target: growth
 * < 10%), the slope of its RSS after warm-up, and its event-loop lag (from its own /metrics).
 * Bounded: `--count` pipelines and a `--max-minutes` deadline, after which it stops and reports
 * what it has.
 *
 * Warm-up is the first tenth of the run (200 pipelines by default, 5 waves at 40 in flight). A
 * worker serving all four tiers runs four workflow isolates; their V8 heaps, their JIT code and
 * the malloc arenas grow fast while every tier runs every pipeline type its first few times
 * (/proc/<pid>/smaps: the 256 KiB V8 pages +15 MB and [heap] +8 MB from pipeline 50 to 250, with
 * the main thread's heap flat), then by a few MB per 1,000 pipelines, slowing down over a
 * 5,000-pipeline run. The RSS is sampled every 100 pipelines; the slope over the samples after
 * warm-up (MB per 1,000 pipelines) is what a leak would show as.
 *
 *   npm run soak [-- --count 2000 --in-flight 40 --max-minutes 60]
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { resolveFfmpeg } from '../src/activities/media/ffmpeg';
import { generateSampleVideo } from '../src/cli/samples';
import { SluiceClient } from '../src/client';
import { generateOrders } from '../src/data/generate';
import { freePort } from '../src/devserver/dev-server';
import { TIERS } from '../src/shared/constants';
import { REPO, numberArg, rssOf, saveFigures, startBenchEnv } from './harness';
import { workerProcessEnv } from '../src/shared/node-options';

const COUNT = numberArg('count', 2000);
const IN_FLIGHT = numberArg('in-flight', 40);
const MAX_MINUTES = numberArg('max-minutes', 60);
const WARMUP = Math.ceil(COUNT / 10);
const SAMPLE_EVERY = 100;

/** One scrape of /metrics (prom-client resets the event-loop histogram on each collect). */
async function scrape(port: number): Promise<(metric: string) => number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return (metric) => {
    const line = text.split('\n').find((l) => l.startsWith(metric + ' ') || l.startsWith(metric + '{'));
    return line ? Number(line.split(' ').pop()) : undefined;
  };
}

/** Least-squares slope of y over x. */
function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxx > 0 ? sxy / sxx : NaN;
}

async function main(): Promise<void> {
  // The webhook receiver: counts deliveries per idempotency key.
  const deliveries = new Map<string, number>();
  const receiver = http.createServer((req, res) => {
    const key = String(req.headers['idempotency-key'] ?? '');
    deliveries.set(key, (deliveries.get(key) ?? 0) + 1);
    req.resume();
    req.on('end', () => res.writeHead(200).end('{}'));
  });
  const receiverPort = await freePort();
  await new Promise<void>((r) => receiver.listen(receiverPort, '127.0.0.1', r));

  const metricsPort = await freePort();
  const bench = await startBenchEnv('soak', {
    SLUICE_METRICS_PORT: String(metricsPort),
    SLUICE_WEBHOOK_ALLOW: '127.0.0.1',
    SLUICE_WEBHOOK_SECRET: 'soak-secret',
  });
  const { media, env, config } = bench;
  const { ffmpeg } = resolveFfmpeg();
  await generateSampleVideo({
    ffmpeg,
    out: path.join(media, 'clip.mp4'),
    seconds: 2,
    width: 64,
    height: 36,
    fps: 5,
    audio: false,
  });
  await generateOrders({
    dir: config.reports.partitionsDir,
    start: '2025-01',
    months: 3,
    rowsPerMonth: 2_000,
    seed: 7,
  });

  const worker = spawn(process.execPath, [path.join(REPO, 'bin', 'sluice'), 'worker', '--tiers', TIERS.join(',')], {
    env: workerProcessEnv({ ...process.env, ...env }),
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const workerRssMb = () => rssOf(worker.pid ?? 0).currentMB;
  const client = await SluiceClient.connect({ config });
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    await new Promise((r) => setTimeout(r, 200));
  }

  const start = (i: number): Promise<string> => {
    const tier = TIERS[i % TIERS.length] ?? 'default';
    const tenant = `t${i % 5}`;
    const idempotencyKey = `soak-${i}`;
    switch (i % 3) {
      case 0:
        return client
          .startVideoPipeline({
            source: 'clip.mp4',
            renditions: ['240p'],
            package: 'mp4',
            chunkSeconds: 1,
            thumbnails: 1,
            tier,
            tenant,
            idempotencyKey,
          })
          .then((s) => s.workflowId);
      case 1:
        return client
          .startReportPipeline({ from: '2025-01', to: '2025-03', format: 'json', tier, tenant, idempotencyKey })
          .then((s) => s.workflowId);
      default:
        return client
          .startJobsPipeline({
            jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 10 } }],
            webhook: { url: `http://127.0.0.1:${receiverPort}/hook` },
            tier,
            tenant,
            idempotencyKey,
          })
          .then((s) => s.workflowId);
    }
  };
  const runOne = async (i: number): Promise<boolean> => {
    try {
      await client.getResult(await start(i));
      return true;
    } catch (err) {
      process.stderr.write(`pipeline ${i} failed: ${(err as Error).message}\n`);
      return false;
    }
  };

  const deadline = Date.now() + MAX_MINUTES * 60_000;
  let completed = 0;
  let failed = 0;
  let next = 0;
  const t0 = performance.now();
  let rssStart = 0;
  /** [pipelines done, worker RSS MB], every SAMPLE_EVERY pipelines. */
  const samples: [number, number][] = [];
  const lanes = Array.from({ length: IN_FLIGHT }, async () => {
    while (next < COUNT && Date.now() < deadline) {
      const i = next++;
      if ((await runOne(i)) === true) completed++;
      else failed++;
      const done = completed + failed;
      if (done === WARMUP) rssStart = workerRssMb();
      if (done % SAMPLE_EVERY === 0) {
        const rss = workerRssMb();
        samples.push([done, rss]);
        process.stderr.write(`  ${done}/${COUNT} (${failed} failed), worker RSS ${rss.toFixed(0)} MB\n`);
      }
    }
  });
  try {
    await Promise.all(lanes);
    const seconds = (performance.now() - t0) / 1000;
    const rssEnd = workerRssMb();
    const metric = await scrape(metricsPort);
    const lagP99 = metric('sluice_nodejs_eventloop_lag_p99_seconds');
    const lagMax = metric('sluice_nodejs_eventloop_lag_max_seconds');
    const duplicates = [...deliveries.values()].filter((n) => n > 1).length;
    const growth = rssStart > 0 ? (rssEnd - rssStart) / rssStart : NaN;
    const measured = samples.filter(([done]) => done >= WARMUP);
    const mbPer1000 = measured.length >= 2 ? slope(measured) * 1000 : NaN;
    const figures = {
      bench: 'soak',
      cores: os.availableParallelism(),
      requested: COUNT,
      started: next,
      completed,
      failed,
      seconds: Number(seconds.toFixed(1)),
      pipelinesPerSecond: Number((completed / seconds).toFixed(2)),
      warmupPipelines: WARMUP,
      workerRssMbAfterWarmup: Number(rssStart.toFixed(1)),
      workerRssMbAtEnd: Number(rssEnd.toFixed(1)),
      rssGrowth: Number(growth.toFixed(3)),
      rssSlopeMbPer1000AfterWarmup: Number.isFinite(mbPer1000) ? Number(mbPer1000.toFixed(1)) : null,
      rssSamplesMb: samples.map(([done, rss]) => [done, Number(rss.toFixed(1))]),
      eventLoopLagP99Ms: lagP99 === undefined ? null : Number((lagP99 * 1000).toFixed(1)),
      eventLoopLagMaxMs: lagMax === undefined ? null : Number((lagMax * 1000).toFixed(1)),
      webhookDeliveries: deliveries.size,
      webhookKeysDeliveredMoreThanOnce: duplicates,
    };
    saveFigures('soak', figures);
    console.log(
      `soak  ${completed + failed}/${COUNT} pipelines (video, report, webhook; 4 tiers, 5 tenants) in ${seconds.toFixed(0)} s on ${figures.cores} cores`,
    );
    console.log(
      `  completed ${completed}, failed ${failed}  ${failed === 0 && completed === COUNT ? '(all complete: MET)' : '(NOT MET)'}`,
    );
    console.log(
      `  worker RSS after the ${WARMUP}-pipeline warm-up ${rssStart.toFixed(1)} MB → end ${rssEnd.toFixed(1)} MB: growth ${(growth * 100).toFixed(1)}%  (target < 10%)  ${growth < 0.1 ? 'MET' : 'NOT MET'}`,
    );
    console.log(
      `  worker RSS slope after warm-up ${Number.isFinite(mbPer1000) ? mbPer1000.toFixed(1) : '?'} MB per 1,000 pipelines (least squares over ${measured.length} samples)`,
    );
    console.log(
      `  worker event-loop lag p99 ${figures.eventLoopLagP99Ms ?? '?'} ms, max ${figures.eventLoopLagMaxMs ?? '?'} ms`,
    );
    console.log(`  webhook deliveries ${deliveries.size} keys, ${duplicates} delivered more than once`);
  } finally {
    await client.close();
    worker.kill('SIGTERM');
    await new Promise((r) => worker.once('exit', r));
    receiver.close();
    await bench.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
