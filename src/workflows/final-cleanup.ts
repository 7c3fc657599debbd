/**
 * The last step of a pipeline whose artifacts are final: remove its `.work/` intermediates. A
 * failure here (after the step's own retries) must not fail the run, and must never take the
 * finished artifacts with it: the run completes and its result says what failed
 * (`afterFinal`). A cancellation that arrives now does not stop it either: the work is done.
 */
import { CancellationScope } from '@temporalio/workflow';
import type { AfterFinalStatus } from '../shared/artifact';
import { failureChain } from './flow-control';

/** Patch ID: the final cleanup runs after the artifacts are final and never removes them. */
export const KEEP_FINAL_ARTIFACTS_PATCH = 'sluice-keep-final-artifacts-v1';

/** Runs `removeWork` non-cancellable; its failure becomes the result's `afterFinal`, never the run's. */
export async function cleanupAfterFinal(removeWork: () => Promise<void>): Promise<AfterFinalStatus | undefined> {
  try {
    await CancellationScope.nonCancellable(removeWork);
    return undefined;
  } catch (err) {
    return {
      step: 'cleanup',
      error: failureChain(err)
        .map((l) => l.message)
        .join(': '),
      artifactsKept: true,
    };
  }
}
