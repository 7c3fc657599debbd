/**
 * A pipeline's progress, as operators see it: the `progress` query's `{stage, done, total,
 * failed}`, the stage mirrored into the Stage search attribute (filter runs by stage in the UI
 * and CLI) and into the UI's current details. Runs in the workflow sandbox.
 */
import { defineQuery, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { StageKey } from '../shared/search-attributes';
import type { PipelineProgress } from '../shared/video';

/** Query: `{stage, done, total, failed}` of a running video or report pipeline. */
export const progressQuery = defineQuery<PipelineProgress>('progress');

/** Answers the progress query from here on; `setStage` moves the stage everywhere it shows. */
export function trackProgress(firstStage: string): {
  progress: PipelineProgress;
  setStage: (stage: string, details: string) => void;
} {
  const progress: PipelineProgress = { stage: firstStage, done: 0, total: 0, failed: 0 };
  setHandler(progressQuery, () => progress);
  const setStage = (stage: string, details: string) => {
    progress.stage = stage;
    upsertSearchAttributes([{ key: StageKey, value: stage }]);
    setCurrentDetails(`**${stage}** — ${details}`);
  };
  return { progress, setStage };
}
