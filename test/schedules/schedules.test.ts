/**
 * Schedules from the declarative file: validation with line numbers, idempotent apply on the
 * real server, and the `sluice schedule` commands (list, describe, pause/unpause, trigger,
 * backfill, delete) with runs that really execute on a worker.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { DuckDbSource } from '../../src/data/duckdb';
import { findTemporalCli } from '../../src/devserver/cli-binary';
import { applySchedules } from '../../src/schedules/apply';
import { ScheduleFileError, loadSchedulesFile, parseSchedules } from '../../src/schedules/file';
import type { WorkerHost } from '../../src/workers/host';
import { oneJson, runSluice } from '../helpers/cli';
import {
  REPO_ROOT,
  connectClient,
  makeTestEnv,
  startHost,
  type TestEnv,
  duckDbSource,
  storageOf,
} from '../helpers/env';
import { reportActivities, smallPartitions } from '../report/helpers';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: DuckDbSource;
const created: string[] = [];

/** The real CLI in this file's env. */
const sluice = (args: string[]) => runSluice(t, args, { timeoutMs: 90_000 });

function errorOf(fn: () => unknown): ScheduleFileError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ScheduleFileError);
    return err as ScheduleFileError;
  }
  throw new Error('expected a ScheduleFileError');
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  t = makeTestEnv('sched');
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 2, 200);
  source = duckDbSource(t);
  host = await startHost(t, ['default', 'low'], reportActivities(source, storageOf(t)));
  client = await connectClient(t);
});

afterAll(async () => {
  for (const id of created)
    await client.temporal.schedule
      .getHandle(id)
      .delete()
      .catch(() => undefined);
  await client?.close();
  await host?.shutdown();
  await source?.close();
});

describe('schedules file', () => {
  it('the repository file ships a nightly calendar report on default and an hourly roll-up on low', () => {
    const defs = loadSchedulesFile(path.join(REPO_ROOT, 'schedules.yaml'));
    expect(defs.map((d) => [d.id, d.tier])).toEqual([
      ['nightly-orders-report', 'default'],
      ['hourly-tenant-rollup', 'low'],
    ]);
    const nightly = defs[0];
    expect(nightly).toMatchObject({
      timezone: 'Europe/Berlin',
      overlap: 'SKIP',
      catchupWindow: '6h',
      pauseOnFailure: true,
    });
    expect(nightly?.calendar?.[0]).toMatchObject({ hour: 2, minute: 30 });
    expect(defs[1]).toMatchObject({ every: '1h' });
  });

  it('a YAML syntax error names its line', () => {
    const err = errorOf(() => parseSchedules('schedules:\n  - id: a\n    tier: [default\n', 'bad.yaml'));
    expect(err.problems[0]?.line).toBeGreaterThanOrEqual(3);
    expect(err.message).toMatch(/bad\.yaml:\d+:/);
  });

  it('a schema error names its line and field', () => {
    const text = [
      'schedules:', // 1
      '  - id: ok-one', // 2
      '    workflow: report', // 3
      '    tier: default', // 4
      '    calendar:', // 5
      '      - hour: 25', // 6
      '    input: { from: 2024-01, to: 2024-02 }', // 7
      '  - id: two', // 8
      '    workflow: report', // 9
      '    tier: urgent', // 10
      '    every: 1h', // 11
      '    input: { from: 2024-01, to: 2024-02, measures: [profit] }', // 12
    ].join('\n');
    const err = errorOf(() => parseSchedules(text, 'x.yaml'));
    expect(err.problems).toEqual([
      expect.objectContaining({ line: 6, path: 'schedules.0.calendar.0.hour' }),
      expect.objectContaining({ line: 10, path: 'schedules.1.tier' }),
    ]);
    // Report input is checked with the same schema as the client's.
    const input = errorOf(() =>
      parseSchedules(text.replace('hour: 25', 'hour: 2').replace('tier: urgent', 'tier: low'), 'x.yaml'),
    );
    expect(input.problems).toHaveLength(1);
    expect(input.problems[0]).toMatchObject({ line: 12, path: 'schedules.1.input.measures.0' });
    expect(input.problems[0]?.message).toContain('unknown measure');
    const policy = errorOf(() =>
      parseSchedules(
        [
          'schedules:',
          '  - id: p',
          '    workflow: report',
          '    tier: low',
          '    every: 1h',
          '    input:',
          '      policy: sometimes',
        ].join('\n'),
      ),
    );
    expect(policy.problems[0]).toMatchObject({ line: 7, path: 'schedules.0.input.policy' });
  });
});

