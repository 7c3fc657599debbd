/**
 * Workflow bundle entry (`workflowsPath`). Every export is a workflow type, a query, a signal
 * or an update; helpers live in sibling files and are not re-exported.
 */
import { continueAsNew, setWorkflowOptions } from '@temporalio/workflow';
import type { FanOutOutcome } from '../shared/fan-out';
import { burstWorkflow } from './burst';
import { runBatch, type SubJobBatchInput } from './fan-out';
import { jobsPipelineWorkflow } from './jobs-pipeline';
import { reportPipelineWorkflow } from './report-pipeline';
import { videoPipelineWorkflow } from './video-pipeline';
import { tenantGateWorkflow } from './tenant-gate';
import { whenVersioned } from './versioning';

export { videoPipelineWorkflow, reportPipelineWorkflow, burstWorkflow, jobsPipelineWorkflow };
export { progressQuery, progressEventsSinceQuery, waitProgressEventsUpdate } from './progress';
export { tenantGateWorkflow };
export {
  tenantGateRequestSignal,
  tenantGateCapsSignal,
  tenantGateGrantSignal,
  tenantGateStateQuery,
} from './tenant-gate';

/**
 * Child workflow of a large fan-out: runs one batch of sub-jobs as activities on the parent's
 * task queue, continuing as new before its history grows past its limit.
 */
export async function subJobBatchWorkflow(input: SubJobBatchInput): Promise<FanOutOutcome<unknown>> {
  return runBatch(input, (next) => continueAsNew<typeof subJobBatchWorkflow>(next));
}

// Worker Deployment Versioning, one place for every workflow type. PINNED: the run finishes on
// the build it started on (an hour-long transcode or a batched report is never replayed on other
// code, so a deploy needs no patched() for it). AUTO_UPGRADE: runs of second-long sub-jobs move to
// the current build at their next workflow task; their code changes still need patched().
// Declared only on versioned workers (see ./versioning): SLUICE_VERSIONING=0 runs them unversioned.
setWorkflowOptions(whenVersioned('PINNED'), videoPipelineWorkflow);
setWorkflowOptions(whenVersioned('PINNED'), reportPipelineWorkflow);
setWorkflowOptions(whenVersioned('PINNED'), subJobBatchWorkflow);
setWorkflowOptions(whenVersioned('AUTO_UPGRADE'), jobsPipelineWorkflow);
setWorkflowOptions(whenVersioned('AUTO_UPGRADE'), burstWorkflow);
// A tenant's gate lives as long as the deployment: it moves to each new build (continuing as new).
setWorkflowOptions(whenVersioned('AUTO_UPGRADE'), tenantGateWorkflow);
