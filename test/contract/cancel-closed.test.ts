/**
 * Cancelling a run that has already closed says so: the client throws PipelineClosedError, the
 * CLI exits 1 with "already completed" / "already failed", the HTTP API answers 409.
 */
import type http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer, listen } from '../../src/api/server';
import { PipelineClosedError, type SluiceClient } from '../../src/client';
import type { WorkerHost } from '../../src/workers/host';
import { runSluice } from '../helpers/cli';
import { connectClient, makeTestEnv, startHost, type TestEnv } from '../helpers/env';
import { smallPartitions } from '../report/helpers';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let server: http.Server;
let base: string;
let completed: string;
let failed: string;

beforeAll(async () => {
  t = makeTestEnv('cancel-closed');
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 1);
  host = await startHost(t, ['default']);
  client = await connectClient(t);
  server = createApiServer({ client, bodyLimitBytes: t.config.api.bodyLimitBytes });
  base = `http://127.0.0.1:${await listen(server, 0)}`;
  completed = (
    await client.startReportPipeline({ from: '2024-01', to: '2024-01', tenant: 'acme', idempotencyKey: 'ok' })
  ).workflowId;
  await client.getResult(completed);
  // No partition for 2030-01: the run fails at once with NotFound.
  failed = (await client.startReportPipeline({ from: '2030-01', to: '2030-01', tenant: 'acme', idempotencyKey: 'nf' }))
    .workflowId;
  await expect(client.getResult(failed)).rejects.toThrow();
}, 120_000);

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await client?.close();
  await host?.shutdown();
});

describe('cancelling a closed run', () => {
  it('the client throws PipelineClosedError naming the status', async () => {
    const err = await client.cancel(completed).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PipelineClosedError);
    expect((err as PipelineClosedError).message).toBe(`${completed} is already completed: nothing to cancel`);
    await expect(client.cancel(failed)).rejects.toThrow('is already failed');
  });

  it('the CLI exits 1 saying "already completed"', async () => {
    const run = await runSluice(t, ['cancel', completed]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${completed} is already completed`);
    const json = await runSluice(t, ['cancel', failed, '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ error: `${failed} is already failed: nothing to cancel` });
  });

  it('the HTTP API answers 409 with the status', async () => {
    const res = await fetch(`${base}/v1/pipelines/${encodeURIComponent(failed)}`, { method: 'DELETE' });
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({
      error: `${failed} is already failed: nothing to cancel`,
      workflowId: failed,
      status: 'FAILED',
    });
  });
});
