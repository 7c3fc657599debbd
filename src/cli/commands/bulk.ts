/**
 * Bulk operations by visibility query: `sluice cancel --query`, `sluice terminate --query
 * --reason`, `sluice replay --query`. Cancel and terminate run as Temporal batch operations.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { loadConfig } from '../../config';
import {
  batchProgress,
  countByQuery,
  replayByQuery,
  runningOnly,
  startBatch,
  waitForBatch,
  type BatchKind,
} from '../../client/bulk';
import { confirmCount, operatorIdentity, progressBar, recordAudit } from '../bulk';
import { withClient, type SetExit } from '../context';
import { ExitCode, info, printJson } from '../output';

/** Options every bulk command takes. */
export interface BulkOptions {
  yes?: boolean;
  json?: boolean;
}

function parseRps(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`rps: must be a number > 0, got ${JSON.stringify(value)}`);
  return n;
}

/** Cancels or terminates every running run matching `query` through a server batch operation. */
export async function runBatchByQuery(
  kind: BatchKind,
  query: string,
  opts: BulkOptions & { reason?: string; rps?: number },
  setExit: SetExit,
): Promise<void> {
  const config = loadConfig();
  await withClient(async (client) => {
    // The query as given first, so an error names what the operator typed.
    await countByQuery(client, query);
    const scoped = runningOnly(query);
    const count = await countByQuery(client, scoped);
    const go = await confirmCount(count, `running runs match ${query}`, Boolean(opts.yes));
    if (!go) {
      const audit = recordAudit(config, {
        op: kind,
        selector: query,
        count,
        done: 0,
        failed: 0,
        confirmed: count === 0,
      });
      if (opts.json) printJson({ op: kind, query, count, done: 0, failed: 0, audit });
      else info(count === 0 ? 'nothing to do' : 'aborted: nothing changed');
      return;
    }
    const reason = opts.reason ?? `sluice ${kind} --query by ${operatorIdentity()}`;
    const jobId = await startBatch(client, kind, scoped, {
      reason,
      identity: operatorIdentity(),
      ...(opts.rps ? { maxOperationsPerSecond: opts.rps } : {}),
    });
    const bar = progressBar(count, kind === 'cancel' ? 'cancelling ' : 'terminating');
    const end = await waitForBatch(client, jobId, (p) => bar.update(p.done + p.failed)).finally(() => bar.stop());
    const final = end.state === 'running' ? await batchProgress(client, jobId) : end;
    const audit = recordAudit(config, {
      op: kind,
      selector: query,
      count,
      done: final.done,
      failed: final.failed,
      reason,
      jobId,
      confirmed: true,
    });
    if (opts.json)
      printJson({ op: kind, query, count, done: final.done, failed: final.failed, jobId, state: final.state, audit });
    else info(`${kind}: ${final.done} done, ${final.failed} failed of ${count} (batch job ${jobId}, ${final.state})`);
    if (final.state === 'failed' || final.failed > 0) setExit(ExitCode.failed);
  });
}

/** Registers `sluice terminate` and `sluice replay`. */
export function registerBulkCommands(program: Command, setExit: SetExit): void {
  program
    .command('terminate')
    .description('terminate every running run matching a visibility query (no cleanup runs; prefer cancel)')
    .requiredOption('--query <query>', 'visibility query, e.g. \'Tenant="acme" AND PipelineKind="video"\'')
    .requiredOption('--reason <text>', 'why; recorded in each run’s history and the audit log')
    .option('--rps <n>', 'runs per second the server acts on (default: the server’s)', parseRps)
    .option('--yes', 'do not ask for confirmation')
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: BulkOptions & { query: string; reason: string; rps?: number }) => {
      await runBatchByQuery('terminate', opts.query, opts, setExit);
    });

  program
    .command('replay')
    .description('start a fresh run with the same input for every run matching a visibility query, linked to it')
    .requiredOption('--query <query>', 'visibility query, e.g. \'ExecutionStatus="Failed" AND Tenant="acme"\'')
    .option('--yes', 'do not ask for confirmation')
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: BulkOptions & { query: string }) => {
      const config = loadConfig();
      await withClient(async (client) => {
        const count = await countByQuery(client, opts.query);
        const go = await confirmCount(count, `runs match ${opts.query}`, Boolean(opts.yes));
        if (!go) {
          const audit = recordAudit(config, {
            op: 'replay',
            selector: opts.query,
            count,
            done: 0,
            failed: 0,
            confirmed: count === 0,
          });
          if (opts.json)
            printJson({ op: 'replay', query: opts.query, count, started: 0, existing: 0, failed: [], audit });
          else info(count === 0 ? 'nothing to do' : 'aborted: nothing started');
          return;
        }
        const bar = progressBar(count, 'replaying');
        const summary = await replayByQuery(client, opts.query, { onProgress: (n) => bar.update(n) }).finally(() =>
          bar.stop(),
        );
        const audit = recordAudit(config, {
          op: 'replay',
          selector: opts.query,
          count: summary.matched,
          done: summary.started + summary.existing,
          failed: summary.failed.length,
          confirmed: true,
        });
        if (opts.json) printJson({ op: 'replay', query: opts.query, count: summary.matched, ...summary, audit });
        else {
          info(
            `replay: ${summary.started} started, ${summary.existing} replayed before, ${summary.failed.length} failed of ${summary.matched}`,
          );
          for (const f of summary.failed) info(`  failed ${f.workflowId} (${f.runId}): ${f.error}`);
        }
        if (summary.failed.length > 0) setExit(ExitCode.failed);
      });
    });
}
