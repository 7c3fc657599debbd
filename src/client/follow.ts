/**
 * Following a pipeline's progress events as they happen: a long poll on the workflow's
 * `waitProgressEvents` update (it completes only when there is something new, so nothing polls in
 * a loop), resumable after any event ID, ending with the run's final status once it closes.
 */
import { QueryNotRegisteredError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { ProgressEvent } from '../shared/progress-events';
import { progressEventsSinceQuery, waitProgressEventsUpdate } from '../workflows/progress';
import type { SluiceClient } from './index';

/** Least time between two waits on the update. */
const MIN_WAIT_INTERVAL_MS = 100;
/** Query interval once the update is refused (a run with a long history, or an older run). */
const QUERY_POLL_MS = 1_000;

/** How a follow ended. */
export interface FollowEnd {
  workflowId: string;
  /** The run's final status (COMPLETED, FAILED, CANCELLED, TERMINATED, …), or RUNNING when stopped by the caller. */
  status: string;
  /** ID of the last event delivered. */
  lastEventId: number;
}

/** The run does not record progress events (started before they existed, or not a pipeline with progress). */
export class NoProgressEventsError extends Error {
  constructor(readonly workflowId: string) {
    super(`${workflowId} does not record progress events`);
    this.name = 'NoProgressEventsError';
  }
}

/**
 * Delivers every progress event after `after`, in order and once each, then the end. Throws
 * WorkflowNotFoundError for an unknown ID. `signal` stops following (after the wait in flight).
 */
export async function followProgress(
  client: SluiceClient,
  workflowId: string,
  opts: { after?: number; signal?: AbortSignal; onEvent: (e: ProgressEvent) => void },
): Promise<FollowEnd> {
  const handle = client.temporal.workflow.getHandle(workflowId);
  let after = opts.after ?? 0;
  const deliver = (events: ProgressEvent[]) => {
    for (const e of events) {
      // Pages can overlap only if a caller resumes from an old ID: never deliver an event twice.
      if (e.id <= after) continue;
      opts.onEvent(e);
      after = e.id;
    }
  };
  let lastWait = 0;
  let polling = false;
  while (!opts.signal?.aborted) {
    try {
      // Waits at most every MIN_WAIT_INTERVAL_MS: a burst of sub-jobs becomes one page, and one
      // pair of history events, instead of one per sub-job.
      const since = Date.now() - lastWait;
      if (since < (polling ? QUERY_POLL_MS : MIN_WAIT_INTERVAL_MS))
        await new Promise((r) => setTimeout(r, (polling ? QUERY_POLL_MS : MIN_WAIT_INTERVAL_MS) - since));
      lastWait = Date.now();
      if (!polling) {
        deliver(await handle.executeUpdate(waitProgressEventsUpdate, { args: [{ after }] }));
        continue;
      }
      const before = after;
      deliver(await handle.query(progressEventsSinceQuery, { after }));
      // A query answers a closed run too: look at the status when nothing new came.
      if (after !== before) continue;
      const d = await handle.describe();
      if (d.status.name !== 'RUNNING') return { workflowId, status: d.status.name, lastEventId: after };
      continue;
    } catch (err) {
      const d = await handle.describe();
      if (d.status.name === 'RUNNING') {
        if (err instanceof WorkflowUpdateFailedError && !polling) {
          // Rejected (a long history) or unknown (an older run): read the query once a second.
          polling = true;
          continue;
        }
        if (polling && err instanceof QueryNotRegisteredError) throw new NoProgressEventsError(workflowId);
        // A transient error (connection, deadline): wait a moment and wait again.
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      // Closed: the events recorded after the last delivered one come from the closed run.
      for (;;) {
        const page = await handle.query(progressEventsSinceQuery, { after }).catch(() => [] as ProgressEvent[]);
        const before = after;
        deliver(page);
        if (after === before) break;
      }
      return { workflowId, status: d.status.name, lastEventId: after };
    }
  }
  return { workflowId, status: 'RUNNING', lastEventId: after };
}
