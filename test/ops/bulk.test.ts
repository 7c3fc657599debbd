/**
 * Bulk operations on the real dev server through the real CLI: 1,000 runs cancelled by one
 * visibility query (a server batch operation) while another tenant's runs are untouched;
 * terminate and replay by query (fresh runs with the same input, linked, never twice); 200 dead
 * letters replayed at a capped rate; a malformed query exiting 2 and changing nothing; an audit
 * line for every operation.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { FileDlqStore } from '../../src/dlq/store';
import { PipelineKind, pipelineWorkflowId, taskQueueFor } from '../../src/shared/constants';
import type { WorkerHost } from '../../src/workers/host';
import type { JobsPipelineInput } from '../../src/workflows/jobs-pipeline';
import { oneJson, runSluice } from '../helpers/cli';
import { connectClient, makeTestEnv, startHost, type TestEnv } from '../helpers/env';

let t: TestEnv;
let client: SluiceClient;
let host: WorkerHost | undefined;
const tag = crypto.randomBytes(3).toString('hex');

beforeAll(async () => {
  t = makeTestEnv('bulk');
  client = await connectClient(t);
});

afterAll(async () => {
  await host?.shutdown();
  await client?.close();
});

/** Starts `n` jobs pipelines of `tenant` on the low tier, 50 at a time; each would sleep a minute. */
async function startRuns(tenant: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, (_, j) =>
        client.startJobsPipeline({
          tenant,
          tier: 'low',
          idempotencyKey: `run-${i + j}`,
          jobs: [{ activity: 'burstSleep', input: { index: i + j, ms: 60_000 } }],
        }),
      ),
    );
    ids.push(...batch.map((b) => b.workflowId));
  }
  return ids;
}

/** Visibility is eventually consistent: waits until the count reaches `want`. */
async function countReaches(query: string, want: number, timeoutMs = 120_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  let n = -1;
  while (Date.now() < end) {
    n = (await client.temporal.workflow.count(query)).count;
    if (n === want) return n;
    await new Promise((r) => setTimeout(r, 500));
  }
  return n;
}

