/**
 * The worker's retry rules for activity attempts, in one place: full-jitter backoff (Temporal's
 * RetryPolicy has no jitter, so the worker sets `nextRetryDelay` itself), per-type attempt
 * budgets (SLUICE_RETRY_POLICIES) and the non-retryable RetriesExhausted failure when a budget is
 * spent. The worker applies them to every attempt through {@link ActivityRetryInterceptor}; the
 * pack runner applies the same rules to each sub-job it runs in one task.
 */
import { ApplicationFailure, CancelledFailure, type Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import type { ActivityRetryConfig } from '../config';
import { FailureType, isNonRetryableFailureType } from '../shared/constants';
import { durationMs } from '../shared/duration';

/** Settings of an {@link ActivityRetryPolicy} (SLUICE_RETRY_BASE_MS, SLUICE_RETRY_CAP_MS, SLUICE_RETRY_POLICIES). */
export interface ActivityRetrySettings {
  /** Base delay of the first retry. @default 1000 ms */
  baseMs: number;
  /** Cap on any delay. @default 30000 ms */
  capMs: number;
  /** Per-activity-type overrides and attempt budgets. */
  byActivity?: Readonly<Record<string, ActivityRetryConfig>>;
}

/** False for failures no retry can fix: marked non-retryable, or of a non-retryable type. */
export function isRetryableFailure(err: unknown): boolean {
  if (err instanceof ApplicationFailure) return !err.nonRetryable && !isNonRetryableFailureType(err.type);
  return true;
}

/** The failure's type as metrics and failures name it. */
export function failureTypeOf(err: unknown): string {
  if (err instanceof ApplicationFailure) return err.type ?? 'ApplicationFailure';
  if (err instanceof CancelledFailure) return 'Cancelled';
  return err instanceof Error ? err.name : 'Error';
}

/** Full jitter: a uniform delay in [0, min(cap, base·2^(attempt-1))]. */
export function fullJitterDelayMs(
  attempt: number,
  bounds: { baseMs: number; capMs: number },
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(bounds.capMs, bounds.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/** What becomes of a failed attempt: the error to throw, and the delay the worker chose (if it did). */
export interface AttemptFailure {
  error: unknown;
  /** Set when the worker chose the next attempt's delay (full jitter). */
  delayMs?: number;
}

/** Retry rules of the worker's activities: backoff, attempt budgets, RetriesExhausted. */
export class ActivityRetryPolicy {
  constructor(
    readonly settings: ActivityRetrySettings,
    private readonly random: () => number = Math.random,
  ) {}

  /** Attempts `activityType` may make in all (SLUICE_RETRY_POLICIES); undefined when only the workflow limits it. */
  budgetOf(activityType: string): number | undefined {
    return this.settings.byActivity?.[activityType]?.maxAttempts;
  }

  /** The full-jitter delay before attempt `attempt` + 1 of `activityType`, with its per-type base and cap. */
  jitteredDelayMs(attempt: number, activityType: string): number {
    const own = this.settings.byActivity?.[activityType];
    return fullJitterDelayMs(
      attempt,
      { baseMs: own?.baseMs ?? this.settings.baseMs, capMs: own?.capMs ?? this.settings.capMs },
      this.random,
    );
  }

  /** The delay before a retry: the failure's own (a Retry-After the activity read) or full jitter. */
  nextDelayMs(err: unknown, attempt: number, activityType: string): number {
    if (err instanceof ApplicationFailure && err.nextRetryDelay != null) return durationMs(err.nextRetryDelay);
    return this.jitteredDelayMs(attempt, activityType);
  }

  /**
   * The message of a RetriesExhausted failure: the activity type, the budget spent and the last
   * failure, with that failure's own type when it has one (`last (Timeout): …`).
   */
  exhaustedMessage(activityType: string, attempts: number, budget: number, err: unknown): string {
    const lastType = err instanceof ApplicationFailure && err.type ? ` (${err.type})` : '';
    return `${activityType}: ${attempts} of ${budget} attempts failed; last${lastType}: ${err instanceof Error ? err.message : String(err)}`;
  }

  /** True when `attempts` of a retryable failure have spent the type's budget. */
  isExhausted(err: unknown, attempts: number, activityType: string): boolean {
    const budget = this.budgetOf(activityType);
    return isRetryableFailure(err) && budget !== undefined && attempts >= budget;
  }

  /**
   * What the worker throws after attempt `attempt` of `activityType` failed with `err`:
   * cancellations and non-retryable failures as they are; a non-retryable RetriesExhausted once
   * the type's budget is spent (whatever the workflow's own limit says); a failure that carries
   * its own delay (Retry-After) as it is; else the same failure with a full-jitter `nextRetryDelay`.
   */
  afterFailure(err: unknown, activityType: string, attempt: number): AttemptFailure {
    if (err instanceof CancelledFailure || !isRetryableFailure(err)) return { error: err };
    const budget = this.budgetOf(activityType);
    if (budget !== undefined && attempt >= budget) {
      return {
        error: ApplicationFailure.create({
          type: FailureType.RetriesExhausted,
          nonRetryable: true,
          message: this.exhaustedMessage(activityType, attempt, budget, err),
          cause: err instanceof Error ? err : undefined,
          details: [{ attempts: attempt }],
        }),
      };
    }
    if (err instanceof ApplicationFailure && err.nextRetryDelay != null) return { error: err };
    const delayMs = this.jitteredDelayMs(attempt, activityType);
    return {
      delayMs,
      error: ApplicationFailure.create({
        type: failureTypeOf(err),
        message: err instanceof Error ? err.message : String(err),
        cause: err instanceof Error ? err : undefined,
        details: err instanceof ApplicationFailure ? (err.details as unknown[] | undefined) : undefined,
        nextRetryDelay: delayMs,
      }),
    };
  }
}

/**
 * Applies the {@link ActivityRetryPolicy} to each attempt's failure. `onDelay` hears each delay
 * the worker chose (the `sluice_retry_delay_seconds` histogram).
 */
export class ActivityRetryInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: Context,
    private readonly policy: ActivityRetryPolicy,
    private readonly onDelay?: (activityType: string, delayMs: number) => void,
  ) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (err) {
      const { activityType, attempt } = this.ctx.info;
      const outcome = this.policy.afterFailure(err, activityType, attempt);
      if (outcome.delayMs !== undefined) this.onDelay?.(activityType, outcome.delayMs);
      throw outcome.error;
    }
  }
}
