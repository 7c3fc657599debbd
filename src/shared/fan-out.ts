/**
 * Fan-in failure policies: what a pipeline does when some of its sub-jobs fail. Shared by the
 * client (parsing `--policy`) and the workflows' fan-out helper. Sandbox-safe.
 */
import { z } from 'zod';

export const FailurePolicySchema = z.discriminatedUnion('kind', [
  /** The first failure cancels the siblings and fails the pipeline. */
  z.object({ kind: z.literal('fail-fast') }).strict(),
  /** Only failed sub-jobs run again, for up to `rounds` more rounds; then fail. */
  z.object({ kind: z.literal('retry-failed'), rounds: z.number().int().min(1).max(10) }).strict(),
  /** Complete with what succeeded and list what is missing. */
  z.object({ kind: z.literal('partial') }).strict(),
  /** At `deadlineSeconds` after the fan-out starts, cancel what still runs and keep what finished. */
  z
    .object({
      kind: z.literal('deadline-partial'),
      deadlineSeconds: z
        .number()
        .positive()
        .max(7 * 24 * 3600),
    })
    .strict(),
  /** Succeed once `k` sub-jobs have succeeded; cancel the rest. */
  z.object({ kind: z.literal('quorum'), k: z.number().int().min(1) }).strict(),
]);
export type FailurePolicy = z.infer<typeof FailurePolicySchema>;

/**
 * Parses the CLI/HTTP spelling: `fail-fast`, `retry-failed[:N]`, `partial`,
 * `deadline-partial[:SECONDS]`, `quorum:K`. Returns an error message naming the problem.
 */
export function parseFailurePolicy(text: string): FailurePolicy | { error: string } {
  const [kind, arg] = text.split(':', 2);
  const num = arg === undefined ? undefined : Number(arg);
  switch (kind) {
    case 'fail-fast':
    case 'partial':
      return arg === undefined ? { kind } : { error: `policy ${kind} takes no argument` };
    case 'retry-failed':
      return num === undefined
        ? { kind, rounds: 2 }
        : Number.isInteger(num) && num >= 1 && num <= 10
          ? { kind, rounds: num }
          : { error: 'retry-failed:N needs N from 1 to 10' };
    case 'deadline-partial':
      return num === undefined
        ? { kind, deadlineSeconds: 600 }
        : num > 0
          ? { kind, deadlineSeconds: num }
          : { error: 'deadline-partial:SECONDS needs a positive number' };
    case 'quorum':
      return num !== undefined && Number.isInteger(num) && num >= 1
        ? { kind, k: num }
        : { error: 'quorum:K needs a whole number K ≥ 1' };
    default:
      return {
        error: `unknown policy ${JSON.stringify(text)}; expected fail-fast, retry-failed[:N], partial, deadline-partial[:S] or quorum:K`,
      };
  }
}

/**
 * A failure policy as pipelines accept it: the CLI spelling (`partial`, `quorum:3`,
 * `retry-failed:2`, …) or the object form. A string that does not parse fails with the parser's
 * message, so the issue names `policy` and says what is allowed.
 */
export const FailurePolicyInputSchema = z.union([
  z
    .string()
    .describe('fail-fast | retry-failed[:N] | partial | deadline-partial[:SECONDS] | quorum:K')
    .transform((text, ctx): FailurePolicy => {
      const p = parseFailurePolicy(text);
      if ('error' in p) {
        ctx.addIssue({ code: 'custom', message: p.error });
        return z.NEVER;
      }
      return p;
    }),
  FailurePolicySchema,
]);

/**
 * A sub-job as data: which activity to run with which input. Serializable, so batches can go to
 * child workflows. Pipelines build `SubJob<ActivityName>` (src/workflows/fan-out.ts), so a
 * misspelt activity fails the typecheck; a jobs pipeline's input names them at run time.
 */
export interface SubJob<A extends string = string> {
  activity: A;
  input: unknown;
  /** Shown in the UI as the activity's summary. */
  summary?: string;
}

/** Input of the pack runner: one activity type, several sub-jobs' inputs (see src/activities/pack). */
export interface PackInput {
  activity: string;
  inputs: unknown[];
  /** Attempts each sub-job may make (the workflow's retry limit for its activity type). */
  maxAttempts: number;
}

/** One packed sub-job's outcome: its result, or how it failed for good. */
export type PackOutcome =
  { ok: true; value: unknown; attempts: number } | { ok: false; message: string; type?: string; attempts: number };

/** What a pack returns: one outcome per input, in order. */
export interface PackResult {
  outcomes: PackOutcome[];
}

/** What a fan-out returns: a result per sub-job index (undefined where it failed or was cancelled). */
export interface FanOutOutcome<R> {
  results: (R | undefined)[];
  succeeded: number;
  /** Indexes that failed, with the failure message and type. */
  failed: { index: number; message: string; type?: string }[];
  /** Indexes cancelled by the policy (quorum reached, deadline passed, fail-fast). */
  cancelled: number[];
  /** Set by a batch child when a dead letter of its sub-jobs could not be written (the parent reports it). */
  deadLetter?: DeadLetterStatus;
}

/**
 * On a pipeline's result when a dead letter could not be written, after its retries: the record
 * is lost, so the result says so (and `sluice_dlq_write_failures_total` counts it).
 */
export interface DeadLetterStatus {
  written: false;
  /** The last write failure (the first record that was lost). */
  error: string;
  /** Dead letters of this run that could not be written. */
  lost: number;
}
