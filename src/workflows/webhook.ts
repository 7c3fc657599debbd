/**
 * The completion webhook of a pipeline (runs in the sandbox). Delivered on the critical tier —
 * callers wait on it — with the run's fairness key, through the worker's rate limiters. A
 * delivery that exhausts its retries is dead-lettered (`sluice dlq replay` sends it again) and
 * reported in the result; it never undoes the pipeline's finished work.
 */
import { isCancellation } from '@temporalio/workflow';
import type { DeliverWebhookInput, DeliverWebhookResult } from '../activities/notify';
import { Tier } from '../shared/constants';
import type { WebhookOutcome, WebhookTarget } from '../shared/webhook';
import { activityOptionsFor } from './fan-out';
import { dispatchSubJob, failureChain, recordDeadLetter } from './flow-control';

/** POSTs `pipeline.completed` with `data` to `webhook`; undefined when the pipeline has none. */
export async function deliverCompletion(
  webhook: WebhookTarget | undefined,
  tenant: string,
  data: Record<string, unknown>,
): Promise<WebhookOutcome | undefined> {
  if (!webhook) return undefined;
  const input: DeliverWebhookInput = { url: webhook.url, tenant, event: 'pipeline.completed', data };
  const options = activityOptionsFor('deliverWebhook');
  try {
    const r = await dispatchSubJob<DeliverWebhookResult>(
      { activity: 'deliverWebhook', input },
      { ...options, summary: 'completion webhook' },
      Tier.critical,
    );
    return { delivered: true, status: r.status, attempt: r.attempt, idempotencyKey: r.idempotencyKey };
  } catch (err) {
    if (isCancellation(err)) throw err;
    await recordDeadLetter(err, {
      kind: 'sub-job',
      activityType: 'deliverWebhook',
      input,
      tenant,
      maximumAttempts: options.retry?.maximumAttempts,
    });
    return {
      delivered: false,
      error: failureChain(err)
        .map((l) => l.message)
        .join(': '),
    };
  }
}
