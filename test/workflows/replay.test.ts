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

const DIR = path.resolve(__dirname, '..', 'histories');
/** Recorded file → the workflow ID it was recorded under. */
const index = JSON.parse(fs.readFileSync(path.join(DIR, 'index.json'), 'utf8')) as Record<string, string>;
const files = Object.keys(index).sort();

describe('recorded histories replay deterministically', () => {
  it('has the recorded histories: video completed, failed, batched parent and batch child; report with a webhook, report batched; packed sub-jobs', () => {
    expect(files).toEqual([
      'jobs-packed.json',
      'report-batched.json',
      'report-webhook.json',
      'sub-job-batch.json',
      'video-batched.json',
      'video-completed.json',
      'video-invalid-media.json',
    ]);
  });

  it('replays each of them without a nondeterminism error', async () => {
    const histories = files.map((f) => ({
      workflowId: index[f] as string,
      history: historyFromJSON(JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8'))),
    }));
    const results: { workflowId: string; error?: unknown }[] = [];
    for await (const r of Worker.runReplayHistories(
      { workflowsPath: path.resolve(__dirname, '..', '..', 'src', 'workflows', 'index.ts') },
      histories,
    )) {
      results.push({ workflowId: r.workflowId, error: r.error });
    }
    expect(results.map((r) => r.workflowId).sort()).toEqual(Object.values(index).sort());
    expect(results.filter((r) => r.error !== undefined)).toEqual([]);
  });
});
