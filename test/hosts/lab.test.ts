/**
 * The several-hosts lab itself, with the jobs pipeline (burst sleep sub-jobs) as the work: three
 * hosts that share nothing but the Temporal server and the S3 server on the bridge.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import type { JobsPipelineResult } from '../../src/workflows/jobs-pipeline';
import { hostOf, labClient, startedAttempts } from './helpers';
import { HOST_HOME, createLab, type HostWorker, type Lab } from './netns';

let lab: Lab;
let client: SluiceClient;
const SUFFIX = `hosts-lab-${process.pid}`;
const workers: HostWorker[] = [];

beforeAll(async () => {
  lab = await createLab({ hosts: 3 });
  client = await labClient(lab, SUFFIX);
});

afterAll(async () => {
  await client?.close();
  await lab?.close();
});

const sleeps = (n: number, ms: number) =>
  Array.from({ length: n }, (_, index) => ({ activity: 'burstSleep', input: { index, ms } }));

describe('several hosts', () => {
  it('gives each host its own files, hostname and address, invisible to the others and to the root', () => {
    const [h1, h2, h3] = lab.hosts;
    if (!h1 || !h2 || !h3) throw new Error('three hosts expected');
    h1.exec(['sh', '-c', `echo only-h1 > ${HOST_HOME}/data/marker`]);
    expect(h1.exec(['cat', `${HOST_HOME}/data/marker`]).trim()).toBe('only-h1');
    expect(() => h2.exec(['cat', `${HOST_HOME}/data/marker`])).toThrow();
    expect(fs.existsSync(path.join(HOST_HOME, 'data', 'marker'))).toBe(false);
    // The lab's own folder (S3 data, logs) is in the root's /tmp, which no host sees.
    expect(() => h3.exec(['ls', lab.dir])).toThrow();
    expect(h2.exec(['hostname']).trim()).toBe('sluice-h2');
    expect(h3.exec(['ip', '-4', '-o', 'addr', 'show', 'eth0'])).toContain(`${h3.ip}/24`);
    // Hosts reach the bridge address and nothing else: no default route.
    expect(h1.exec(['ip', 'route'])).not.toContain('default');
  });

  it('spreads a pipeline over three hosts, and a SIGKILLed host’s sub-job finishes on another', async () => {
    for (const host of lab.hosts) {
      workers.push(await host.startWorker(['default'], lab.workerEnv({ SLUICE_TASK_QUEUE_SUFFIX: SUFFIX })));
    }
    // 3 hosts × 4 default slots: 12 long sleeps run at once, so every host holds some.
    const { workflowId } = await client.startJobsPipeline({
      idempotencyKey: 'spread-kill',
      jobs: sleeps(12, 15_000),
      window: 12,
      policy: { kind: 'fail-fast' },
    });
    // Wait until h1 runs a sub-job, then kill every process of h1.
    const h1 = lab.hosts[0];
    if (!h1) throw new Error('no h1');
    const deadline = Date.now() + 60_000;
    for (;;) {
      const pending = (await client.temporal.workflow.getHandle(workflowId).describe()).raw.pendingActivities ?? [];
      if (pending.some((a) => (a.lastWorkerIdentity ?? '').endsWith('@sluice-h1'))) break;
      if (Date.now() > deadline) throw new Error('h1 never started a sub-job');
      await new Promise((r) => setTimeout(r, 200));
    }
    await h1.kill();
    expect(h1.pids()).toEqual([]);

    const result = await client.getResult<JobsPipelineResult>(workflowId);
    expect(result.succeeded).toBe(12);
    const attempts = await startedAttempts(client, workflowId);
    const sleepsRun = attempts.filter((a) => a.activityType === 'burstSleep');
    expect(sleepsRun).toHaveLength(12);
    // Completed sub-jobs ran on the surviving hosts, at least one of them on its second attempt.
    expect(new Set(sleepsRun.map((a) => hostOf(a.identity)))).toEqual(new Set(['h2', 'h3']));
    expect(Math.max(...sleepsRun.map((a) => a.attempt))).toBeGreaterThanOrEqual(2);
  }, 180_000);

  it('times out a cut-off host’s sub-job on heartbeat, finishes it elsewhere, and ignores the late completion', async () => {
    const h2 = lab.hosts[1];
    if (!h2) throw new Error('no h2');
    const { workflowId } = await client.startJobsPipeline({
      idempotencyKey: 'cut-link',
      // Shorter than the heartbeat timeout (30 s): the cut-off attempt finishes while cut off.
      jobs: sleeps(8, 10_000),
      window: 8,
    });
    const handle = client.temporal.workflow.getHandle(workflowId);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      if (pending.some((a) => (a.lastWorkerIdentity ?? '').endsWith('@sluice-h2'))) break;
      if (Date.now() > deadline) throw new Error('h2 never started a sub-job');
      await new Promise((r) => setTimeout(r, 200));
    }
    h2.linkDown();
    let result: JobsPipelineResult;
    try {
      result = await client.getResult<JobsPipelineResult>(workflowId);
    } finally {
      h2.linkUp();
    }
    expect(result.succeeded).toBe(8);
    const sleepsRun = (await startedAttempts(client, workflowId)).filter((a) => a.activityType === 'burstSleep');
    expect(sleepsRun).toHaveLength(8);
    expect(sleepsRun.some((a) => hostOf(a.identity) === 'h2')).toBe(false);
    expect(Math.max(...sleepsRun.map((a) => a.attempt))).toBeGreaterThanOrEqual(2);
    // Back on the network, h2's worker polls again: the next pipeline runs on it too.
    const again = await client.startJobsPipeline({ idempotencyKey: 'after-link', jobs: sleeps(12, 3_000), window: 12 });
    await client.getResult(again.workflowId);
    const hosts = new Set((await startedAttempts(client, again.workflowId)).map((a) => hostOf(a.identity)));
    expect(hosts.has('h2')).toBe(true);
  }, 240_000);

  it('stops and restarts the S3 server on the bridge address', async () => {
    const s3 = lab.s3;
    if (!s3) throw new Error('no S3 server');
    const h3 = lab.hosts[2];
    if (!h3) throw new Error('no h3');
    const { port, hostname } = new URL(s3.endpoint);
    const probe = `exec 3<>/dev/tcp/${hostname}/${port} && echo open`;
    expect(h3.exec(['bash', '-c', probe]).trim()).toBe('open');
    await s3.stop();
    expect(() => h3.exec(['bash', '-c', probe])).toThrow();
    await s3.start();
    expect(h3.exec(['bash', '-c', probe]).trim()).toBe('open');
  });
});
