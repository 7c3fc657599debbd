/** Measuring caps at the activity: overlaps of the attempts' own intervals, and schedule-to-start. */
import type { SluiceClient } from '../../src/client';

/** Most intervals open at one instant (an end and a start at the same millisecond do not overlap). */
export function maxOverlap(intervals: readonly { startedAt: number; endedAt: number }[]): number {
  const edges = intervals.flatMap((i) => [
    { at: i.startedAt, d: 1 },
    { at: i.endedAt, d: -1 },
  ]);
  // Ends before starts at the same instant.
  edges.sort((a, b) => a.at - b.at || a.d - b.d);
  let open = 0;
  let peak = 0;
  for (const e of edges) {
    open += e.d;
    peak = Math.max(peak, open);
  }
  return peak;
}

/** The p-th percentile (nearest rank) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/**
 * Schedule-to-start of each sub-job of a run, in ms: from its ActivityTaskScheduled event to the
 * moment its (last) attempt began work, as the activity reported it. Sub-jobs pair up in order.
 */
export async function scheduleToStartMs(
  client: SluiceClient,
  workflowId: string,
  results: readonly { startedAt: number }[],
): Promise<number[]> {
  const history = await client.temporal.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = (history.events ?? [])
    .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'burstSleep')
    .map((e) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6));
  return results.map((r, i) => r.startedAt - (scheduled[i] ?? NaN));
}
