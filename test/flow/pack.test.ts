/**
 * Packed sub-jobs (the fan-out's `pack`): the pack runner's per-sub-job retries, failures, resume
 * and cancellation; and on the real server a jobs pipeline whose sub-jobs travel k to a task yet
 * settle one by one under the failure policy.
 */
import { ApplicationFailure, CancelledFailure, Context, activityInfo } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { createPackActivities } from '../../src/activities/pack';
import { ActivityRetryPolicy } from '../../src/activities/retry';
import { InvalidInputError } from '../../src/client';
import { FailureType, PACKED_ACTIVITY } from '../../src/shared/constants';
import type { PackInput, PackResult } from '../../src/shared/fan-out';
import type { JobsPipelineResult } from '../../src/workflows/jobs-pipeline';
import { connectClient, makeTestEnv } from '../helpers/env';
import { startFlowHost } from './helpers';

const jitter = { baseMs: 1, capMs: 2 };

describe('pack runner', () => {
  it('runs each sub-job in order with its own attempts: retries, non-retryable failures and spent budgets stay per sub-job', async () => {
    const seen: { input: string; attempt: number }[] = [];
    const flaky = new Map<string, number>([['b', 2]]);
    const { runPacked } = createPackActivities({
      retry: new ActivityRetryPolicy({ ...jitter, byActivity: { step: { maxAttempts: 3 } } }),
      activities: {
        step(input: string) {
          seen.push({ input, attempt: activityInfo().attempt });
          if (input === 'bad')
            throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: 'bad input' });
          if (input === 'down') throw new Error('downstream down');
          const failuresLeft = flaky.get(input) ?? 0;
          if (failuresLeft > 0) {
            flaky.set(input, failuresLeft - 1);
            throw new Error(`flaky ${input}`);
          }
          return input.toUpperCase();
        },
      },
    });
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 3_000 });
    const input: PackInput = { activity: 'step', inputs: ['a', 'b', 'bad', 'down', 'c'], maxAttempts: 5 };
    const { outcomes }: PackResult = await env.run(runPacked, input);
    expect(outcomes).toEqual([
      { ok: true, value: 'A', attempts: 1 },
      { ok: true, value: 'B', attempts: 3 },
      { ok: false, type: FailureType.InvalidInput, message: 'bad input', attempts: 1 },
      // The type's budget from config (3) is below the workflow's limit (5).
      {
        ok: false,
        type: FailureType.RetriesExhausted,
        message: 'step: 3 of 3 attempts failed; last: downstream down',
        attempts: 3,
      },
      { ok: true, value: 'C', attempts: 1 },
    ]);
    // Each sub-job saw its own attempt number.
    expect(seen.filter((s) => s.input === 'b').map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(seen.filter((s) => s.input === 'down').map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(seen.filter((s) => s.input === 'bad')).toHaveLength(1);
  });

  it('a sub-job that reaches the workflow attempt limit fails as it failed, like an unpacked one (not RetriesExhausted)', async () => {
    let calls = 0;
    const { runPacked } = createPackActivities({
      retry: new ActivityRetryPolicy(jitter),
      activities: {
        down(): never {
          calls++;
          throw new Error('downstream down');
        },
      },
    });
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 3_000 });
    const { outcomes }: PackResult = await env.run(runPacked, { activity: 'down', inputs: [1], maxAttempts: 2 });
    expect(outcomes).toEqual([{ ok: false, type: 'Error', message: 'downstream down', attempts: 2 }]);
    expect(calls).toBe(2);
  });

  it('resumes from its heartbeat: done sub-jobs are skipped, the interrupted one gets its attempts and heartbeat back', async () => {
    const calls: { input: number; attempt: number; details: unknown }[] = [];
    const beats: unknown[] = [];
    const { runPacked } = createPackActivities({
      retry: new ActivityRetryPolicy(jitter),
      activities: {
        work(input: number) {
          const info = activityInfo();
          calls.push({ input, attempt: info.attempt, details: info.heartbeatDetails });
          Context.current().heartbeat(`at ${input}`);
          return input * 10;
        },
      },
    });
    const env = new MockActivityEnvironment({
      heartbeatTimeoutMs: 3_000,
      heartbeatDetails: { packed: [{ ok: true, value: 0, attempts: 1 }], current: 'half of 1', attempts: 2 },
    });
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const result: PackResult = await env.run(runPacked, { activity: 'work', inputs: [0, 1, 2], maxAttempts: 5 });
    expect(result.outcomes.map((o) => (o.ok ? o.value : o.message))).toEqual([0, 10, 20]);
    expect(calls).toEqual([
      { input: 1, attempt: 3, details: 'half of 1' },
      { input: 2, attempt: 1, details: undefined },
    ]);
    // A sub-job's own heartbeat is checkpointed inside the pack's progress.
    expect(beats).toContainEqual({ packed: [{ ok: true, value: 0, attempts: 1 }], current: 'at 1', attempts: 3 });
    expect(beats.at(-1)).toMatchObject({ packed: [{ value: 0 }, { value: 10 }, { value: 20 }] });
  });

  it('a sub-job whose every attempt was lost with the pack (crash, timeout) fails on its own; the rest of the pack runs', async () => {
    const ran: number[] = [];
    const { runPacked } = createPackActivities({
      retry: new ActivityRetryPolicy(jitter),
      activities: {
        work(input: number) {
          ran.push(input);
          return input;
        },
      },
    });
    const env = new MockActivityEnvironment({
      heartbeatTimeoutMs: 3_000,
      heartbeatDetails: { packed: [{ ok: true, value: 0, attempts: 1 }], current: undefined, attempts: 3 },
    });
    const { outcomes }: PackResult = await env.run(runPacked, { activity: 'work', inputs: [0, 1, 2], maxAttempts: 3 });
    expect(outcomes).toEqual([
      { ok: true, value: 0, attempts: 1 },
      {
        ok: false,
        type: FailureType.Timeout,
        message: 'work: the pack was lost during each of its 3 attempts',
        attempts: 3,
      },
      { ok: true, value: 2, attempts: 1 },
    ]);
    expect(ran).toEqual([2]);
  });

  it('a cancelled pack stops with the cancellation; an unknown activity type fails non-retryably', async () => {
    let started = 0;
    const { runPacked } = createPackActivities({
      retry: new ActivityRetryPolicy(jitter),
      activities: {
        async wait(ms: number) {
          started++;
          await Context.current().sleep(ms);
          return ms;
        },
      },
    });
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 3_000 });
    const run = env.run(runPacked, { activity: 'wait', inputs: [10_000, 10_000], maxAttempts: 5 });
    await new Promise((r) => setTimeout(r, 50));
    env.cancel();
    await expect(run).rejects.toBeInstanceOf(CancelledFailure);
    expect(started).toBe(1);

    for (const activity of ['nope', PACKED_ACTIVITY]) {
      const err = await new MockActivityEnvironment()
        .run(runPacked, { activity, inputs: [1], maxAttempts: 5 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect(err).toMatchObject({ type: FailureType.InvalidInput, nonRetryable: true });
      expect((err as Error).message).toContain(JSON.stringify(activity));
    }
  });
});

