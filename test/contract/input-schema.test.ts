/**
 * The pipelines own their input contract: the schemas apply every default (so a minimal input
 * from any client is complete), accept the documented policy spellings, and name each bad
 * field; the start checks name the queue or ID to use.
 */
import { describe, expect, it } from 'vitest';
import { startContractIssues } from '../../src/shared/contract';
import { ReportPipelineInputSchema } from '../../src/shared/report';
import { VideoPipelineInputSchema, zodIssues } from '../../src/shared/video';

describe('input schemas own their defaults', () => {
  it('completes a minimal video input {source, tenant, idempotencyKey}', () => {
    const input = VideoPipelineInputSchema.parse({ source: 'a.mp4', tenant: 'acme', idempotencyKey: 'k1' });
    expect(input).toEqual({
      source: 'a.mp4',
      tenant: 'acme',
      idempotencyKey: 'k1',
      renditions: ['360p', '720p'],
      chunkSeconds: 30,
      package: 'hls',
      segmentSeconds: 4,
      thumbnails: 3,
      tier: 'default',
      window: 16,
    });
  });

  it('completes a minimal report input {from, to, idempotencyKey}', () => {
    const input = ReportPipelineInputSchema.parse({ from: '2025-01', to: '2025-03', idempotencyKey: 'r1' });
    expect(input).toMatchObject({
      measures: ['orders', 'revenue'],
      groupBy: ['month'],
      format: 'html',
      tier: 'default',
      tenant: 'default',
      policy: { kind: 'fail-fast' },
      window: 12,
      shards: 1,
    });
  });

  it.each([
    ['partial', { kind: 'partial' }],
    ['quorum:3', { kind: 'quorum', k: 3 }],
    ['retry-failed:2', { kind: 'retry-failed', rounds: 2 }],
    ['deadline-partial:60', { kind: 'deadline-partial', deadlineSeconds: 60 }],
    [
      { kind: 'quorum', k: 2 },
      { kind: 'quorum', k: 2 },
    ],
  ])('accepts the policy %j', (policy, parsed) => {
    const input = ReportPipelineInputSchema.parse({ from: '2025-01', to: '2025-06', idempotencyKey: 'r', policy });
    expect(input.policy).toEqual(parsed);
  });

  it('names the field of a bad policy spelling, an unknown field and a bad rendition', () => {
    const report = ReportPipelineInputSchema.safeParse({
      from: '2025-01',
      to: '2025-02',
      idempotencyKey: 'r',
      policy: 'sometimes',
    });
    expect(report.success).toBe(false);
    const policyIssues = zodIssues(report.error!);
    expect(policyIssues.map((i) => i.path)).toEqual(['policy']);
    expect(policyIssues[0]?.message).toContain('unknown policy "sometimes"');

    const quorum = ReportPipelineInputSchema.safeParse({
      from: '2025-01',
      to: '2025-02',
      idempotencyKey: 'r',
      policy: 'quorum:5',
    });
    expect(zodIssues(quorum.error!)).toEqual([{ path: 'policy', message: 'quorum 5 exceeds 2 sub-jobs' }]);

    const video = VideoPipelineInputSchema.safeParse({
      source: 'a.mp4',
      idempotencyKey: 'k',
      colour: 'red',
      renditions: ['999p'],
    });
    const issues = zodIssues(video.error!);
    expect(issues.find((i) => i.path === 'renditions.0')?.message).toContain('unknown rendition');
    expect(issues.map((i) => i.message).join('\n')).toContain("'colour'");
  });
});

describe('a start must agree with its input', () => {
  const input = { tier: 'high', tenant: 'acme', idempotencyKey: 'k1' } as const;

  it('accepts the tier queue with or without a deployment suffix, a scheduled run ID and a dead-letter replay', () => {
    for (const taskQueue of ['sluice-high', 'sluice-high-blue']) {
      for (const workflowId of ['video:acme:k1', 'video:acme:k1-2026-12-01T00:00:00Z', 'video:acme:k1.replay-0a1b2c']) {
        expect(startContractIssues('video', input, { workflowId, taskQueue })).toEqual([]);
      }
    }
  });

  it('names the queue to start on when it is not the tier’s, and the ID to use when it does not match', () => {
    expect(
      startContractIssues(
        'video',
        { ...input, tier: 'low' },
        { workflowId: 'video:acme:k1', taskQueue: 'sluice-high-x' },
      ),
    ).toEqual([
      {
        path: 'tier',
        message:
          'tier is low but the run was started on task queue sluice-high-x: start it on sluice-low-x, or set tier to high',
      },
    ]);
    expect(
      startContractIssues('video', input, { workflowId: 'video:acme:k1', taskQueue: 'elsewhere' })[0]?.message,
    ).toContain('start it on sluice-high');
    for (const workflowId of ['upload-42', 'report:acme:k1', 'video:other:k1', 'video:acme:k12', 'video:acme:k1/x']) {
      const issues = startContractIssues('video', input, { workflowId, taskQueue: 'sluice-high' });
      expect(issues.map((i) => i.path)).toEqual(['workflowId']);
      expect(issues[0]?.message).toContain('must be started as video:acme:k1');
    }
  });
});
