/**
 * `sluice demo burst --jobs 500`: worker processes under the local autoscaler, a burst of
 * short sub-jobs, and the scale-up, the drain and the scale-down printed as they happen.
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../../config';
import { startDevServer, isPortOpen, type DevServerHandle } from '../../devserver/dev-server';
import { createLogger } from '../../logger';
import { runBurst } from '../../demo/burst';
import { MAX_PACK, TIERS, type Tier } from '../../shared/constants';
import { installRuntime, type SetExit } from '../context';
import { ExitCode, info, printJson } from '../output';

function positiveInt(field: string, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`${field} must be a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
    return n;
  };
}

/** Registers `sluice demo …`. */
export function registerDemoCommands(program: Command, setExit: SetExit): void {
  const demo = program.command('demo').description('demonstrations on the embedded default');
  demo
    .command('burst')
    .description('a burst of short sub-jobs: watch the local autoscaler scale up, drain and scale down')
    .option('--jobs <n>', 'sub-jobs in the burst', positiveInt('jobs', 1000), 500)
    .option('--ms <n>', 'duration of each sub-job, ms', positiveInt('ms', 600_000), 200)
    .option(
      '--pack <n>',
      'sub-jobs per activity task, run one after another (1: a task each)',
      positiveInt('pack', MAX_PACK),
      1,
    )
    .addOption(new Option('--tier <tier>', 'tier of the burst').choices([...TIERS]).default('critical'))
    .option('--max <n>', 'most worker processes', positiveInt('max', 64), 4)
    .option(
      '--target-seconds <n>',
      'drain the backlog within this many seconds',
      positiveInt('target-seconds', 86_400),
      10,
    )
    .option('--cooldown-seconds <n>', 'scale-down cooldown', positiveInt('cooldown-seconds', 3600), 10)
    .option('--json', 'print one JSON object (the measurements) on stdout')
    .action(
      async (opts: {
        jobs: number;
        ms: number;
        pack: number;
        tier: Tier;
        max: number;
        targetSeconds: number;
        cooldownSeconds: number;
        json?: boolean;
      }) => {
        const base = loadConfig();
        const config = {
          ...base,
          scaling: {
            ...base.scaling,
            maxReplicas: opts.max,
            minReplicas: Math.min(base.scaling.minReplicas, opts.max),
            targetSeconds: opts.targetSeconds,
            downCooldownMs: opts.cooldownSeconds * 1000,
          },
        };
        installRuntime(config);
        const log = createLogger(config.logLevel, 'sluice', config.logFormat);
        let server: DevServerHandle | undefined;
        if (!config.temporal.address && !(await isPortOpen(config.devServer.port))) {
          info(`starting the Temporal dev server on 127.0.0.1:${config.devServer.port}`);
          server = await startDevServer({
            port: config.devServer.port,
            uiPort: config.devServer.uiPort,
            dbFile: config.devServer.dbFile,
            namespace: config.temporal.namespace,
            cliPath: config.temporalCliPath,
            log: info,
          });
        }
        try {
          info(
            `autoscaler: ${opts.tier} workers between ${config.scaling.minReplicas} and ${opts.max}, poll ${config.scaling.pollMs} ms, drain target ${opts.targetSeconds} s, cooldown ${opts.cooldownSeconds} s`,
          );
          const report = await runBurst({
            config,
            log,
            tier: opts.tier,
            jobs: opts.jobs,
            ms: opts.ms,
            pack: opts.pack,
            print: info,
          });
          const summary = {
            workflowId: report.workflowId,
            drainSeconds: report.drainMs / 1000,
            firstScaleUpSeconds: report.firstScaleUpMs === undefined ? null : report.firstScaleUpMs / 1000,
            maxReplicas: report.maxReplicas,
            changesAfterDrain: report.changesAfterDrain,
            failedActivities: report.failedActivities,
            byProcess: report.result.byProcess,
          };
          if (opts.json) printJson(summary);
          else {
            info(
              `drained in ${summary.drainSeconds.toFixed(1)} s; first scale-up after ${summary.firstScaleUpSeconds?.toFixed(1) ?? '-'} s; up to ${summary.maxReplicas} workers`,
            );
            info(
              `after the drain: ${report.changesAfterDrain.map((c) => `${c.type} ${c.from}→${c.to}`).join(', ') || 'no changes'}; failed activities: ${report.failedActivities}`,
            );
          }
          setExit(report.failedActivities === 0 ? ExitCode.ok : ExitCode.failed);
        } finally {
          await server?.stop();
        }
      },
    );
}
