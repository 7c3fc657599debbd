/**
 * Notify activities: the completion webhook (`deliverWebhook`) and the dead-letter record
 * (`recordDeadLetter`). Both tell someone outside the pipeline how it ended.
 *
 * A webhook is a POST of JSON with
 * - `X-Sluice-Signature: sha256=<hex>` — HMAC-SHA256 with SLUICE_WEBHOOK_SECRET over
 *   `<X-Sluice-Timestamp>.<body>`, so a receiver can check origin and reject replays;
 * - `X-Sluice-Timestamp` — Unix seconds of this attempt;
 * - `Idempotency-Key: <workflowId>/<activityId>` — equal across retries of one delivery.
 * Every request passes the {@link WebhookLimiter} first (tenant, global, local).
 */
import crypto from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { DeadLetter, DeadLetterInput, DlqStore } from '../../dlq/store';
import { parseRetryAfter, type WebhookLimiter } from '../../ratelimit/webhook-limiter';
import { FailureType } from '../../shared/constants';
import { BadResponseError, assertSafeWebhookUrl, fetchPinned, parseAllowList } from '../../security/ssrf';
import { SpanKind, inActiveContext, injectTraceContext, withSpan } from '../../tracing';

/** Dependencies of the notify activities. */
export interface NotifyDeps {
  /** Limiter every webhook request passes. */
  limiter: WebhookLimiter;
  /** HMAC key; deliveries fail as InvalidInput without it. */
  secret: string | undefined;
  /** Timeout of one request. @default 10000 */
  timeoutMs?: number;
  /** Where dead letters go; `recordDeadLetter` fails as InvalidInput without it. */
  deadLetters?: DlqStore;
  /** Hosts, IPs and CIDRs exempt from the SSRF guard (SLUICE_WEBHOOK_ALLOW). @default none */
  allow?: readonly string[];
}

/** Input of `deliverWebhook`. */
export interface DeliverWebhookInput {
  /** http(s) URL supplied by the caller. */
  url: string;
  /** Tenant whose rate limit applies. */
  tenant: string;
  /** Event name, e.g. `pipeline.completed`. */
  event: string;
  /** JSON body's `data`. */
  data: unknown;
}

/** Result of `deliverWebhook`. */
export interface DeliverWebhookResult {
  status: number;
  attempt: number;
  idempotencyKey: string;
}

/** `sha256=<hex>` signature of `<timestamp>.<body>`. */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

function failureForStatus(status: number, retryAfterMs: number | undefined, url: string): ApplicationFailure {
  const message = `webhook ${url} answered ${status}`;
  if (status === 429 || status === 503) {
    const type = status === 429 ? FailureType.RateLimited : FailureType.DownstreamUnavailable;
    // With Retry-After the receiver names the delay; without, the worker's jittered backoff applies.
    return ApplicationFailure.create({ type, message, nextRetryDelay: retryAfterMs, details: [{ status }] });
  }
  if (status === 401) return ApplicationFailure.create({ type: FailureType.Unauthorized, message, nonRetryable: true });
  if (status === 403) return ApplicationFailure.create({ type: FailureType.Forbidden, message, nonRetryable: true });
  if (status === 404 || status === 410)
    return ApplicationFailure.create({ type: FailureType.NotFound, message, nonRetryable: true });
  if (status === 408) return ApplicationFailure.create({ type: FailureType.Timeout, message });
  if (status >= 300 && status < 400) {
    return ApplicationFailure.create({
      type: FailureType.DownstreamRejected,
      message: `${message} (a redirect; webhooks do not follow redirects: configure the final URL)`,
      nonRetryable: true,
    });
  }
  if (status >= 400 && status < 500)
    return ApplicationFailure.create({ type: FailureType.DownstreamRejected, message, nonRetryable: true });
  return ApplicationFailure.create({ type: FailureType.DownstreamError, message, details: [{ status }] });
}

