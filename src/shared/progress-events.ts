/** Progress events of a pipeline, as the workflow records them and the event stream sends them. */
import type { PipelineProgress } from './video';

/**
 * One change of a pipeline's progress: a stage change, or a sub-job settling (done/failed) or the
 * total becoming known. `id` counts from 1 within the run, with no gaps: a follower resumes after
 * the last `id` it saw.
 */
export interface ProgressEvent extends PipelineProgress {
  id: number;
  type: 'stage' | 'progress';
}

/** Events returned by one wait at most (a follower that fell behind catches up in pages). */
export const PROGRESS_EVENTS_PAGE = 500;
