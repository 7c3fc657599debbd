/**
 * The one skeleton of a pipeline (runs in the sandbox). Every pipeline — video, report, jobs —
 * is: parse its input → track progress → fan out → fan in → then ends here, in one way. Video and
 * report also start here ({@link startPipeline}: parse, own the contract, take a running place).
 * The ending:
 *
 * - **Failed** (an error escapes the work): its outputs are removed (non-cancellable, so a
 *   cancelled run cleans up too), the stage becomes `failed` or `cancelled`, and the run is
 *   dead-lettered with its input (`sluice dlq replay` starts it again) — unless it was cancelled
 *   or its input was invalid, which a replay could only fail the same way. Then the error is
 *   rethrown: the run fails.
 * - **Completed**: the artifacts are final. The `.work/` intermediates are removed
 *   ({@link cleanupAfterFinal}: a failure there is reported, never fatal), then the completion
 *   webhook is POSTed on the critical tier ({@link deliverCompletion}: a delivery that fails is
 *   dead-lettered as a sub-job and reported in `result.webhook`; it never fails the run). The
 *   result also says when a dead letter of the run could not be written (`deadLetter`).
 *
 * Runs recorded before this ending keep theirs: the report pipeline dead-letters a failure only
 * behind {@link REPORT_DEAD_LETTER_PATCH}, and the jobs pipeline delivers its webhook on the
 * critical tier only behind {@link JOBS_COMPLETION_PATCH} (see ./jobs-pipeline.ts).
 */
import { ApplicationFailure, CancellationScope, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { z } from 'zod';
import { FailureType, type PipelineKind } from '../shared/constants';
import type { AfterFinalStatus } from '../shared/artifact';
import type { DeadLetterStatus } from '../shared/fan-out';
import type { WebhookOutcome, WebhookTarget } from '../shared/webhook';
import { ownContract } from './contract';
import { cleanupAfterFinal } from './final-cleanup';
import { recordDeadLetter, withDeadLetterStatus } from './flow-control';
import { parseWorkflowInput } from './input';
import type { trackProgress } from './progress';
import { inTenantGate } from './tenant-gate';
import { deliverCompletion } from './webhook';

/** Patch ID: a failed report pipeline is dead-lettered, as a failed video pipeline is. */
export const REPORT_DEAD_LETTER_PATCH = 'sluice-report-dead-letter-v1';

/** Patch ID: the jobs pipeline's completion webhook goes on the critical tier and never fails the run. */
export const JOBS_COMPLETION_PATCH = 'sluice-jobs-completion-critical-v1';

/**
 * The start of a video or report pipeline: its input parsed (bad input fails once, naming each
 * field), its contract owned (./contract.ts), then `body` in one of the tenant's running places
 * when its limits cap them (Stage="queued" meanwhile).
 */
export function startPipeline<S extends z.ZodTypeAny, R>(
  kind: PipelineKind,
  schema: S,
  rawInput: unknown,
  body: (input: z.output<S>) => Promise<R>,
): Promise<R> {
  const input = parseWorkflowInput(schema, rawInput);
  ownContract(kind, input);
  return inTenantGate(() => body(input), { takesRunPlace: true });
}

/** This run's IDs and output prefix: every run writes under its own, so a later run with the same workflow ID never touches it. */
export function runOutput(): { pipelineId: string; runId: string; output: string } {
  const { workflowId: pipelineId, runId } = workflowInfo();
  return { pipelineId, runId, output: `${pipelineId}/${runId}` };
}

/** What every pipeline result carries about its ending. */
export interface PipelineEndingResult {
  afterFinal?: AfterFinalStatus;
  webhook?: WebhookOutcome;
  deadLetter?: DeadLetterStatus;
}

/** What the work hands to the ending once its artifacts are final. */
export interface Finished<R> {
  result: R;
  /** Remove `.work/` after the artifacts are final (false where a recorded run did it inside the work). */
  cleanupAfter: boolean;
}

/** How a pipeline ends: the pieces the skeleton needs from it. */
export interface PipelineEnding<R> {
  /** Progress of the run; absent for the jobs pipeline, which has no stages. */
  stages?: ReturnType<typeof trackProgress>;
  /** Removes the run's outputs: all of them after a failure, `.work/` only after it completed. */
  removeOutputs?: (removeArtifacts: boolean) => Promise<void>;
  /** The input as the caller gave it, kept by the dead letter for a replay. */
  rawInput: unknown;
  tenant: string;
  /** Whether a failed run is dead-lettered (asked only when it failed; a patch check goes here). */
  deadLetter: () => boolean;
  /** Attempt budget named in the dead letter when the failure does not say (see attemptsOf). */
  maximumAttempts?: number;
  webhook?: WebhookTarget;
  /** `data` of the `pipeline.completed` webhook; undefined: none is sent by the ending. */
  completion: (result: R) => Record<string, unknown> | undefined;
  /** Details of the `done` stage. */
  done?: (result: R) => string;
}

/** Runs `work` and ends the run the one way described above. */
export async function runPipeline<R extends PipelineEndingResult>(
  work: () => Promise<Finished<R>>,
  ending: PipelineEnding<R>,
): Promise<R> {
  const { stages, removeOutputs } = ending;
  let finished: Finished<R>;
  try {
    finished = await work();
  } catch (err) {
    // Whatever happened, leave no half-written outputs behind; cleanup runs even when cancelled.
    const stage = stages?.progress.stage;
    if (removeOutputs) await CancellationScope.nonCancellable(() => removeOutputs(true));
    stages?.setStage(isCancellation(err) ? 'cancelled' : 'failed', `during ${stage}`);
    // Invalid input is not dead-lettered: replaying it could only fail the same way.
    const invalid = err instanceof ApplicationFailure && err.type === FailureType.InvalidInput;
    if (!invalid && ending.deadLetter()) {
      await recordDeadLetter(err, {
        kind: 'pipeline',
        input: ending.rawInput,
        tenant: ending.tenant,
        ...(ending.maximumAttempts !== undefined ? { maximumAttempts: ending.maximumAttempts } : {}),
      });
    }
    throw err;
  }
  const { result } = finished;
  // The artifacts are complete: from here on nothing removes them, whatever the cleanup or the webhook does.
  if (finished.cleanupAfter && removeOutputs) {
    const afterFinal = await cleanupAfterFinal(() => removeOutputs(false));
    if (afterFinal) result.afterFinal = afterFinal;
  }
  const data = ending.webhook ? ending.completion(result) : undefined;
  if (ending.webhook && data) {
    stages?.setStage('notifying', ending.webhook.url);
    result.webhook = await deliverCompletion(ending.webhook, ending.tenant, data);
  }
  if (ending.done) stages?.setStage('done', ending.done(result));
  return withDeadLetterStatus(result);
}
