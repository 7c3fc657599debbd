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
import { ExitCode, info, printJson } from '../output';

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
    .description('start a fresh run with the same input; the record links to it')
    .argument('<id>')
    .option('--json', 'print one JSON object on stdout')
    .action(async (id: string, opts: { json?: boolean }) => {
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
