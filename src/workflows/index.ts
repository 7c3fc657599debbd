/**
 * Workflow bundle entry (`workflowsPath`). Every export is a workflow type, a query, a signal
 * or an update; helpers live in sibling files and are not re-exported.
 */
import { continueAsNew } from '@temporalio/workflow';
import type { FanOutOutcome } from '../shared/fan-out';
import { runBatch, type SubJobBatchInput } from './fan-out';

export { videoPipelineWorkflow } from './video-pipeline';
export { progressQuery, progressEventsSinceQuery, waitProgressEventsUpdate } from './progress';
export { reportPipelineWorkflow } from './report-pipeline';
export { burstWorkflow } from './burst';
export { jobsPipelineWorkflow } from './jobs-pipeline';

/**
 * Child workflow of a large fan-out: runs one batch of sub-jobs as activities on the parent's
 * task queue, continuing as new before its history grows past its limit.
 */
export async function subJobBatchWorkflow(input: SubJobBatchInput): Promise<FanOutOutcome<unknown>> {
  return runBatch(input, (next) => continueAsNew<typeof subJobBatchWorkflow>(next));
}
