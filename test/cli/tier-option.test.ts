/**
 * `--tier <tier>` picks the pipeline's queue and priority key; `--priority <tier>` is its
 * documented alias; both together, or an unknown tier, are usage errors (exit 2, nothing started).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { taskQueueFor } from '../../src/shared/constants';
import { oneJson, runSluice } from '../helpers/cli';
import { connectClient, makeTestEnv, type TestEnv } from '../helpers/env';

let t: TestEnv;
let client: SluiceClient;
const started: string[] = [];

beforeAll(async () => {
  t = makeTestEnv('tieropt');
  client = await connectClient(t);
});

afterAll(async () => {
  for (const id of started)
    await client.temporal.workflow
      .getHandle(id)
      .terminate('test over')
      .catch(() => undefined);
  await client?.close();
});

/** `sluice report` for January 2024 with the given extra arguments. */
const report = (id: string, extra: string[]) =>
  runSluice(t, ['report', '--from', '2024-01', '--to', '2024-01', '--tenant', 'tiers', '--id', id, '--json', ...extra]);

/** Runs `report` (it must exit 0) and describes the run it started. */
async function startedRun(id: string, extra: string[]) {
  const run = await report(id, extra);
  expect(run.code, run.stderr).toBe(0);
  const { workflowId } = oneJson(run) as { workflowId: string };
  started.push(workflowId);
  return client.temporal.workflow.getHandle(workflowId).describe();
}

describe('--tier and its alias --priority', () => {
  it('--tier low starts on the low queue with its priority key', async () => {
    const d = await startedRun('by-tier', ['--tier', 'low']);
    expect(d.taskQueue).toBe(taskQueueFor('low', t.suffix));
    expect(d.priority).toMatchObject({ priorityKey: 4, fairnessKey: 'tiers' });
  });

  it('--priority high, the alias, does the same', async () => {
    const d = await startedRun('by-alias', ['--priority', 'high']);
    expect(d.taskQueue).toBe(taskQueueFor('high', t.suffix));
  });

  it('both together, or an unknown tier, exit 2 naming the option, and start nothing', async () => {
    const both = await report('both', ['--tier', 'low', '--priority', 'high']);
    expect(both.code).toBe(2);
    expect(oneJson(both).message).toMatch(/--priority.*--tier|--tier.*--priority/);
    const unknown = await report('unknown', ['--tier', 'urgent']);
    expect(unknown.code).toBe(2);
    expect(oneJson(unknown).message).toMatch(/--tier/);
    for (const id of ['report:tiers:both', 'report:tiers:unknown']) expect(await client.exists(id), id).toBe(false);
  });
});
