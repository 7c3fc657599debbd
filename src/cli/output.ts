/**
 * CLI output contract: `--json` prints exactly one JSON object on stdout; everything else
 * (human lines, progress bars, logs) goes to stderr. Exit codes: 0 ok, 1 pipeline failed,
 * 2 invalid input or usage (an unknown pipeline ID included).
 */
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { ConfigError } from '../config';
import { InvalidInputError, TenantAtCapacityError } from '../client';

/** Help of `--reject-when-full` on the commands that start pipelines. */
export const REJECT_WHEN_FULL_HELP =
  'exit 2 instead of queueing when the tenant already has its maxRunning pipelines (SLUICE_TENANT_LIMITS)';
import type { WebhookOutcome } from '../shared/webhook';

export const ExitCode = { ok: 0, failed: 1, invalid: 2 } as const;

/** Thrown by commands for usage errors found after parsing. */
export class UsageError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'UsageError';
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

export function info(line: string): void {
  process.stderr.write(line + '\n');
}

/** The failure chain of a workflow error, outermost first: `[type] message`. */
export function failureChain(err: unknown): { type?: string; message: string }[] {
  const chain: { type?: string; message: string }[] = [];
  let cur: unknown = err;
  while (cur instanceof Error && chain.length < 8) {
    const type =
      cur instanceof ApplicationFailure
        ? (cur.type ?? undefined)
        : cur instanceof TemporalFailure
          ? cur.name
          : undefined;
    chain.push({ type, message: cur.message });
    cur = (cur as { cause?: unknown }).cause;
  }
  return chain;
}

/** Maps an error to its exit code and prints it (as JSON too when asked). */
export function reportError(err: unknown, json: boolean): number {
  if (err instanceof InvalidInputError || err instanceof UsageError || err instanceof ConfigError) {
    const issues =
      err instanceof InvalidInputError
        ? err.issues
        : err instanceof UsageError
          ? [{ path: err.path, message: err.message }]
          : err.problems.map((p) => ({ path: p.split(':')[0] ?? '', message: p }));
    if (json) printJson({ error: 'invalid input', issues });
    info(
      `error: invalid input\n${issues.map((i) => `  ${i.path}: ${i.message.replace(`${i.path}: `, '')}`).join('\n')}`,
    );
    return ExitCode.invalid;
  }
  if (err instanceof TenantAtCapacityError) {
    // Nothing started: like invalid input, the caller must change something (wait) and ask again.
    if (json)
      printJson({
        error: 'tenant at capacity',
        tenant: err.tenant,
        maxRunning: err.maxRunning,
        retryAfterSeconds: err.retryAfterSeconds,
      });
    info(`error: ${err.message}`);
    return ExitCode.invalid;
  }
  if (err instanceof WorkflowNotFoundError) {
    // An ID that names no run is a usage error (2); 1 is kept for a pipeline that failed.
    const workflowId = err.workflowId;
    if (json) printJson({ error: 'no such pipeline', workflowId });
    info(`error: no such pipeline: ${workflowId}`);
    return ExitCode.invalid;
  }
  if (err instanceof WorkflowFailedError) {
    const chain = failureChain(err.cause);
    if (json) printJson({ error: 'pipeline failed', failure: chain });
    info(`error: pipeline failed\n${chain.map((c) => `  ${c.type ? `[${c.type}] ` : ''}${c.message}`).join('\n')}`);
    return ExitCode.failed;
  }
  const message = err instanceof Error ? err.message : String(err);
  if (json) printJson({ error: message });
  info(`error: ${message}`);
  return ExitCode.failed;
}

/** One line on a pipeline's completion webhook. */
export function describeWebhook(w: WebhookOutcome): string {
  return w.delivered
    ? `webhook delivered: HTTP ${w.status}, attempt ${w.attempt}, Idempotency-Key ${w.idempotencyKey}`
    : `webhook NOT delivered (dead-lettered): ${w.error}`;
}
