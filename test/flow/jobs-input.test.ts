/**
 * The jobs pipeline's input schema (src/shared/jobs.ts) at both ends: the typed client refuses a
 * bad request naming the field and starts nothing; a bad input that reaches the workflow anyway
 * (another SDK, a hand-made start) fails once as a non-retryable InvalidInput naming the field.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, type SluiceClient, type StartJobsOptions } from '../../src/client';
import { FailureType, TIERS, taskQueueFor } from '../../src/shared/constants';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, startHost, type TestEnv } from '../helpers/env';

let t: TestEnv;
let client: SluiceClient;
let host: WorkerHost;

beforeAll(async () => {
  t = makeTestEnv('jobsinput');
  client = await connectClient(t);
});

afterAll(async () => {
  await host?.shutdown();
  await client?.close();
});

const job = { activity: 'burstSleep', input: { index: 0, ms: 1 } };
const ok = { idempotencyKey: 'k1', jobs: [job] };

const cases: { name: string; input: Record<string, unknown>; field: string }[] = [
  { name: 'an unknown tier', input: { ...ok, tier: 'urgent' }, field: 'tier' },
  { name: 'a tier of the wrong type', input: { ...ok, tier: 3 }, field: 'tier' },
  { name: 'tenant in capitals', input: { ...ok, tenant: 'ACME' }, field: 'tenant' },
  { name: 'idempotency key missing', input: { jobs: [job] }, field: 'idempotencyKey' },
  { name: 'idempotency key with a slash', input: { ...ok, idempotencyKey: 'a/b' }, field: 'idempotencyKey' },
  { name: 'jobs empty', input: { ...ok, jobs: [] }, field: 'jobs' },
  { name: 'jobs not a list', input: { ...ok, jobs: 'burstSleep' }, field: 'jobs' },
  { name: 'a sub-job without its activity', input: { ...ok, jobs: [{ input: 1 }] }, field: 'jobs.0.activity' },
  { name: 'a sub-job with an unknown field', input: { ...ok, jobs: [{ ...job, retry: 3 }] }, field: 'jobs.0' },
  { name: 'window zero', input: { ...ok, window: 0 }, field: 'window' },
  { name: 'priorityKey 9', input: { ...ok, priorityKey: 9 }, field: 'priorityKey' },
  { name: 'an unknown policy', input: { ...ok, policy: { kind: 'sometimes' } }, field: 'policy.kind' },
  { name: 'a webhook that is not http', input: { ...ok, webhook: { url: 'ftp://x' } }, field: 'webhook.url' },
  { name: 'a misspelt option', input: { ...ok, windw: 4 }, field: 'windw' },
];

describe('jobs input at the client', () => {
  it.each(cases)('$name → InvalidInputError naming $field', async ({ input, field }) => {
    const err = await client.startJobsPipeline(input as unknown as StartJobsOptions).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).issues.map((i) => i.path)).toContain(field);
    expect((err as InvalidInputError).message).toContain(`${field}: `);
  });

  it('starts nothing for any of them', async () => {
    for (const tier of TIERS) {
      const { executions } = await client.temporal.workflowService.listWorkflowExecutions({
        namespace: t.config.temporal.namespace,
        query: `TaskQueue = '${taskQueueFor(tier, t.suffix)}'`,
      });
      expect(executions).toHaveLength(0);
    }
  });
});

describe('jobs input in the workflow', () => {
  it('a bad input started past the client fails once, non-retryable InvalidInput naming the field', async () => {
    host = await startHost(t, ['default'], {});
    const handle = await client.temporal.workflow.start('jobsPipelineWorkflow', {
      workflowId: `jobs:raw:${t.suffix}`,
      taskQueue: taskQueueFor('default', t.suffix),
      args: [{ tier: 'urgent', tenant: 'raw', idempotencyKey: 'k', jobs: [job], window: 0 }],
    });
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect(cause).toMatchObject({ type: FailureType.InvalidInput, nonRetryable: true });
    expect((cause as ApplicationFailure).message).toContain('tier: ');
    expect((cause as ApplicationFailure).message).toContain('window: ');
    // Failed by the workflow itself: no activity was scheduled.
    const history = await handle.fetchHistory();
    expect(history.events?.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
  });
});
