/**
 * `npm run bench:priority`: queues 5,000 low sub-jobs, then starts critical pipelines one after
 * another while the low backlog drains, in one worker process serving `critical` and `low` with
 * the weighted slot pool. Prints the critical tier's schedule-to-start latency (p50, p99; target
 * p99 ≤ 1 s) and the low tier's drain time.
 *
 * Uses TEMPORAL_ADDRESS if set, else starts a private dev server (priority and fairness on).
 * Knobs: BENCH_LOW_JOBS (5000), BENCH_LOW_MS (20), BENCH_CRITICAL (40), BENCH_CRITICAL_EVERY_MS
 * (250), BENCH_SLOTS (12).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { SluiceClient } from '../src/client';
import { loadConfig } from '../src/config';
import { freePort, startDevServer, type DevServerHandle } from '../src/devserver/dev-server';
import { createLogger } from '../src/logger';
import { Tier, parseTaskQueue } from '../src/shared/constants';
import { WorkerHost } from '../src/workers/host';

const num = (name: string, fallback: number): number => {
  // A benchmark script, not the service: its own knobs come straight from the environment.
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const LOW_JOBS = num('BENCH_LOW_JOBS', 5_000);
const LOW_MS = num('BENCH_LOW_MS', 20);
const CRITICAL = num('BENCH_CRITICAL', 40);
const CRITICAL_EVERY_MS = num('BENCH_CRITICAL_EVERY_MS', 250);
const SLOTS = num('BENCH_SLOTS', 12);
const PER_PIPELINE = 500;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  let server: DevServerHandle | undefined;
  let address = process.env.TEMPORAL_ADDRESS;
  if (!address) {
    server = await startDevServer({
      port: await freePort(),
      uiPort: await freePort(),
      dbFile: undefined,
      namespace: 'default',
      cliPath: process.env.TEMPORAL_CLI_PATH,
      extraArgs: ['--headless'],
      log: (l) => process.stderr.write(`[dev-server] ${l}\n`),
    });
    address = server.address;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-priority-'));
  const suffix = `bench-${crypto.randomBytes(3).toString('hex')}`;
  const config = loadConfig(
    {
      TEMPORAL_ADDRESS: address,
      SLUICE_DATA_DIR: path.join(dir, 'data'),
      SLUICE_TASK_QUEUE_SUFFIX: suffix,
      SLUICE_METRICS_PORT: '0',
      SLUICE_SLOTS_TOTAL: String(SLOTS),
      SLUICE_LOG_LEVEL: 'warn',
    },
    dir,
  );

  const latency: Record<'critical' | 'low', number[]> = { critical: [], low: [] };
  const host = await WorkerHost.start({
    config,
    tiers: [Tier.critical, Tier.low],
    log: createLogger('warn'),
    serveHttp: false,
    exportBacklog: false,
    activities: {
      async benchWork(input: { ms: number }): Promise<number> {
        const info = Context.current().info;
        const waited = Date.now() - info.currentAttemptScheduledTimestampMs;
        const tier = parseTaskQueue(info.taskQueue)?.tier;
        if (tier === 'critical' || tier === 'low') latency[tier].push(waited);
        if (input.ms > 0) await Context.current().sleep(input.ms);
        return waited;
      },
    },
  });
  const client = await SluiceClient.connect({ config });
  try {
    process.stderr.write(
      `bench:priority — ${LOW_JOBS} low sub-jobs (${LOW_MS} ms each), then ${CRITICAL} critical pipelines every ${CRITICAL_EVERY_MS} ms; ${SLOTS} slots (critical:low = ${JSON.stringify(config.slotPool.weights.critical)}:${config.slotPool.weights.low})\n`,
    );
    const lowStart = Date.now();
    const lowIds: string[] = [];
    for (let p = 0; p * PER_PIPELINE < LOW_JOBS; p++) {
      const n = Math.min(PER_PIPELINE, LOW_JOBS - p * PER_PIPELINE);
      const { workflowId } = await client.startJobsPipeline({
        tier: Tier.low,
        tenant: `backfill-${p % 4}`,
        idempotencyKey: `low-${suffix}-${p}`,
        window: n,
        jobs: Array.from({ length: n }, () => ({ activity: 'benchWork', input: { ms: LOW_MS } })),
      });
      lowIds.push(workflowId);
    }
    const lowDone = Promise.all(lowIds.map((id) => client.getResult(id))).then(() => Date.now());

    // Critical pipelines arrive once the low backlog is queued (every low sub-job scheduled).
    const queued = async () => {
      const ds = await Promise.all(lowIds.map((id) => client.temporal.workflow.getHandle(id).describe()));
      return ds.reduce((n, d) => n + (d.raw.pendingActivities?.length ?? 0), 0) + latency.low.length;
    };
    for (const deadline = Date.now() + 300_000; (await queued()) < LOW_JOBS && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 500));
    }
    const lowQueuedSeconds = (Date.now() - lowStart) / 1000;
    const critIds: string[] = [];
    for (let i = 0; i < CRITICAL; i++) {
      const { workflowId } = await client.startJobsPipeline({
        tier: Tier.critical,
        tenant: 'acme',
        idempotencyKey: `crit-${suffix}-${i}`,
        jobs: [{ activity: 'benchWork', input: { ms: 10 } }],
      });
      critIds.push(workflowId);
      await new Promise((r) => setTimeout(r, CRITICAL_EVERY_MS));
    }
    await Promise.all(critIds.map((id) => client.getResult(id)));
    const lowLeftWhenCriticalDone = LOW_JOBS - latency.low.length;
    const lowEnd = await lowDone;

    const crit = [...latency.critical].sort((a, b) => a - b);
    const low = [...latency.low].sort((a, b) => a - b);
    const out = {
      criticalP50Ms: percentile(crit, 50),
      criticalP99Ms: percentile(crit, 99),
      criticalMaxMs: crit.at(-1),
      criticalCount: crit.length,
      lowJobs: LOW_JOBS,
      lowQueuedSeconds,
      lowDrainSeconds: (lowEnd - lowStart) / 1000,
      lowLeftWhenCriticalDone,
      lowP50Ms: percentile(low, 50),
      slots: SLOTS,
    };
    process.stderr.write(
      [
        '',
        `critical schedule-to-start  p50 ${out.criticalP50Ms} ms   p99 ${out.criticalP99Ms} ms   max ${out.criticalMaxMs} ms   (${out.criticalCount} sub-jobs; target p99 ≤ 1000 ms: ${out.criticalP99Ms <= 1000 ? 'met' : 'MISSED'})`,
        `low drain                   ${out.lowDrainSeconds.toFixed(1)} s for ${LOW_JOBS} sub-jobs (all queued after ${lowQueuedSeconds.toFixed(1)} s) (${(LOW_JOBS / out.lowDrainSeconds).toFixed(0)}/s); ${lowLeftWhenCriticalDone} still queued when the last critical finished`,
        '',
      ].join('\n'),
    );
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await client.close();
    await host.shutdown();
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:priority failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
