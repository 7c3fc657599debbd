/**
 * A pipeline's completion callback: where it goes (checked at the edge and again in the workflow)
 * and what the pipeline's result says about it. Sandbox-safe: no Node built-ins, no URL parser;
 * the client and the activity parse the URL and run the SSRF guard.
 */
import { z } from 'zod';
import { MAX_WEBHOOK_URL_LENGTH } from './constants';

/** Schema of {@link WebhookTarget}. */
export const WebhookTargetSchema = z
  .object({
    url: z
      .string({ invalid_type_error: 'must be a string' })
      .max(MAX_WEBHOOK_URL_LENGTH, `must be at most ${MAX_WEBHOOK_URL_LENGTH} characters`)
      .regex(/^https?:\/\/[^\s/?#]+[^\s]*$/i, 'must be an http or https URL'),
  })
  .strict();

/** `{ url }` of a completion webhook: POSTed (signed, rate-limited) once the pipeline completes. */
export type WebhookTarget = z.infer<typeof WebhookTargetSchema>;

/** What became of a pipeline's completion webhook. */
export interface WebhookOutcome {
  delivered: boolean;
  /** HTTP status of the accepted delivery. */
  status?: number;
  /** Attempt that was accepted. */
  attempt?: number;
  /** `Idempotency-Key` the receiver saw (equal on every attempt). */
  idempotencyKey?: string;
  /** Why it was not delivered (retries exhausted or refused); the delivery is dead-lettered. */
  error?: string;
}
