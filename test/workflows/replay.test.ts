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

describe('recorded histories replay deterministically', () => {
  it('has the recorded histories: video completed, failed, batched parent and batch child; report with a webhook, report batched; packed sub-jobs; dead-lettered sub-jobs', () => {
    expect(files).toEqual([
      'jobs-dead-letter.json',
      'jobs-packed.json',
      'report-batched.json',
      'report-webhook.json',
      'sub-job-batch.json',
      'video-batched.json',
      'video-completed.json',
      'video-invalid-media.json',
    ]);
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

  it('replays each of them without a nondeterminism error', async () => {
    const histories = files.map((f) => ({
      workflowId: index[f] as string,
      history: historyFromJSON(JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8'))),
    }));
    const results: { workflowId: string; error?: unknown }[] = [];
    // The bundle as worker hosts and `npm run build` make it.
    const workflowBundle = await bundleWorkflows(path.resolve(__dirname, '..', '..', 'src', 'workflows', 'index.ts'));
    for await (const r of Worker.runReplayHistories({ workflowBundle }, histories)) {
      results.push({ workflowId: r.workflowId, error: r.error });
    }
    expect(results.map((r) => r.workflowId).sort()).toEqual(Object.values(index).sort());
    expect(results.filter((r) => r.error !== undefined)).toEqual([]);
  });
});