describe('packed sub-jobs on the real server', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('k sub-jobs per activity task, each with its own result, retry and failure under the policy', async () => {
    const t = makeTestEnv('pack', { SLUICE_SLOTS_DEFAULT: '3', SLUICE_RETRY_BASE_MS: '10', SLUICE_RETRY_CAP_MS: '20' });
    const client = await connectClient(t);
    const failedOnce = new Set<number>();
    const host = await startFlowHost(t, ['default'], {
      work(input: { index: number }): { index: number; attempt: number } {
        if (input.index === 7)
          throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: 'sub-job 7 is bad' });
        if (input.index === 3 && !failedOnce.has(3)) {
          failedOnce.add(3);
          throw new Error('sub-job 3 hiccup');
        }
        return { index: input.index, attempt: activityInfo().attempt };
      },
    });
    cleanups.push(
      () => client.close(),
      () => host.shutdown(),
    );
    const jobs = 23;
    await expect(
      client.startJobsPipeline({
        idempotencyKey: `pack-bad-${t.suffix}`,
        pack: 0,
        jobs: [{ activity: 'work', input: {} }],
      }),
    ).rejects.toThrow(InvalidInputError);
    const handle = await client.startJobsPipeline({
      tier: 'default',
      tenant: 'acme',
      idempotencyKey: `pack-${t.suffix}`,
      window: jobs,
      pack: 5,
      policy: { kind: 'partial' },
      jobs: Array.from({ length: jobs }, (_, index) => ({
        activity: 'work',
        input: { index },
        summary: `item ${index}`,
      })),
    });
    const result = await client.getResult<JobsPipelineResult>(handle.workflowId);
    expect(result.succeeded).toBe(jobs - 1);
    expect(result.failed).toEqual([{ index: 7, type: FailureType.InvalidInput, message: 'sub-job 7 is bad' }]);
    result.results.forEach((r, i) => {
      if (i === 7) expect(r ?? undefined).toBeUndefined();
      else expect(r).toEqual({ index: i, attempt: i === 3 ? 2 : 1 });
    });
    // 23 sub-jobs travelled as ⌈23 / 5⌉ = 5 activity tasks of the pack runner, none on their own.
    const history = await client.temporal.workflow.getHandle(handle.workflowId).fetchHistory();
    const scheduled = (history.events ?? []).flatMap((e) =>
      e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : [],
    );
    expect(scheduled.filter((n) => n === PACKED_ACTIVITY)).toHaveLength(5);
    expect(scheduled.filter((n) => n === 'work')).toHaveLength(0);
  });
});