function headerValue(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

/** undici error codes of a request that ran out of time (connect, headers or body). */
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/**
 * A failed request as a typed, retryable failure: `BadResponse` when the receiver's answer was
 * not usable HTTP, `Timeout` when connect, headers, body or the whole request ran out of time,
 * `DownstreamError` for any other network failure.
 */
function deliveryFailure(err: unknown, origin: string, timeoutMs: number): ApplicationFailure {
  const e = err as Error & { code?: string };
  if (e instanceof BadResponseError) {
    return ApplicationFailure.create({
      type: FailureType.BadResponse,
      message: `webhook ${origin} ${e.message}`,
      cause: e,
    });
  }
  if (e.name === 'TimeoutError' || TIMEOUT_CODES.has(e.code ?? '')) {
    const what = e.name === 'TimeoutError' ? `no complete answer within ${timeoutMs} ms` : e.message;
    return ApplicationFailure.create({ type: FailureType.Timeout, message: `webhook ${origin}: ${what}`, cause: e });
  }
  return ApplicationFailure.create({
    type: FailureType.DownstreamError,
    message: `webhook ${origin}: ${e.code ? `${e.code} ` : ''}${e.message}`,
    cause: e,
  });
}

/** Creates the notify activities. */
export function createNotifyActivities(deps: NotifyDeps) {
  const timeoutMs = deps.timeoutMs ?? 10_000;
  const allowList = parseAllowList(deps.allow);
  return {
    /**
     * POSTs a signed JSON callback to a caller-supplied URL through the webhook limiters. 2xx
     * succeeds; 429/503 with Retry-After retries after exactly that delay and slows the limiter;
     * other 4xx fail for good; 5xx and network errors retry with jittered backoff.
     */
    async deliverWebhook(input: DeliverWebhookInput): Promise<DeliverWebhookResult> {
      const ctx = Context.current();
      const { activityId, attempt } = ctx.info;
      const workflowId = ctx.info.workflowExecution?.workflowId ?? ctx.info.workflowType ?? 'standalone';
      let url: URL;
      try {
        url = new URL(input.url);
      } catch {
        throw ApplicationFailure.create({
          type: FailureType.InvalidInput,
          message: `url: ${JSON.stringify(input.url)} is not a URL`,
          nonRetryable: true,
        });
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw ApplicationFailure.create({
          type: FailureType.InvalidInput,
          message: `url: only http and https are allowed, got ${url.protocol}`,
          nonRetryable: true,
        });
      }
      if (!deps.secret) {
        throw ApplicationFailure.create({
          type: FailureType.InvalidInput,
          message: 'SLUICE_WEBHOOK_SECRET is not set: webhooks cannot be signed',
          nonRetryable: true,
        });
      }
      const secret = deps.secret;
      // SSRF guard: refuses private, loopback, link-local and metadata addresses (after DNS
      // resolution) with a non-retryable Forbidden; the request below goes to the checked address.
      const target = await assertSafeWebhookUrl(url, { allow: allowList });
      const idempotencyKey = `${workflowId}/${activityId}`;
      const body = JSON.stringify({
        event: input.event,
        workflowId: workflowId,
        tenant: input.tenant,
        data: input.data,
      });

      const response = await deps.limiter.schedule(
        input.tenant,
        // Bound to this attempt's trace context: the limiter runs it from its own queue.
        inActiveContext(async () => {
          const timestamp = String(Math.floor(Date.now() / 1000));
          try {
            // With tracing on: a client span, and its `traceparent` sent along to the receiver.
            return await withSpan(
              'POST webhook',
              {
                'http.request.method': 'POST',
                'server.address': url.hostname,
                'url.scheme': url.protocol.slice(0, -1),
              },
              async (span) => {
                const res = await fetchPinned(target, {
                  method: 'POST',
                  headers: injectTraceContext({
                    'content-type': 'application/json',
                    'idempotency-key': idempotencyKey,
                    'x-sluice-timestamp': timestamp,
                    'x-sluice-signature': signWebhook(secret, timestamp, body),
                    'user-agent': 'sluice-webhook/1',
                  }),
                  body,
                  signal: AbortSignal.any([ctx.cancellationSignal, AbortSignal.timeout(timeoutMs)]),
                  headersTimeoutMs: timeoutMs,
                  bodyTimeoutMs: timeoutMs,
                });
                span?.setAttribute('http.response.status_code', res.status);
                return res;
              },
              SpanKind.CLIENT,
            );
          } catch (err) {
            if (ctx.cancellationSignal.aborted) throw err;
            throw deliveryFailure(err, url.origin, timeoutMs);
          }
        }),
        // Waiting for the limiter can take a while under load: keep the heartbeat going.
        { signal: ctx.cancellationSignal, onWait: () => ctx.heartbeat({ waiting: true }) },
      );
      if (response.status >= 200 && response.status < 300) {
        ctx.log.debug('webhook delivered', { url: url.origin, status: response.status, attempt });
        return { status: response.status, attempt, idempotencyKey };
      }
      const retryAfterMs = parseRetryAfter(headerValue(response.headers['retry-after']));
      if ((response.status === 429 || response.status === 503) && retryAfterMs !== undefined) {
        deps.limiter.penalize(retryAfterMs);
      }
      ctx.log.info('webhook refused', { url: url.origin, status: response.status, retryAfterMs, attempt });
      throw failureForStatus(response.status, retryAfterMs, url.origin);
    },

    /** Records a dead letter (idempotent: a retried call finds the same record). */
    async recordDeadLetter(entry: DeadLetterInput): Promise<Pick<DeadLetter, 'id'>> {
      if (!deps.deadLetters) {
        throw ApplicationFailure.create({
          type: FailureType.InvalidInput,
          message: 'no dead-letter store configured on this worker',
          nonRetryable: true,
        });
      }
      const rec = await deps.deadLetters.add(entry);
      Context.current().log.warn('dead-lettered', { id: rec.id, workflowId: entry.workflowId, kind: entry.kind });
      return { id: rec.id };
    },
  };
}
