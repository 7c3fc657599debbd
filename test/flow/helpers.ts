/** Shared pieces of the flow-control tests: one workflow bundle per file, hosts, a receiver. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { createLogger } from '../../src/logger';
import { taskQueueFor, type Tier } from '../../src/shared/constants';
import { WorkerHost, loadWorkflowBundle } from '../../src/workers/host';
import { registerVersion, workerDeploymentOptionsFor } from '../../src/workers/versioning';
import type { SluiceClient } from '../../src/client';
import type { TestEnv } from '../helpers/env';

let bundle: Promise<WorkflowBundleOption> | undefined;

/** The workflow bundle, built once per test file. */
export function sharedBundle(): Promise<WorkflowBundleOption> {
  bundle ??= loadWorkflowBundle();
  return bundle;
}

/** A WorkerHost on this env's queues with the given activities (plus the notify ones it always adds). */
export async function startFlowHost(t: TestEnv, tiers: readonly Tier[], activities: object): Promise<WorkerHost> {
  return WorkerHost.start({
    config: t.config,
    tiers,
    log: createLogger('warn'),
    activities,
    workflowBundle: await sharedBundle(),
    serveHttp: false,
    exportBacklog: false,
  });
}

/**
 * A worker that runs workflows only (no activities registered, so it never polls activity
 * tasks): pipelines get to schedule their sub-jobs while no activity worker runs yet.
 */
export async function startWorkflowOnlyWorker(t: TestEnv, tier: Tier): Promise<{ stop(): Promise<void> }> {
  const connection = await NativeConnection.connect({ address: t.config.temporal.address! });
  // The env's Worker Deployment version, made current as WorkerHost does, so that the workflows
  // run on the same build as the activity host a test starts later (its tasks follow the
  // workflow's version). With SLUICE_VERSIONING=0 both are unversioned.
  const buildId = t.config.versioning.buildId ?? 'test';
  const deployment = workerDeploymentOptionsFor(tier, t.config, buildId);
  const worker = await Worker.create({
    connection,
    taskQueue: taskQueueFor(tier, t.suffix),
    workflowBundle: await sharedBundle(),
    ...(deployment ? { workerDeploymentOptions: deployment } : {}),
  });
  const running = worker.run();
  if (deployment) {
    await registerVersion({
      service: connection.workflowService,
      namespace: 'default',
      deploymentName: deployment.version.deploymentName,
      self: { buildId, source: 'SLUICE_BUILD_ID', bundleBuildId: buildId },
      setCurrent: 'if-unset',
      log: createLogger('warn'),
    });
  }
  return {
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

/** Polls `check` every `everyMs` until it returns true or `timeoutMs` passes (then throws `what`). */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 250) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A request the receiver saw. */
export interface ReceivedRequest {
  at: number;
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** An HTTP receiver on 127.0.0.1:0 whose answers the test decides. */
export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  /** Decides the answer of each request; default 200. */
  respond: (req: http.IncomingMessage, body: string) => { status: number; headers?: Record<string, string> };
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = {
    url: '',
    requests: [],
    respond: () => ({ status: 200 }),
    close: () => Promise.resolve(),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const answer = receiver.respond(req, body);
      receiver.requests.push({ at: Date.now(), status: answer.status, headers: req.headers, body });
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      res.end(JSON.stringify({ ok: answer.status < 300 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}

/** The task queue the first `activity` of a run was scheduled on, from its history. */
export async function scheduledQueue(client: SluiceClient, workflowId: string, activity: string): Promise<string> {
  const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes)
    .find((a) => a?.activityType?.name === activity);
  return scheduled?.taskQueue?.name ?? `(no ${activity} scheduled)`;
}

/** Most requests in any window of `windowMs` (sliding, over arrival times). */
export function maxInWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while ((sorted[hi] as number) - (sorted[lo] as number) >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}