describe('apply on the real server', () => {
  it('creates, then changes nothing on a second apply, and updates only what changed', async () => {
    const defs = loadSchedulesFile(path.join(REPO_ROOT, 'schedules.yaml')).map((d) => ({
      ...d,
      id: `${d.id}-${t.suffix}`,
    }));
    created.push(...defs.map((d) => d.id));
    expect(await applySchedules(client.temporal, defs, t.suffix)).toEqual(
      defs.map((d) => ({ id: d.id, outcome: 'created' })),
    );
    const before = await client.temporal.schedule.getHandle(defs[0]?.id as string).describe();
    expect(before.spec.timezone).toBe('Europe/Berlin');
    expect(before.policies).toMatchObject({ overlap: 'SKIP', pauseOnFailure: true, catchupWindow: 6 * 3600 * 1000 });
    expect(before.action.type === 'startWorkflow' && before.action.taskQueue).toBe(`sluice-default-${t.suffix}`);
    const rollup = await client.temporal.schedule.getHandle(defs[1]?.id as string).describe();
    expect(rollup.action.type === 'startWorkflow' && rollup.action.taskQueue).toBe(`sluice-low-${t.suffix}`);

    expect(await applySchedules(client.temporal, defs, t.suffix)).toEqual(
      defs.map((d) => ({ id: d.id, outcome: 'unchanged' })),
    );
    const after = await client.temporal.schedule.getHandle(defs[0]?.id as string).describe();
    expect(after.info.lastUpdatedAt).toEqual(before.info.lastUpdatedAt);
    expect(after.raw.conflictToken).toEqual(before.raw.conflictToken);

    // Paused by an operator, then the file changes one schedule: it is updated and stays paused.
    await client.temporal.schedule.getHandle(defs[1]?.id as string).pause('maintenance');
    const changed = defs.map((d, i) => (i === 1 ? { ...d, catchupWindow: '30m' } : d));
    expect(await applySchedules(client.temporal, changed, t.suffix)).toEqual([
      { id: defs[0]?.id, outcome: 'unchanged' },
      { id: defs[1]?.id, outcome: 'updated' },
    ]);
    const updated = await client.temporal.schedule.getHandle(defs[1]?.id as string).describe();
    expect(updated.policies.catchupWindow).toBe(30 * 60 * 1000);
    expect(updated.state.paused).toBe(true);
  });
});

