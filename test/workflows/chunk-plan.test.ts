/**
 * Chunk plans of the video pipeline (pure functions of the workflow): chunks cover the source with
 * no gap or overlap, a streaming package's chunks start on segment boundaries, and a stream
 * published while the run goes leads with a one-segment chunk so it plays early.
 */
import { describe, expect, it } from 'vitest';
import { planChunks, planLiveChunks, streamChunkSeconds } from '../../src/workflows/video-pipeline';

const covers = (chunks: { startSec: number; durationSec: number }[], total: number) => {
  let at = 0;
  for (const c of chunks) {
    expect(c.startSec).toBeCloseTo(at, 9);
    at += c.durationSec;
  }
  expect(at).toBeCloseTo(total, 9);
};

describe('chunk plans', () => {
  it('planChunks covers the source, folding a final sliver under 0.25 s into the chunk before it', () => {
    covers(planChunks(120, 30), 120);
    expect(planChunks(120, 30)).toHaveLength(4);
    expect(planChunks(60.2, 30).map((c) => c.durationSec)).toEqual([30, 30.200000000000003]);
    expect(planChunks(3, 30)).toEqual([{ startSec: 0, durationSec: 3 }]);
  });

  it('a stream published while the run goes starts with one segment, then whole chunks on segment boundaries', () => {
    const chunkSeconds = streamChunkSeconds(30, 4);
    expect(chunkSeconds).toBe(28);
    const chunks = planLiveChunks(120, chunkSeconds, 4);
    covers(chunks, 120);
    expect(chunks[0]).toEqual({ startSec: 0, durationSec: 4 });
    expect(chunks.map((c) => c.startSec)).toEqual([0, 4, 32, 60, 88, 116]);
    for (const c of chunks) expect(c.startSec % 4).toBe(0);
    // Nothing to lead with: a source of one segment, or chunks no longer than a segment.
    expect(planLiveChunks(4.1, 28, 4)).toEqual(planChunks(4.1, 28));
    expect(planLiveChunks(20, 4, 4)).toEqual(planChunks(20, 4));
  });
});
