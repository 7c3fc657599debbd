/** Prometheus view of the webhook rate limiter: requests waiting now and requests dropped. */
import client from 'prom-client';
import type { WebhookLimiter } from './webhook-limiter';

/**
 * Registers `sluice_ratelimit_queued`, `sluice_ratelimit_dropped_total` and
 * `sluice_ratelimit_sent_total{route}` (cluster = through Redis, local = no Redis configured,
 * fallback = Redis configured but unreachable), read at scrape time.
 */
export function registerRateLimiterMetrics(registry: client.Registry, limiter: WebhookLimiter): void {
  new client.Gauge({
    name: 'sluice_ratelimit_queued',
    help: 'Webhook requests waiting in the rate limiters (not yet sent)',
    registers: [registry],
    collect() {
      this.set(limiter.queued);
    },
  });
  let reported = 0;
  new client.Counter({
    name: 'sluice_ratelimit_dropped_total',
    help: 'Webhook requests abandoned while waiting in the rate limiters (cancelled, or limiter closed)',
    registers: [registry],
    collect() {
      // The limiter counts; the counter catches up with it at each scrape.
      this.inc(limiter.dropped - reported);
      reported = limiter.dropped;
    },
  });
  const sentReported: Record<string, number> = {};
  new client.Counter({
    name: 'sluice_ratelimit_sent_total',
    help: 'Webhook requests let through, by global route: cluster (Redis), local (no Redis), fallback (Redis unreachable)',
    labelNames: ['route'],
    registers: [registry],
    collect() {
      for (const [route, n] of Object.entries(limiter.routes)) {
        this.inc({ route }, n - (sentReported[route] ?? 0));
        sentReported[route] = n;
      }
    },
  });
}