describe('sluice schedule commands', () => {
  let file: string;
  let id: string;

  beforeAll(() => {
    id = `cli-report-${t.suffix}`;
    file = path.join(t.dir, 'schedules.yaml');
    fs.writeFileSync(
      file,
      [
        'schedules:',
        `  - id: ${id}`,
        '    description: test schedule',
        '    workflow: report',
        '    tier: default',
        '    every: 1h',
        '    overlap: ALLOW_ALL',
        '    paused: true',
        '    input:',
        '      from: 2024-01',
        '      to: 2024-02',
        '      groupBy: [region]',
        '      tenant: sched',
        '',
      ].join('\n'),
    );
    created.push(id);
  });

  it('apply is idempotent through the CLI, and a malformed file exits 2 with the line', async () => {
    const first = await sluice(['schedule', 'apply', file, '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(oneJson(first)).toEqual({ file, schedules: [{ id, outcome: 'created' }] });
    const second = await sluice(['schedule', 'apply', file, '--json']);
    expect(oneJson(second)).toEqual({ file, schedules: [{ id, outcome: 'unchanged' }] });

    const bad = path.join(t.dir, 'bad.yaml');
    fs.writeFileSync(bad, fs.readFileSync(file, 'utf8').replace('every: 1h', 'every: hourly'));
    const run = await sluice(['schedule', 'apply', bad, '--json']);
    expect(run.code).toBe(2);
    expect(oneJson(run)).toEqual({
      error: 'invalid input',
      issues: [{ path: 'bad.yaml:6', message: 'schedules.0.every: must be a duration like 90s, 10m, 1h or 1d' }],
    });
  });

  it('list, describe, pause/unpause, trigger and backfill; runs execute and show in `temporal schedule list`', async () => {
    const list = oneJson(await sluice(['schedule', 'list', '--json'])) as {
      schedules: { id: string; paused: boolean }[];
    };
    expect(list.schedules.find((s) => s.id === id)).toMatchObject({ paused: true });

    const unpause = await sluice(['schedule', 'unpause', id, '--json']);
    expect(oneJson(unpause)).toEqual({ id, paused: false });
    expect((await client.temporal.schedule.getHandle(id).describe()).state.paused).toBe(false);
    const pause = await sluice(['schedule', 'pause', id, '--note', 'quiet', '--json']);
    expect(oneJson(pause)).toEqual({ id, paused: true });

    expect((await sluice(['schedule', 'trigger', id, '--json'])).code).toBe(0);
    const backfill = await sluice([
      'schedule',
      'backfill',
      id,
      '--from',
      '2025-01-01T00:00:00Z',
      '--to',
      '2025-01-01T03:00:00Z',
      '--json',
    ]);
    expect(backfill.code, backfill.stderr).toBe(0);
    const badRange = await sluice([
      'schedule',
      'backfill',
      id,
      '--from',
      '2025-01-02T00:00:00Z',
      '--to',
      '2025-01-01T00:00:00Z',
    ]);
    expect(badRange.code).toBe(2);

    // One triggered run and the backfilled hours 00:00 … 03:00 (both ends included; ALLOW_ALL), each a real report run.
    const runs = await until('5 scheduled runs to complete', async () => {
      const found: string[] = [];
      for await (const wf of client.temporal.workflow.list({
        query: `WorkflowId STARTS_WITH "report:sched:${id}" AND ExecutionStatus = "Completed"`,
      }))
        found.push(wf.workflowId);
      return found.length >= 5 ? found : undefined;
    });
    expect(runs.length).toBe(5);
    const one = await client.getReportResult(runs[0] as string);
    expect(one.used).toEqual(['2024-01', '2024-02']);

    const described = oneJson(await sluice(['schedule', 'describe', id, '--json'])) as {
      state: { paused: boolean; note: string };
      recentActions: { workflowId: string }[];
    };
    expect(described.state).toMatchObject({ paused: true, note: 'quiet' });
    expect(described.recentActions.length).toBeGreaterThanOrEqual(4);

    // Operators see it in the Temporal CLI too (the one the test server runs on).
    const cli = findTemporalCli();
    expect(cli).toBeDefined();
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(
        cli!.path,
        ['schedule', 'list', '--address', t.env.TEMPORAL_ADDRESS as string, '-o', 'json'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let s = '';
      child.stdout.on('data', (d: Buffer) => (s += d.toString()));
      child.once('error', reject);
      child.once('close', () => resolve(s));
    });
    expect(out).toContain(id);

    const del = await sluice(['schedule', 'delete', id, '--json']);
    expect(oneJson(del)).toEqual({ id, deleted: true });
    const after = oneJson(await sluice(['schedule', 'list', '--json'])) as { schedules: { id: string }[] };
    expect(after.schedules.map((s) => s.id)).not.toContain(id);
  });
});
