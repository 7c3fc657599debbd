/**
 * `sluice version` (this code's build ID) and `sluice deploy status | set-current | ramp |
 * drain-status` over the Worker Deployment APIs (see src/client/deployments.ts).
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { loadConfig } from '../../config';
import {
  deploymentStatus,
  drainStatus,
  rampVersion,
  setCurrentVersion,
  type DeploymentTarget,
} from '../../client/deployments';
import type { SluiceClient } from '../../client';
import { TIERS, deploymentNameFor, isTier, type Tier } from '../../shared/constants';
import { loadWorkflowBundle } from '../../workers/host';
import { buildIdentity } from '../../workers/versioning';
import { withClient, type SetExit } from '../context';
import { ExitCode, info, printJson } from '../output';

function parseTier(value: string): Tier {
  if (!isTier(value))
    throw new InvalidArgumentError(`tier: unknown tier ${value}; expected one of ${TIERS.join(', ')}`);
  return value;
}

function parsePercent(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 100)
    throw new InvalidArgumentError(`percent: must be a number from 0 to 100, got ${JSON.stringify(value)}`);
  return n;
}

function target(client: SluiceClient): DeploymentTarget {
  return {
    service: client.temporal.workflowService,
    namespace: client.config.temporal.namespace,
    suffix: client.config.taskQueueSuffix,
  };
}

const tiersOf = (opts: { tier?: Tier }): readonly Tier[] => (opts.tier ? [opts.tier] : TIERS);

/** Registers `sluice version` and `sluice deploy …`. */
export function registerDeployCommands(program: Command, setExit: SetExit): void {
  program
    .command('version')
    .description('the build ID of this code (SLUICE_BUILD_ID, else a hash of the workflow bundle) and its deployments')
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { json?: boolean }) => {
      const config = loadConfig();
      const build = buildIdentity(config, await loadWorkflowBundle());
      const deployments = TIERS.map((t) => deploymentNameFor(t, config.taskQueueSuffix));
      if (opts.json) printJson({ ...build, versioning: config.versioning.enabled, deployments });
      else {
        process.stdout.write(`${build.buildId}\n`);
        info(`source: ${build.source}; deployments: ${deployments.join(', ')}`);
      }
      setExit(ExitCode.ok);
    });

  const deploy = program
    .command('deploy')
    .description('Worker Deployment Versioning: versions per tier, ramp a new build, make it current, watch drainage');

  deploy
    .command('status')
    .description('each tier: current and ramping build, every version with its pollers, status and open pinned runs')
    .option('--tier <tier>', 'one tier only', parseTier)
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { tier?: Tier; json?: boolean }) => {
      await withClient(async (client) => {
        const deployments = await deploymentStatus(target(client), tiersOf(opts));
        if (opts.json) printJson({ namespace: client.config.temporal.namespace, deployments });
        else {
          for (const d of deployments) {
            const ramp = d.ramping ? `, ramping ${d.ramping} at ${d.rampPercentage}%` : '';
            info(`${d.deploymentName}: current ${d.current ?? '(unversioned)'}${ramp}`);
            for (const v of d.versions)
              info(
                `  ${v.buildId.padEnd(24)} ${v.status.padEnd(9)} pollers ${v.pollers}  open pinned runs ${v.openPinnedRuns}`,
              );
          }
        }
        setExit(ExitCode.ok);
      });
    });

  deploy
    .command('set-current')
    .description('make a build the current version: new runs start on it, AUTO_UPGRADE runs move to it')
    .argument('<build-id>')
    .option('--tier <tier>', 'one tier only (default: every tier)', parseTier)
    .option('--json', 'print one JSON object on stdout')
    .action(async (buildId: string, opts: { tier?: Tier; json?: boolean }) => {
      await withClient(async (client) => {
        const changed = await setCurrentVersion(target(client), buildId, tiersOf(opts));
        if (opts.json) printJson({ buildId, current: changed });
        else
          for (const c of changed) info(`${c.deploymentName}: current ${buildId} (was ${c.previous ?? 'unversioned'})`);
        setExit(ExitCode.ok);
      });
    });

  deploy
    .command('ramp')
    .description('send a percentage of new runs to a build, the rest to the current version')
    .argument('<build-id>')
    .argument('<percent>', '0 to 100', parsePercent)
    .option('--tier <tier>', 'one tier only (default: every tier)', parseTier)
    .option('--json', 'print one JSON object on stdout')
    .action(async (buildId: string, percent: number, opts: { tier?: Tier; json?: boolean }) => {
      await withClient(async (client) => {
        const changed = await rampVersion(target(client), buildId, percent, tiersOf(opts));
        if (opts.json) printJson({ buildId, ramping: changed });
        else for (const c of changed) info(`${c.deploymentName}: ramping ${buildId} at ${c.percent}%`);
        setExit(ExitCode.ok);
      });
    });

  deploy
    .command('drain-status')
    .description('versions no longer current or ramping: draining (pinned runs open) or drained (safe to stop)')
    .option('--tier <tier>', 'one tier only', parseTier)
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { tier?: Tier; json?: boolean }) => {
      await withClient(async (client) => {
        const versions = await drainStatus(target(client), tiersOf(opts));
        if (opts.json) printJson({ versions });
        else if (versions.length === 0) info('no version is draining: every version is current or ramping');
        else
          for (const v of versions)
            info(
              `${v.deploymentName} ${v.buildId}: ${v.drainage}, open pinned runs ${v.openPinnedRuns}, pollers ${v.pollers}${v.checkedAt ? ` (checked ${v.checkedAt})` : ''}`,
            );
        setExit(ExitCode.ok);
      });
    });
}
