/**
 * `sluice capacity [--json]`: desired workers per tier from live task-queue stats, with the
 * planner's explanation of every number. Same planner as the desired-replicas gauge and the
 * local autoscaler.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { TIERS } from '../../shared/constants';
import { plannerSettingsFor } from '../../scaling/exporter';
import { planCapacity, type CapacityPlan } from '../../scaling/planner';
import { mergeDurations, scrapeDurationTotals } from '../../scaling/scrape';
import { describeAllQueues, tierLoad, type QueueStats } from '../../scaling/stats';
import { versionBacklogs, type VersionBacklog } from '../../client/deployments';
import { withClient, type SetExit } from '../context';
import { ExitCode, info, printJson } from '../output';

/** The `capacity` answer: queue stats and one plan per tier. */
export interface CapacityReport {
  namespace: string;
  queues: QueueStats[];
  tiers: CapacityPlan[];
  /** With versioning on: each version's backlog per queue (empty when off). */
  builds: VersionBacklog[];
}

function collect(value: string, previous: string[]): string[] {
  try {
    new URL(value);
  } catch {
    throw new InvalidArgumentError(`metrics-url: not a URL: ${JSON.stringify(value)}`);
  }
  return [...previous, value];
}

/** Registers `sluice capacity`. */
export function registerCapacityCommands(program: Command, setExit: SetExit): void {
  program
    .command('capacity')
    .description('desired workers per tier from live backlog stats, with an explanation of each number')
    .option(
      '--metrics-url <url>',
      'a worker /metrics to read observed activity durations from (repeatable); default: SLUICE_SCALE_TASK_SECONDS',
      collect,
      [] as string[],
    )
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { metricsUrl: string[]; json?: boolean }) => {
      await withClient(async (client) => {
        const config = client.config;
        const queues = await describeAllQueues(
          client.temporal.workflowService,
          config.temporal.namespace,
          config.taskQueueSuffix,
        );
        const durations = mergeDurations(await scrapeDurationTotals(opts.metricsUrl));
        const tiers = TIERS.map((tier) =>
          planCapacity(tierLoad(tier, queues), plannerSettingsFor(tier, config, durations[tier])),
        );
        const builds = config.versioning.enabled
          ? await versionBacklogs({
              service: client.temporal.workflowService,
              namespace: config.temporal.namespace,
              suffix: config.taskQueueSuffix,
            })
          : [];
        const report: CapacityReport = { namespace: config.temporal.namespace, queues, tiers, builds };
        if (opts.json) printJson(report);
        else {
          for (const plan of tiers) {
            const q = plan.inputs;
            info(
              `${plan.tier.padEnd(8)} desired ${plan.desiredReplicas}  (backlog ${q.backlog}, oldest ${q.backlogAgeSeconds.toFixed(1)} s, add ${q.addRate.toFixed(2)}/s, dispatch ${q.dispatchRate.toFixed(2)}/s)`,
            );
            for (const line of plan.explanation) info(`    ${line}`);
            for (const b of builds.filter((x) => x.tier === plan.tier))
              info(
                `    build ${b.buildId}: ${b.queueType} backlog ${b.backlog}, oldest ${b.backlogAgeSeconds.toFixed(1)} s`,
              );
          }
        }
        setExit(ExitCode.ok);
      });
    });
}
