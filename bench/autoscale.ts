/**
 * `npm run bench:autoscale`: a burst of 500 sub-jobs of 200 ms on one tier, drained once by one
 * fixed worker process and once under the local autoscaler (max 4 processes), in the same run
 * on a private dev server. Prints:
 *
 * - drain time with the autoscaler ÷ drain time with one fixed process (target ≤ 0.6);
 * - time from the burst to the first scale-up (target ≤ poll interval + 2 s);
 * - replica changes once the backlog has drained (a scale-down to the minimum; no flapping);
 * - failed activities across the scale-down (target 0).
 *
 * Not part of `npm test`: timings depend on the machine.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config';
import { freePort, startDevServer } from '../src/devserver/dev-server';
import { createLogger } from '../src/logger';
import { runBurst, type BurstRunReport } from '../src/demo/burst';

const JOBS = 500;
const MS = 200;
const TIER = 'critical' as const;
const POLL_MS = 2_000;
const MAX = 4;

const say = (line: string) => process.stderr.write(line + '\n');

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-autoscale-'));
  const port = await freePort();
  const uiPort = await freePort();
  // Stats TTL 1 s (server default 5 s): the backlog the autoscaler reads is at most 1 s old.
  const server = await startDevServer({
    port,
    uiPort,
    dbFile: undefined,
    namespace: 'default',
    cliPath: undefined,
    log: say,
    extraArgs: ['--dynamic-config-value', 'matching.TaskQueueInfoByBuildIdTTL="1s"', '--headless'],
  });
  const run = async (label: string, max: number): Promise<BurstRunReport> => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TEMPORAL_ADDRESS: server.address,
      SLUICE_DATA_DIR: path.join(dir, label),
      SLUICE_METRICS_PORT: '0',
      SLUICE_LOG_LEVEL: 'warn',
      SLUICE_TASK_QUEUE_SUFFIX: `bench-${label}-${crypto.randomBytes(3).toString('hex')}`,
      SLUICE_SCALE_MIN: '1',
      SLUICE_SCALE_MAX: String(max),
      SLUICE_SCALE_POLL_MS: String(POLL_MS),
      SLUICE_SCALE_TARGET_SECONDS: '10',
      SLUICE_AUTOSCALE_UP_STABILIZATION_MS: '500',
      SLUICE_AUTOSCALE_DOWN_COOLDOWN_MS: '10000',
      SLUICE_SHUTDOWN_GRACE_MS: '10000',
      SLUICE_WORKER_MAX_TASKS: '0',
    };
    const config = loadConfig(env, dir);
    say(`\n== ${label}: ${max === 1 ? 'one fixed worker process' : `autoscaler, 1…${max} processes`} ==`);
    return runBurst({
      config,
      env,
      log: createLogger('warn'),
      tier: TIER,
      jobs: JOBS,
      ms: MS,
      print: (l) => say(`  ${l}`),
      watchMs: max === 1 ? 0 : undefined,
    });
  };
  try {
    const fixed = await run('fixed', 1);
    const scaled = await run('autoscaled', MAX);
    const ratio = scaled.drainMs / fixed.drainMs;
    const reversals = scaled.changesAfterDrain.filter((c) => c.type === 'scale-up').length;
    const lines = [
      '',
      `burst: ${JOBS} sub-jobs × ${MS} ms on ${TIER}; poll ${POLL_MS / 1000} s, up-stabilization 0.5 s, cooldown 10 s`,
      `drain time: autoscaled ${(scaled.drainMs / 1000).toFixed(1)} s ÷ fixed ${(fixed.drainMs / 1000).toFixed(1)} s = ${ratio.toFixed(2)}  (target ≤ 0.6)`,
      `first scale-up: ${scaled.firstScaleUpMs === undefined ? 'never' : `${(scaled.firstScaleUpMs / 1000).toFixed(1)} s`} after the burst  (target ≤ ${(POLL_MS / 1000 + 2).toFixed(0)} s)`,
      `replica changes after the drain: ${scaled.changesAfterDrain.length} (${scaled.changesAfterDrain.map((c) => `${c.type} ${c.from}→${c.to} at ${(c.atMs / 1000).toFixed(1)} s`).join(', ') || 'none'}); scale-ups after the drain: ${reversals}  (target: no flapping)`,
      `failed activities: ${scaled.failedActivities} autoscaled, ${fixed.failedActivities} fixed  (target 0); workers that exited non-zero: ${[...scaled.exits, ...fixed.exits].filter((e) => e.code !== 0).length}`,
      `max processes: ${scaled.maxReplicas}; sub-jobs per process: ${JSON.stringify(scaled.result.byProcess)}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    say(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
