/**
 * Determinism guard: every recorded history in test/histories replays against the current
 * workflow code without a nondeterminism error. Re-record with scripts/record-histories.ts
 * only for an intended, versioned change.
 */
import fs from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { bundleWorkflows } from '../../src/workers/bundle';

const DIR = path.resolve(__dirname, '..', 'histories');
/** Recorded file → the workflow ID it was recorded under. */
const index = JSON.parse(fs.readFileSync(path.join(DIR, 'index.json'), 'utf8')) as Record<string, string>;
const files = Object.keys(index).sort();

/** The task queue a recorded run was started on (its first event). */
function startedQueue(history: ReturnType<typeof historyFromJSON>): string {
  const queue = history.events?.[0]?.workflowExecutionStartedEventAttributes?.taskQueue?.name;
  if (!queue) throw new Error('a recorded history must begin with its WorkflowExecutionStarted event');
  return queue;
}

/**
 * Replays histories against a bundle; one message per history that does not replay, saying what
 * to do: the change is fine only as a new build (PINNED runs finish on the old one).
 *
 * Each history replays on a worker named after the task queue its run was started on (the SDK
 * names a replay worker's queue `<replayName>-<n>`), as a production worker replays its own
 * runs: the pipelines check their start contract (tier = the task queue's tier) on replay too.
 */
async function replayFailures(workflowBundle: { code: string }, names: string[]): Promise<string[]> {
  const byQueue = new Map<string, { workflowId: string; history: ReturnType<typeof historyFromJSON> }[]>();
  for (const f of names) {
    const history = historyFromJSON(JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')));
    const queue = startedQueue(history);
    byQueue.set(queue, [...(byQueue.get(queue) ?? []), { workflowId: index[f] ?? f, history }]);
  }
  const byId = new Map(names.map((f) => [index[f] ?? f, f]));
  const messages: string[] = [];
  for (const [replayName, histories] of byQueue) {
    for await (const r of Worker.runReplayHistories({ workflowBundle, replayName }, histories)) {
      if (r.error === undefined) continue;
      messages.push(
        `test/histories/${byId.get(r.workflowId) ?? r.workflowId} (workflow ${r.workflowId}) does not replay on this code: ` +
          `${r.error instanceof Error ? r.error.message.split('\n')[0] : String(r.error)}. Runs started on the previous code ` +
          'would fail on it: deploy it as a new build ID (leave SLUICE_BUILD_ID unset so the bundle hash changes, or set a new one) ' +
          'and roll it out with `sluice deploy ramp` / `set-current`, or guard the change with patched(); re-record only for an intended change.',
      );
    }
  }
  return messages;
}

describe('recorded histories replay deterministically', () => {
  it('has the recorded histories: video completed (mp4 and hls), failed, batched parent and batch child; report with a webhook, report batched; packed sub-jobs; dead-lettered sub-jobs', () => {
    expect(files).toEqual([
      'jobs-dead-letter.json',
      'jobs-packed.json',
      'report-batched.json',
      'report-webhook.json',
      'sub-job-batch.json',
      'video-batched.json',
      'video-completed.json',
      'video-hls-live.json',
      'video-hls.json',
      'video-invalid-media.json',
    ]);
  });

  it('covers publishing while the run goes: every chunk published once, in order per rendition, the master once, each rendition finished', () => {
    const { events } = JSON.parse(fs.readFileSync(path.join(DIR, 'video-hls-live.json'), 'utf8')) as {
      events: {
        activityTaskScheduledEventAttributes?: {
          activityType: { name: string };
          input?: { payloads?: { data?: string }[] };
        };
      }[];
    };
    const scheduled = events.flatMap((e) => {
      const a = e.activityTaskScheduledEventAttributes;
      if (!a) return [];
      const data = a.input?.payloads?.[0]?.data;
      const input = data ? (JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as Record<string, unknown>) : {};
      return [{ name: a.activityType.name, input }];
    });
    const of = (name: string) => scheduled.filter((s) => s.name === name);
    expect(of('publishChunk')).toHaveLength(of('transcodeChunk').length);
    for (const rendition of ['240p', '360p']) {
      const order = of('publishChunk')
        .filter((s) => s.input.rendition === rendition)
        .map((s) => s.input.chunkIndex);
      expect(order).toEqual(order.map((_, i) => i));
    }
    expect(of('publishMaster')).toHaveLength(1);
    expect(of('finishRendition')).toHaveLength(2);
    expect(of('packageRendition')).toHaveLength(0);
  });

  it('covers the dead-letter path: three sub-jobs fail for good, each followed by a recordDeadLetter activity', () => {
    const { events } = JSON.parse(fs.readFileSync(path.join(DIR, 'jobs-dead-letter.json'), 'utf8')) as {
      events: { eventType: string; activityTaskScheduledEventAttributes?: { activityType: { name: string } } }[];
    };
    const scheduled = events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType.name ?? []);
    expect(events.filter((e) => e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_FAILED')).toHaveLength(3);
    expect(scheduled.filter((name) => name === 'recordDeadLetter')).toHaveLength(3);
    expect(scheduled.filter((name) => name === 'burstSleep')).toHaveLength(5);
  });

  it('every history in test/histories is listed in index.json', () => {
    const onDisk = fs
      .readdirSync(DIR)
      .filter((f) => f.endsWith('.json') && f !== 'index.json')
      .sort();
    expect(onDisk).toEqual(files);
  });

  it('replays each of them without a nondeterminism error', async () => {
    // The bundle as worker hosts and `npm run build` make it.
    const workflowBundle = await bundleWorkflows(path.resolve(__dirname, '..', '..', 'src', 'workflows', 'index.ts'));
    expect(await replayFailures(workflowBundle, files)).toEqual([]);
  });

  it('code that cannot replay a history fails with a message asking for a new build ID', async () => {
    // Build B of the rollout test: the video pipeline's first command differs.
    const variant = await bundleWorkflows(path.resolve(__dirname, '..', 'rollout', 'workflows-b.ts'));
    const messages = await replayFailures(variant, ['video-completed.json']);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/test\/histories\/video-completed\.json .* does not replay on this code/);
    expect(messages[0]).toMatch(/new build ID/);
  });
});
