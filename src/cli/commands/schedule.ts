/**
 * `sluice schedule apply|list|describe|trigger|backfill|pause|unpause|delete`: recurring
 * pipelines as Temporal schedules, declared in `schedules.yaml`. Invalid files exit 2 with the
 * line of each problem.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidInputError } from '../../client';
import { applySchedules } from '../../schedules/apply';
import { ScheduleFileError, loadSchedulesFile } from '../../schedules/file';
import { withClient, type SetExit } from '../context';
import { ExitCode, UsageError, info, printJson } from '../output';

/** `./schedules.yaml` if present, else the one shipped in the repository. */
function defaultFile(): string {
  const local = path.resolve('schedules.yaml');
  return fs.existsSync(local) ? local : path.resolve(__dirname, '..', '..', '..', 'schedules.yaml');
}

function isoTime(field: string, value: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new UsageError(field, `must be an ISO date-time, got ${JSON.stringify(value)}`);
  return d;
}

/** Registers `sluice schedule …`. */
export function registerScheduleCommands(program: Command, setExit: SetExit): void {
  const schedule = program.command('schedule').description('recurring pipelines (Temporal schedules)');

  schedule
    .command('apply')
    .description('create or update the schedules declared in a file (idempotent)')
    .argument('[file]', 'schedules file (default: ./schedules.yaml, else the repository one)')
    .option('--json', 'print one JSON object on stdout')
    .action(async (file: string | undefined, opts: { json?: boolean }) => {
      const target = file ? path.resolve(file) : defaultFile();
      let defs;
      try {
        defs = loadSchedulesFile(target);
      } catch (err) {
        if (err instanceof ScheduleFileError) {
          throw new InvalidInputError(
            err.problems.map((p) => ({
              path: `${path.basename(target)}:${p.line ?? '?'}`,
              message: `${p.path ? `${p.path}: ` : ''}${p.message}`,
            })),
          );
        }
        throw err;
      }
      await withClient(async (client) => {
        const results = await applySchedules(client.temporal, defs, client.config);
        if (opts.json) printJson({ file: target, schedules: results });
        else for (const r of results) info(`${r.id}: ${r.outcome}`);
        setExit(ExitCode.ok);
      });
    });

  schedule
    .command('list')
    .description('schedules with their next runs')
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { json?: boolean }) => {
      await withClient(async (client) => {
        const list: { id: string; paused: boolean; workflowType?: string; nextRuns: string[]; note?: string }[] = [];
        for await (const s of client.temporal.schedule.list()) {
          list.push({
            id: s.scheduleId,
            paused: s.state.paused,
            workflowType: s.action?.type === 'startWorkflow' ? s.action.workflowType : undefined,
            nextRuns: (s.info.nextActionTimes ?? []).slice(0, 3).map((d) => d.toISOString()),
            note: s.state.note,
          });
        }
        if (opts.json) printJson({ schedules: list });
        else
          for (const s of list)
            info(`${s.id}  ${s.paused ? 'PAUSED' : 'active'}  ${s.workflowType ?? '-'}  next ${s.nextRuns[0] ?? '-'}`);
      });
    });

  schedule
    .command('describe')
    .description('spec, policies, state and recent runs of a schedule')
    .argument('<id>')
    .option('--json', 'print one JSON object on stdout')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withClient(async (client) => {
        const d = await client.temporal.schedule.getHandle(id).describe();
        const out = {
          id: d.scheduleId,
          spec: d.spec,
          policies: d.policies,
          state: d.state,
          action:
            d.action.type === 'startWorkflow'
              ? {
                  workflowType: d.action.workflowType,
                  taskQueue: d.action.taskQueue,
                  workflowId: d.action.workflowId,
                  args: d.action.args,
                }
              : d.action,
          recentActions: d.info.recentActions.map((a) => ({
            scheduledAt: a.scheduledAt.toISOString(),
            takenAt: a.takenAt.toISOString(),
            workflowId: a.action.workflow.workflowId,
          })),
          nextActionTimes: d.info.nextActionTimes.slice(0, 5).map((t) => t.toISOString()),
          runningActions: d.info.runningActions.map((a) => a.workflow.workflowId),
        };
        if (opts.json) printJson(out);
        else info(JSON.stringify(out, null, 2));
      });
    });

  schedule
    .command('trigger')
    .description('start one run now')
    .argument('<id>')
    .option('--json', 'print one JSON object on stdout')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withClient(async (client) => {
        await client.temporal.schedule.getHandle(id).trigger('ALLOW_ALL');
        if (opts.json) printJson({ id, triggered: true });
        else info(`triggered ${id}`);
      });
    });

  schedule
    .command('backfill')
    .description('run the schedule for every time it would have fired in [from, to)')
    .argument('<id>')
    .requiredOption('--from <iso>', 'start (ISO date-time)')
    .requiredOption('--to <iso>', 'end (ISO date-time)')
    .option('--json', 'print one JSON object on stdout')
    .action(async (id: string, opts: { from: string; to: string; json?: boolean }) => {
      const start = isoTime('from', opts.from);
      const end = isoTime('to', opts.to);
      if (start >= end) throw new UsageError('from', `from ${opts.from} is not before to ${opts.to}`);
      await withClient(async (client) => {
        await client.temporal.schedule.getHandle(id).backfill({ start, end, overlap: 'ALLOW_ALL' });
        if (opts.json) printJson({ id, backfill: { from: start.toISOString(), to: end.toISOString() } });
        else info(`backfill requested for ${id}: ${start.toISOString()} … ${end.toISOString()}`);
      });
    });

  for (const [name, verb] of [
    ['pause', 'pause'],
    ['unpause', 'unpause'],
  ] as const) {
    schedule
      .command(name)
      .description(`${verb} a schedule`)
      .argument('<id>')
      .option('--note <text>', 'why')
      .option('--json', 'print one JSON object on stdout')
      .action(async (id: string, opts: { note?: string; json?: boolean }) => {
        await withClient(async (client) => {
          const handle = client.temporal.schedule.getHandle(id);
          await (verb === 'pause' ? handle.pause(opts.note) : handle.unpause(opts.note));
          if (opts.json) printJson({ id, paused: verb === 'pause' });
          else info(`${verb}d ${id}`);
        });
      });
  }

  schedule
    .command('delete')
    .description('delete a schedule (its past runs stay)')
    .argument('<id>')
    .option('--json', 'print one JSON object on stdout')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withClient(async (client) => {
        await client.temporal.schedule.getHandle(id).delete();
        if (opts.json) printJson({ id, deleted: true });
        else info(`deleted ${id}`);
      });
    });
}
