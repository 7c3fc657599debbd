/**
 * What each fan-in failure policy does, as data (runs in the sandbox). The fan-out
 * (./fan-out.ts) reads only this table, never the policy's kind:
 *
 * | policy             | a failure cancels siblings | rounds     | dead-letters sub-jobs | stops early at      | fails the pipeline when          |
 * | ------------------ | -------------------------- | ---------- | --------------------- | ------------------- | -------------------------------- |
 * | `fail-fast`        | yes                        | 1          | no                    | the first failure   | any sub-job failed               |
 * | `retry-failed`     | no                         | 1 + rounds | no                    | —                   | any sub-job failed in every round |
 * | `partial`          | no                         | 1          | yes                   | —                   | never                            |
 * | `deadline-partial` | no                         | 1          | no                    | `deadlineSeconds`   | never                            |
 * | `quorum`           | no                         | 1          | no                    | `k` succeeded       | fewer than `k` succeeded         |
 *
 * Batch children (large fan-outs) run `fail-fast` and `retry-failed` as given and every other
 * policy as `partial`; the parent judges the merged outcome. Every `SubJobsFailed` failure is
 * built by {@link subJobsFailed}.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { FailureType } from '../shared/constants';
import type { FailurePolicy, FanOutOutcome } from '../shared/fan-out';

/** One row of the table above. */
export interface PolicyRules {
  /** The first failure cancels the sub-jobs still running and fails the fan-out at once. */
  cancelSiblingsOnFailure: boolean;
  /** Rounds in all: failed sub-jobs run again in the next round (retry-failed). */
  rounds: number;
  /** Sub-jobs that fail for good are recorded in the dead-letter queue. */
  deadLetter: boolean;
  /** Stop the fan-out (cancel the rest) this many seconds after it started. */
  deadlineSeconds?: number;
  /** Stop the fan-out (cancel the rest) once this many sub-jobs succeeded. */
  quorum?: number;
  /** Why the finished fan-out fails the pipeline; undefined: it does not. */
  verdict: (outcome: FanOutOutcome<unknown>, total: number) => string | undefined;
  /** The policy a batch child runs its share under. */
  childPolicy: FailurePolicy;
}

const anyFailed = (outcome: FanOutOutcome<unknown>, total: number): string | undefined =>
  outcome.failed.length > 0 ? `${outcome.failed.length} of ${total} sub-jobs failed` : undefined;
const never = (): undefined => undefined;
const PARTIAL: FailurePolicy = { kind: 'partial' };

type Rows = { [K in FailurePolicy['kind']]: (policy: Extract<FailurePolicy, { kind: K }>) => PolicyRules };

const POLICIES: Rows = {
  'fail-fast': (p) => ({
    cancelSiblingsOnFailure: true,
    rounds: 1,
    deadLetter: false,
    verdict: anyFailed,
    childPolicy: p,
  }),
  'retry-failed': (p) => ({
    cancelSiblingsOnFailure: false,
    rounds: p.rounds + 1,
    deadLetter: false,
    verdict: anyFailed,
    childPolicy: p,
  }),
  partial: () => ({
    cancelSiblingsOnFailure: false,
    rounds: 1,
    deadLetter: true,
    verdict: never,
    childPolicy: PARTIAL,
  }),
  'deadline-partial': (p) => ({
    cancelSiblingsOnFailure: false,
    rounds: 1,
    deadLetter: false,
    deadlineSeconds: p.deadlineSeconds,
    verdict: never,
    childPolicy: PARTIAL,
  }),
  quorum: (p) => ({
    cancelSiblingsOnFailure: false,
    rounds: 1,
    deadLetter: false,
    quorum: p.k,
    verdict: (outcome, total) =>
      outcome.succeeded < p.k
        ? `quorum not reached: ${outcome.succeeded} of ${total} succeeded, ${p.k} needed`
        : undefined,
    childPolicy: PARTIAL,
  }),
};

/** The row of `policy` in the table above. */
export function rulesOf(policy: FailurePolicy): PolicyRules {
  return (POLICIES[policy.kind] as (p: FailurePolicy) => PolicyRules)(policy);
}

/** The non-retryable `SubJobsFailed` failure of a fan-out (`failed` goes in its details when given). */
export function subJobsFailed(
  message: string,
  opts: { failed?: FanOutOutcome<unknown>['failed']; cause?: Error } = {},
): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.SubJobsFailed,
    nonRetryable: true,
    message,
    ...(opts.failed ? { details: [{ failed: opts.failed }] } : {}),
    ...(opts.cause ? { cause: opts.cause } : {}),
  });
}