function auditLines(): Record<string, unknown>[] {
  const file = path.join(t.config.dataDir, 'audit.jsonl');
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('bulk operations by query', () => {
  it('a malformed visibility query exits 2 naming it, and nothing changes', async () => {
    const keep = `keepq${tag}`;
    await startRuns(keep, 2);
    await countReaches(`Tenant = "${keep}" AND ExecutionStatus = "Running"`, 2);
    for (const args of [
      ['cancel', '--query', `Tenant = "${keep}" AND`, '--yes', '--json'],
      ['terminate', '--query', `NoSuchField = "${keep}"`, '--reason', 'x', '--yes', '--json'],
      ['replay', '--query', `Tenant = `, '--yes', '--json'],
    ]) {
      const run = await runSluice(t, args);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/query: malformed visibility query/);
      expect(oneJson(run)).toMatchObject({ error: 'invalid input', issues: [{ path: 'query' }] });
    }
    expect((await client.temporal.workflow.count(`Tenant = "${keep}" AND ExecutionStatus = "Running"`)).count).toBe(2);
  });

  it('cancels 1,000 runs by one query as a batch operation; another tenant’s runs are untouched', async () => {
    const flood = `flood${tag}`;
    const keep = `keep${tag}`;
    await startRuns(flood, 1000);
    await startRuns(keep, 10);
    expect(await countReaches(`Tenant = "${flood}" AND ExecutionStatus = "Running"`, 1000)).toBe(1000);

    const run = await runSluice(t, ['cancel', '--query', `Tenant = "${flood}"`, '--yes', '--json'], {
      timeoutMs: 240_000,
    });
    expect(run.code, run.stderr).toBe(0);
    // The count comes first, then the summary.
    expect(run.stderr).toMatch(/^1000 running runs match/m);
    const out = oneJson(run);
    expect(out).toMatchObject({ op: 'cancel', count: 1000, done: 1000, failed: 0, state: 'completed' });

    // A worker picks the runs up: each sees its cancellation and ends Canceled.
    host = await startHost(t, ['low']);
    expect(await countReaches(`Tenant = "${flood}" AND ExecutionStatus = "Canceled"`, 1000, 200_000)).toBe(1000);
    expect((await client.temporal.workflow.count(`Tenant = "${keep}" AND ExecutionStatus = "Running"`)).count).toBe(10);

    const audit = auditLines().find((a) => a.op === 'cancel' && a.selector === `Tenant = "${flood}"`);
    expect(audit).toMatchObject({ count: 1000, done: 1000, failed: 0, confirmed: true, jobId: out.jobId });
    expect(String(audit?.who)).toMatch(/^sluice-cli:/);
  });

  it('terminates by query with a reason, then replays the terminated runs with the same input, once', async () => {
    const tenant = `term${tag}`;
    const ids = await startRuns(tenant, 3);
    await countReaches(`Tenant = "${tenant}" AND ExecutionStatus = "Running"`, 3);
    const term = await runSluice(t, [
      'terminate',
      '--query',
      `Tenant = "${tenant}"`,
      '--reason',
      'incident 42',
      '--yes',
      '--json',
    ]);
    expect(term.code, term.stderr).toBe(0);
    expect(oneJson(term)).toMatchObject({ op: 'terminate', count: 3, done: 3 });
    const d = await client.temporal.workflow.getHandle(ids[0]!).describe();
    expect(d.status.name).toBe('TERMINATED');

    const query = `Tenant = "${tenant}" AND ExecutionStatus = "Terminated"`;
    await countReaches(query, 3);
    const replay = await runSluice(t, ['replay', '--query', query, '--yes', '--json']);
    expect(replay.code, replay.stderr).toBe(0);
    const out = oneJson(replay) as {
      started: number;
      replays: { workflowId: string; runId: string; replayedAs: string }[];
    };
    expect(out).toMatchObject({ op: 'replay', count: 3, started: 3, existing: 0 });
    for (const r of out.replays) {
      expect(r.replayedAs).toBe(`${r.workflowId}.replay-${r.runId}`);
      const h = client.temporal.workflow.getHandle(r.replayedAs);
      const desc = await h.describe();
      expect(desc.memo).toMatchObject({ replayOf: { workflowId: r.workflowId, runId: r.runId } });
      const firstInput = async (wfId: string) =>
        (await client.temporal.workflow.getHandle(wfId).fetchHistory()).events?.[0]
          ?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
      expect(Buffer.from((await firstInput(r.replayedAs))!).toString()).toBe(
        Buffer.from((await firstInput(r.workflowId))!).toString(),
      );
    }
    const again = await runSluice(t, ['replay', '--query', query, '--yes', '--json']);
    expect(oneJson(again)).toMatchObject({ count: 3, started: 0, existing: 3 });
  });

  it('replays 200 dead letters of one tenant at a capped rate, leaving the others', async () => {
    const tenant = `dead${tag}`;
    const other = `alive${tag}`;
    const store = new FileDlqStore(path.join(t.config.dataDir, 'dlq.jsonl'));
    const add = async (tn: string, i: number) => {
      const input: JobsPipelineInput = {
        tier: 'low',
        tenant: tn,
        idempotencyKey: `dl-${i}`,
        jobs: [{ activity: 'burstSleep', input: { index: i, ms: 1 } }],
      };
      return store.add({
        kind: 'pipeline',
        workflowId: pipelineWorkflowId(PipelineKind.jobs, tn, `dl-${i}`),
        runId: `run-${i}`,
        workflowType: 'jobsPipelineWorkflow',
        taskQueue: taskQueueFor('low', t.suffix),
        input,
        failure: [{ type: 'Boom', message: 'failed for the test' }],
        attempts: 3,
        tenant: tn,
      });
    };
    for (let i = 0; i < 200; i++) await add(tenant, i);
    for (let i = 0; i < 5; i++) await add(other, i);

    const rate = 50;
    const run = await runSluice(
      t,
      [
        'dlq',
        'replay',
        '--filter',
        `tenant=${tenant},kind=pipeline,since=1h`,
        '--rate',
        String(rate),
        '--yes',
        '--json',
      ],
      { timeoutMs: 120_000 },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/^200 dead letters match/m);
    const out = oneJson(run) as { count: number; started: number; seconds: number };
    expect(out).toMatchObject({ count: 200, started: 200, existing: 0, failed: [] });
    // 200 starts spaced 1/50 s apart take at least 199/50 s: the cap held.
    expect(out.seconds).toBeGreaterThanOrEqual(199 / rate - 0.05);

    const records = await store.list({ limit: 1000, includeReplayed: true });
    expect(records.filter((r) => r.tenant === tenant && r.replayedAs)).toHaveLength(200);
    expect(records.filter((r) => r.tenant === other && r.replayedAs)).toHaveLength(0);
    expect(await countReaches(`Tenant = "${tenant}"`, 200)).toBe(200);
    expect(auditLines().find((a) => a.op === 'dlq-replay' && a.count === 200)).toMatchObject({ done: 200, failed: 0 });

    const bad = await runSluice(t, ['dlq', 'replay', '--filter', 'since=yesterday', '--yes']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/filter\.since: must be an age/);
  });
});
