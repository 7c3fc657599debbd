/**
 * A pipeline's progress, as operators see it: the `progress` query's `{stage, done, total,
 * failed}`, the stage mirrored into the Stage search attribute (filter runs by stage in the UI
 * and CLI) and into the UI's current details. Every change is also kept as a numbered event, which
 * followers wait for with the `waitProgressEvents` update (a long poll: the update completes when
 * there is something after the follower's last event) or read with the `progressEventsSince`
 * query. Runs in the workflow sandbox.
 */
import {
  condition,
  defineQuery,
  defineUpdate,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { HandlerUnfinishedPolicy } from '@temporalio/common';
import { PROGRESS_EVENTS_PAGE, type ProgressEvent } from '../shared/progress-events';
import { StageKey } from '../shared/search-attributes';
import type { PipelineProgress } from '../shared/video';

/** Query: `{stage, done, total, failed}` of a running video or report pipeline. */
export const progressQuery = defineQuery<PipelineProgress>('progress');

/** Update: waits until there are events after `after`, then returns them (at most a page). */
export const waitProgressEventsUpdate = defineUpdate<ProgressEvent[], [{ after: number }]>('waitProgressEvents');

/** Query: the events after `after` (at most a page), without waiting; works on a closed run too. */
export const progressEventsSinceQuery = defineQuery<ProgressEvent[], [{ after: number }]>('progressEventsSince');

const FIELDS = ['stage', 'done', 'total', 'failed'] as const;

/** History length beyond which `waitProgressEvents` is rejected (Temporal warns at 10,240 events). */
export const FOLLOW_HISTORY_LIMIT = 6_000;

/** Answers the progress query from here on; `setStage` moves the stage everywhere it shows. */
export function trackProgress(firstStage: string): {
  progress: PipelineProgress;
  setStage: (stage: string, details: string) => void;
  /** Records where the run plays (see {@link PipelineProgress.playbackUrl}); followers get an event. */
  setPlaybackUrl: (url: string) => void;
} {
  const state: PipelineProgress = { stage: firstStage, done: 0, total: 0, failed: 0 };
  const events: ProgressEvent[] = [];
  const emit = (type: ProgressEvent['type']) => events.push({ id: events.length + 1, type, ...state });
  // Accessors: the pipelines keep writing `progress.done++`, and every change becomes an event.
  // Nothing here schedules a command, so recorded histories replay unchanged.
  const progress = {} as PipelineProgress;
  for (const key of FIELDS) {
    Object.defineProperty(progress, key, {
      enumerable: true,
      get: () => state[key],
      set: (value: never) => {
        if (state[key] === value) return;
        (state as unknown as Record<string, unknown>)[key] = value;
        emit(key === 'stage' ? 'stage' : 'progress');
      },
    });
  }
  emit('stage');
  const page = (after: number) => events.slice(after, after + PROGRESS_EVENTS_PAGE);
  setHandler(progressQuery, () => ({ ...state }));
  setHandler(progressEventsSinceQuery, ({ after }) => page(after));
  setHandler(
    waitProgressEventsUpdate,
    async ({ after }) => {
      await condition(() => events.length > after);
      return page(after);
    },
    {
      validator: ({ after }) => {
        if (!Number.isInteger(after) || after < 0) throw new Error('after: must be a whole number ≥ 0');
        // Each accepted wait adds two events to this run's history; past this length followers are
        // turned away (a rejected update writes nothing) and read the query instead.
        if (workflowInfo().historyLength > FOLLOW_HISTORY_LIMIT)
          throw new Error(`history past ${FOLLOW_HISTORY_LIMIT} events: read progressEventsSince instead`);
      },
      // A follower still waiting when the run closes is answered from the closed run instead.
      unfinishedPolicy: HandlerUnfinishedPolicy.ABANDON,
    },
  );
  const setStage = (stage: string, details: string) => {
    progress.stage = stage;
    upsertSearchAttributes([{ key: StageKey, value: stage }]);
    setCurrentDetails(`**${stage}** — ${details}`);
  };
  const setPlaybackUrl = (url: string) => {
    if (state.playbackUrl === url) return;
    state.playbackUrl = url;
    emit('progress');
  };
  return { progress, setStage, setPlaybackUrl };
}
