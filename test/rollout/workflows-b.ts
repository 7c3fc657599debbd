/**
 * Build B of the rollout test: Sluice's workflows, except that the video and report pipelines
 * first wait on a timer. Its first command then differs from build A's (a timer where A
 * scheduled an activity), so B cannot replay a history A started: if a pinned A run ever reached
 * a B worker, it would fail with a nondeterminism error.
 */
import { setWorkflowOptions, sleep } from '@temporalio/workflow';
import type { ReportPipelineInput, ReportPipelineResult } from '../../src/shared/report';
import type { VideoPipelineInput, VideoPipelineResult } from '../../src/shared/video';
import { reportPipelineWorkflow as reportA } from '../../src/workflows/report-pipeline';
import { videoPipelineWorkflow as videoA } from '../../src/workflows/video-pipeline';

export * from '../../src/workflows';

/** Build B's video pipeline: a 1 ms timer, then build A's. */
export async function videoPipelineWorkflow(input: VideoPipelineInput): Promise<VideoPipelineResult> {
  await sleep(1);
  return videoA(input);
}

/** Build B's report pipeline: a 1 ms timer, then build A's. */
export async function reportPipelineWorkflow(input: ReportPipelineInput): Promise<ReportPipelineResult> {
  await sleep(1);
  return reportA(input);
}

setWorkflowOptions({ versioningBehavior: 'PINNED' }, videoPipelineWorkflow);
setWorkflowOptions({ versioningBehavior: 'PINNED' }, reportPipelineWorkflow);
