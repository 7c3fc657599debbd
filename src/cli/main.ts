/**
 * `sluice` — a thin commander layer over the client, the worker host and the dev server.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { loadConfig } from '../config';
import { installRuntime, withClient } from './context';
import type { StartVideoOptions } from '../client';
import { TIERS, isTier, type Tier } from '../shared/constants';
import { createLogger } from '../logger';
import { ExitCode, REJECT_WHEN_FULL_HELP, UsageError, info, printJson, reportError } from './output';
import { runUp, runWorker, waitAndReport } from './run';
import { registerCapacityCommands } from './commands/capacity';
import { registerCodecServerCommands } from './commands/codec-server';
import { registerServeArtifactsCommands } from './commands/serve-artifacts';
import { registerDataCommands } from './commands/data';
import { registerReportCommands } from './commands/report';
import { registerScheduleCommands } from './commands/schedule';
import { registerApiCommands } from './commands/api';
import { registerDemoCommands } from './commands/demo';
import { registerDlqCommands } from './commands/dlq';
import { addTierOptions, tierOption } from './tier-option';
import { registerDeployCommands } from './commands/deploy';
import { registerLimitsCommands } from './commands/limits';
import { registerBulkCommands, runBatchByQuery } from './commands/bulk';
import { followStatus } from './commands/follow';

function parseNumber(field: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n))
      throw new InvalidArgumentError(`${field} must be a number, got ${JSON.stringify(value)}`);
    return n;
  };
}

function parseTiers(value: string): Tier[] {
  const tiers = value
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  const bad = tiers.filter((t) => !isTier(t));
  if (tiers.length === 0 || bad.length > 0) {
    throw new InvalidArgumentError(
      `tiers: unknown tier ${bad.join(', ') || '(none)'}; expected some of ${TIERS.join(', ')}`,
    );
  }
  return [...new Set(tiers)] as Tier[];
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('sluice')
    .description('Durable media and report pipelines on Temporal')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('up')
    .description(
      'start the embedded Temporal dev server (unless TEMPORAL_ADDRESS is set), workers for every tier, and a demo pipeline',
    )
    .option('--no-demo', 'do not run the demo pipeline')
    .option('--once', 'exit 0 when the demo is done')
    .option('--demo-seconds <n>', 'length of the generated demo video', parseNumber('demo-seconds'), 120)
    .option('--autoscale', 'run workers as child processes per tier, scaled on backlog (SLUICE_SCALE_MIN…MAX)')
    .action(async (opts: { demo: boolean; once?: boolean; autoscale?: boolean; demoSeconds: number }) => {
      if (!Number.isInteger(opts.demoSeconds) || opts.demoSeconds < 1 || opts.demoSeconds > 3600) {
        throw new UsageError('demo-seconds', 'must be a whole number from 1 to 3600');
      }
      const config = loadConfig();
      installRuntime(config);
      setExit(
        await runUp(config, createLogger(config.logLevel, 'sluice', config.logFormat), {
          demo: opts.demo,
          demoSeconds: opts.demoSeconds,
          once: Boolean(opts.once),
          autoscale: Boolean(opts.autoscale),
        }),
      );
    });

  program
    .command('worker')
    .description('run one Worker per tier in this process')
    .requiredOption('--tiers <list>', `comma-separated tiers (${TIERS.join(',')})`, parseTiers)
    .action(async (opts: { tiers: Tier[] }) => {
      const config = loadConfig();
      installRuntime(config);
      setExit(await runWorker(config, createLogger(config.logLevel, 'sluice', config.logFormat), opts.tiers));
    });

  addTierOptions(program.command('video'))
    .description('transcode a video into renditions, thumbnails and a manifest')
    .argument('<path>', 'input file, inside SLUICE_MEDIA_ROOT')
    // No defaults here: the pipeline's input schema owns them (the help text names them).
    .option('--renditions <list>', 'comma-separated renditions (default: 360p,720p)')
    .option('--chunk-seconds <n>', 'seconds of source per transcode chunk (default: 30)', parseNumber('chunk-seconds'))
    .option(
      '--package <kind>',
      'hls (CMAF segments and a master playlist), dash (the same segments under an MPD), both, or mp4 (progressive files) (default: hls)',
    )
    .option('--segment-seconds <n>', 'seconds per streaming segment, 1-10 (default: 4)', parseNumber('segment-seconds'))
    .option('--quality-check', "score each rendition's first segment with ffmpeg's libvmaf (streaming packages)")
    .option('--thumbnails <n>', 'number of thumbnails (default: 3)', parseNumber('thumbnails'))
    .option('--tenant <tenant>', 'tenant (default: default)')
    .option('--id <key>', 'idempotency key (default: derived from the file and options)')
    .option('--webhook <url>', 'completion callback: a signed POST once the outputs are written')
    .option('--reject-when-full', REJECT_WHEN_FULL_HELP)
    .option('--wait', 'wait for the result')
    .option('--json', 'print one JSON object on stdout')
    .action(async (source: string, opts: Record<string, unknown>) => {
      const json = Boolean(opts.json);
      const start: StartVideoOptions = {
        source,
        renditions:
          typeof opts.renditions !== 'string'
            ? undefined
            : opts.renditions
                .split(',')
                .map((r) => r.trim())
                .filter(Boolean),
        chunkSeconds: opts.chunkSeconds as number | undefined,
        package: opts.package as string | undefined,
        segmentSeconds: opts.segmentSeconds as number | undefined,
        ...(opts.qualityCheck === true ? { qualityCheck: true } : {}),
        thumbnails: opts.thumbnails as number | undefined,
        tier: tierOption(opts),
        tenant: opts.tenant as string | undefined,
        idempotencyKey: opts.id as string | undefined,
        ...(opts.webhook !== undefined ? { webhook: { url: opts.webhook as string } } : {}),
      };
      await withClient(async (client) => {
        const started = await client.startVideoPipeline(start, { rejectWhenFull: opts.rejectWhenFull === true });
        if (!opts.wait) {
          if (json) printJson({ workflowId: started.workflowId, runId: started.runId, status: 'STARTED' });
          else info(`started ${started.workflowId}`);
          return;
        }
        setExit(await waitAndReport(client, started.workflowId, json));
      });
    });

  program
    .command('status')
    .description('status, stage and progress of a pipeline')
    .argument('<workflowId>')
    .option('--follow', 'print stage changes and sub-job progress as they happen, until the run closes')
    .option('--json', 'print one JSON object on stdout')
    .action(async (workflowId: string, opts: { json?: boolean; follow?: boolean }) => {
      if (opts.follow) return followStatus(workflowId, Boolean(opts.json), setExit);
      await withClient(async (client) => {
        const state = await client.getStatus(workflowId);
        if (opts.json) printJson(state);
        else {
          const p = state.progress;
          info(
            `${state.workflowId}  ${state.status}  stage=${state.stage ?? '-'}${p ? `  ${p.done}/${p.total} done, ${p.failed} failed` : ''}`,
          );
        }
      });
    });

  program
    .command('result')
    .description('wait for and print the result of a pipeline')
    .argument('<workflowId>')
    .option('--json', 'print one JSON object on stdout')
    .action(async (workflowId: string, opts: { json?: boolean }) => {
      await withClient(async (client) => setExit(await waitAndReport(client, workflowId, Boolean(opts.json))));
    });

  program
    .command('cancel')
    .description(
      'cancel a pipeline (or every running one matching --query): sub-jobs stop, partial outputs are removed',
    )
    .argument('[workflowId]')
    .option('--query <query>', 'every running run matching this visibility query, as a batch operation')
    .option('--yes', 'with --query: do not ask for confirmation')
    .option('--json', 'print one JSON object on stdout')
    .action(async (workflowId: string | undefined, opts: { json?: boolean; query?: string; yes?: boolean }) => {
      if ((workflowId === undefined) === (opts.query === undefined))
        throw new UsageError('workflowId', 'give a workflow ID or --query, not both');
      if (opts.query !== undefined) return runBatchByQuery('cancel', opts.query, opts, setExit);
      await withClient(async (client) => {
        await client.cancel(workflowId as string);
        if (opts.json) printJson({ workflowId, cancelRequested: true });
        else info(`cancel requested for ${workflowId}`);
      });
    });

  // Command groups from other modules register here, one line each: registerXxxCommands(program, setExit).
  registerCapacityCommands(program, setExit);
  registerDemoCommands(program, setExit);
  registerDlqCommands(program, setExit);
  registerDataCommands(program, setExit);
  registerReportCommands(program, setExit);
  registerScheduleCommands(program, setExit);
  registerApiCommands(program, setExit);
  registerCodecServerCommands(program, setExit);
  registerServeArtifactsCommands(program, setExit);
  registerDeployCommands(program, setExit);
  registerLimitsCommands(program, setExit);
  registerBulkCommands(program, setExit);

  return program;
}

export async function main(argv: string[]): Promise<number> {
  let code: number = ExitCode.ok;
  const program = buildProgram((c) => (code = c));
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successes; every other parse error is a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')
        return ExitCode.ok;
      if (json) printJson({ error: 'invalid usage', message: err.message });
      return ExitCode.invalid;
    }
    return reportError(err, json);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      info(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exit(ExitCode.failed);
    },
  );
}

export { UsageError };
