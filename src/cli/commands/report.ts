/**
 * `sluice report`: start a report pipeline (and optionally wait for it), following the CLI
 * contract: exit 0 / 1 (pipeline failed) / 2 (invalid input, nothing started), and `--json`
 * printing exactly one JSON object on stdout.
 */
import { Option, type Command } from 'commander';
import type { Artifact } from '../../shared/artifact';
import { WorkflowFailedError } from '@temporalio/client';
import type { SluiceClient, StartReportOptions } from '../../client';
import { GROUP_BY_NAMES, MEASURE_NAMES, REPORT_FORMATS, type ReportFormat } from '../../shared/report';
import { withClient, type SetExit } from '../context';
import {
  ExitCode,
  REJECT_WHEN_FULL_HELP,
  UsageError,
  describeWebhook,
  failureChain,
  info,
  printJson,
  reportError,
} from '../output';
import { addTierOptions, tierOption } from '../tier-option';

const list = (value: unknown): string[] | undefined =>
  typeof value !== 'string'
    ? undefined
    : value
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean);

function count(field: string, value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n))
    throw new UsageError(field, `must be a whole number, got ${JSON.stringify(value)}`);
  return n;
}

/** Waits for a report, printing stage changes to stderr; returns the exit code. */
export async function waitForReport(client: SluiceClient, workflowId: string, json: boolean): Promise<number> {
  let last = '';
  const poll = setInterval(() => {
    client.getProgress(workflowId).then(
      (p) => {
        if (p.stage !== last && !json) info(`  ${workflowId}: ${p.stage} (${p.done}/${p.total})`);
        last = p.stage;
      },
      () => undefined,
    );
  }, 1_000);
  try {
    const result = await client.getReportResult(workflowId);
    if (json) printJson({ workflowId, status: 'COMPLETED', result });
    else {
      info(`completed ${workflowId}${result.partial ? ' (partial)' : ''}`);
      const where = (a: Artifact) => a.path ?? a.uri;
      info(`  ${result.rows} rows: ${where(result.primary)}`);
      info(`  csv ${where(result.csv)}\n  json ${where(result.json)}\n  html ${where(result.html)}`);
      info(`  used: ${result.used.join(', ') || 'none'}`);
      if (result.missing.length) info(`  missing: ${result.missing.map((m) => `${m.month} (${m.reason})`).join(', ')}`);
      if (result.webhook) info(`  ${describeWebhook(result.webhook)}`);
    }
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      const code = reportError(err, false);
      if (json) printJson({ workflowId, status: 'FAILED', failure: failureChain(err.cause) });
      return code;
    }
    throw err;
  } finally {
    clearInterval(poll);
  }
}

/** Registers `sluice report`. */
export function registerReportCommands(program: Command, setExit: SetExit): void {
  addTierOptions(program.command('report'))
    .description('build a report over monthly order partitions (CSV, JSON and HTML)')
    .option('--from <YYYY-MM>', 'first month')
    .option('--to <YYYY-MM>', 'last month (inclusive)')
    .option('--last-months <n>', 'instead of --from/--to: the last N complete months')
    // No defaults here: the pipeline's input schema owns them (the help text names them).
    .option('--measures <list>', `comma-separated: ${MEASURE_NAMES.join(', ')} (default: orders,revenue)`)
    .option('--group-by <list>', `comma-separated: ${GROUP_BY_NAMES.join(', ')} (default: month)`)
    .addOption(new Option('--format <format>', 'primary artifact (default: html)').choices([...REPORT_FORMATS]))
    .option(
      '--policy <policy>',
      'fail-fast | retry-failed[:N] | partial | deadline-partial[:S] | quorum:K (default: fail-fast)',
    )
    .option('--tenant <tenant>', 'tenant (default: default)')
    .option('--tenant-filter <tenant>', "only this data tenant's orders")
    .option('--shards <n>', 'sub-jobs per partition')
    .option('--window <n>', 'sub-jobs in flight')
    .option('--id <key>', 'idempotency key (default: derived from the options)')
    .option('--webhook <url>', 'completion callback: a signed POST once the artifacts are written')
    .option('--reject-when-full', REJECT_WHEN_FULL_HELP)
    .option('--wait', 'wait for the result')
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: Record<string, unknown>) => {
      const json = Boolean(opts.json);
      const start: StartReportOptions = {
        from: opts.from as string | undefined,
        to: opts.to as string | undefined,
        lastMonths: count('last-months', opts.lastMonths),
        measures: list(opts.measures),
        groupBy: list(opts.groupBy),
        format: opts.format as ReportFormat | undefined,
        policy: opts.policy as string | undefined,
        tier: tierOption(opts),
        tenant: opts.tenant as string | undefined,
        tenantFilter: opts.tenantFilter as string | undefined,
        shards: count('shards', opts.shards),
        window: count('window', opts.window),
        idempotencyKey: opts.id as string | undefined,
        ...(opts.webhook !== undefined ? { webhook: { url: opts.webhook as string } } : {}),
      };
      await withClient(async (client) => {
        client.validateReport(start);
        const started = await client.startReportPipeline(start, { rejectWhenFull: opts.rejectWhenFull === true });
        if (!opts.wait) {
          if (json) printJson({ workflowId: started.workflowId, runId: started.runId, status: 'STARTED' });
          else info(`started ${started.workflowId}`);
          return;
        }
        setExit(await waitForReport(client, started.workflowId, json));
      });
    });
}
