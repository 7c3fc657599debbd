/**
 * `sluice dlq list|show|replay <id>|purge --older-than <age>`: the dead-letter queue
 * (PostgreSQL with DATABASE_URL, else `<SLUICE_DATA_DIR>/dlq.jsonl`).
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { loadConfig } from '../../config';
import { DeadLetterNotFoundError, replayDeadLetter } from '../../client/replay';
import { openDlqStore, type DeadLetter, type DlqStore } from '../../dlq/store';
import { withClient, type SetExit } from '../context';
import { ExitCode, UsageError, info, printJson } from '../output';
import { parseDlqFilter, replayDeadLetters, selectDeadLetters } from '../../client/bulk-replay';
import { confirmCount, progressBar, recordAudit } from '../bulk';

interface BulkDlqOptions {
  all?: boolean;
  filter?: string;
  rate: number;
  yes?: boolean;
  json?: boolean;
}

function parseRate(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`rate: must be a number > 0 (replays per second), got ${JSON.stringify(value)}`);
  return n;
}

/** `dlq replay --all | --filter …`: the count, a confirmation, replays at the rate, a summary, an audit line. */
async function replayMany(opts: BulkDlqOptions, setExit: SetExit): Promise<void> {
  const filter = opts.filter !== undefined ? parseDlqFilter(opts.filter) : undefined;
  if (filter && 'error' in filter) throw new UsageError(filter.path, filter.error);
  const selector = opts.filter ?? 'all';
  const config = loadConfig();
  await withStore(async (store) => {
    const records = await selectDeadLetters(store, filter);
    const go = await confirmCount(records.length, `dead letters match ${selector}`, Boolean(opts.yes));
    if (!go) {
      const audit = recordAudit(config, {
        op: 'dlq-replay',
        selector,
        count: records.length,
        done: 0,
        failed: 0,
        confirmed: records.length === 0,
      });
      if (opts.json) printJson({ op: 'dlq-replay', filter: selector, count: records.length, started: 0, audit });
      else info(records.length === 0 ? 'nothing to do' : 'aborted: nothing started');
      return;
    }
    await withClient(async (client) => {
      const bar = progressBar(records.length, 'replaying');
      const t0 = Date.now();
      const summary = await replayDeadLetters(client, store, records, {
        ratePerSecond: opts.rate,
        onProgress: (n) => bar.update(n),
      }).finally(() => bar.stop());
      const seconds = (Date.now() - t0) / 1000;
      const audit = recordAudit(config, {
        op: 'dlq-replay',
        selector,
        count: records.length,
        done: summary.started + summary.existing,
        failed: summary.failed.length,
        confirmed: true,
      });
      if (opts.json)
        printJson({
          op: 'dlq-replay',
          filter: selector,
          count: records.length,
          rate: opts.rate,
          seconds,
          ...summary,
          audit,
        });
      else {
        info(
          `dlq replay: ${summary.started} started, ${summary.existing} replayed before, ${summary.failed.length} failed of ${records.length} in ${seconds.toFixed(1)} s (≤ ${opts.rate}/s)`,
        );
        for (const f of summary.failed) info(`  failed ${f.id}: ${f.error}`);
      }
      if (summary.failed.length > 0) setExit(ExitCode.failed);
    });
  });
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses `90s`, `30m`, `12h`, `7d`, `2w` into milliseconds. */
export function parseAge(value: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(value.trim());
  if (!m)
    throw new InvalidArgumentError(
      `older-than: expected a number and a unit (s, m, h, d, w), got ${JSON.stringify(value)}`,
    );
  return Number(m[1]) * (UNITS[m[2] as string] as number);
}

async function withStore<T>(fn: (store: DlqStore) => Promise<T>): Promise<T> {
  const store = openDlqStore(loadConfig());
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function line(r: DeadLetter): string {
  const what = r.kind === 'sub-job' ? `${r.activityType ?? '?'}#${r.subJobIndex ?? '?'}` : r.workflowType;
  const last = r.failure[r.failure.length - 1];
  const replay = r.replayedAs ? `  → replayed as ${r.replayedAs}` : '';
  return `${r.id}  ${r.failedAt}  ${r.kind.padEnd(8)} ${r.workflowId}  ${what}  attempts=${r.attempts}  ${last?.type ? `[${last.type}] ` : ''}${last?.message ?? ''}${replay}`;
}

/** Registers `sluice dlq …`. */
export function registerDlqCommands(program: Command, setExit: SetExit): void {
  const dlq = program.command('dlq').description('dead-lettered pipelines and sub-jobs: list, show, replay, purge');

  dlq
    .command('list')
    .description('dead letters, newest first')
    .option('--all', 'include the ones already replayed')
    .option(
      '--limit <n>',
      'at most this many',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('limit: a whole number ≥ 1');
        return n;
      },
      100,
    )
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { all?: boolean; limit: number; json?: boolean }) => {
      await withStore(async (store) => {
        const items = await store.list({ limit: opts.limit, includeReplayed: Boolean(opts.all) });
        if (opts.json) printJson({ store: store.kind, items });
        else if (items.length === 0) info('no dead letters');
        else for (const r of items) info(line(r));
      });
    });

  dlq
    .command('show')
    .description('one dead letter: input, failure chain, attempts, time, replay link')
    .argument('<id>')
    .option('--json', 'print one JSON object on stdout')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withStore(async (store) => {
        const rec = await store.get(id);
        if (!rec) {
          if (opts.json) printJson({ error: 'not found', id });
          info(`error: no dead letter with id ${id}`);
          setExit(ExitCode.invalid);
          return;
        }
        if (opts.json) printJson(rec);
        else info(JSON.stringify(rec, null, 2));
      });
    });

  dlq
    .command('replay')
    .description('start a fresh run with the same input; the record links to it (--all / --filter: many, at --rate)')
    .argument('[id]')
    .option('--all', 'every dead letter not yet replayed')
    .option('--filter <fields>', 'those matching kind=pipeline|sub-job,tenant=…,since=<age or ISO time>')
    .option('--rate <n>', 'with --all/--filter: replays started per second', parseRate, 5)
    .option('--yes', 'with --all/--filter: do not ask for confirmation')
    .option('--json', 'print one JSON object on stdout')
    .action(async (id: string | undefined, opts: BulkDlqOptions) => {
      if ([id !== undefined, Boolean(opts.all), opts.filter !== undefined].filter(Boolean).length !== 1)
        throw new UsageError('id', 'give one of: a dead-letter id, --all, --filter');
      if (id === undefined) return replayMany(opts, setExit);
      await withStore((store) =>
        withClient(async (client) => {
          try {
            const outcome = await replayDeadLetter(client, store, id);
            if (opts.json) printJson(outcome);
            else info(`${outcome.started ? 'replaying' : 'already replayed'} ${id} as ${outcome.replayedAs}`);
          } catch (err) {
            if (!(err instanceof DeadLetterNotFoundError)) throw err;
            if (opts.json) printJson({ error: 'not found', id });
            info(`error: ${err.message}`);
            setExit(ExitCode.invalid);
          }
        }),
      );
    });

  dlq
    .command('purge')
    .description('remove dead letters older than an age')
    .requiredOption('--older-than <age>', 'age such as 30m, 12h, 7d', parseAge)
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { olderThan: number; json?: boolean }) => {
      await withStore(async (store) => {
        const before = new Date(Date.now() - opts.olderThan);
        const removed = await store.purge(before);
        if (opts.json) printJson({ removed, before: before.toISOString() });
        else info(`removed ${removed} dead letters recorded before ${before.toISOString()}`);
      });
    });
}
