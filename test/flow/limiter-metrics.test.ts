/**
 * The webhook limiter's Prometheus view: requests waiting behind the rate show as
 * `sluice_ratelimit_queued`, and requests abandoned while waiting (the limiter closing under
 * them) count in `sluice_ratelimit_dropped_total`.
 */
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerRateLimiterMetrics } from '../../src/ratelimit/metrics';
import { WebhookLimiter } from '../../src/ratelimit/webhook-limiter';

async function scrape(registry: client.Registry, name: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

describe('rate-limiter metrics', () => {
  it('report requests queued behind the rate, then the ones dropped when the limiter closes', async () => {
    const limiter = new WebhookLimiter({
      ratePerSecond: 1,
      localRatePerSecond: 1,
      concurrency: 1,
      tenantRates: {},
      defaultTenantRatePerSecond: 100,
      redisUrl: undefined,
      redisFallback: 'local-share',
      fallbackRatePerSecond: 1,
      id: `metrics-test-${process.pid}`,
    });
    const registry = new client.Registry();
    registerRateLimiterMetrics(registry, limiter);
    let sent = 0;
    // One request per second: the first goes at once, the other three wait.
    const requests = Array.from({ length: 4 }, () =>
      limiter.schedule('acme', () => {
        sent++;
        return Promise.resolve();
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(sent).toBe(1);
    expect(await scrape(registry, 'sluice_ratelimit_queued')).toBe(3);
    expect(await scrape(registry, 'sluice_ratelimit_dropped_total')).toBe(0);

    await limiter.close();
    const settled = await Promise.allSettled(requests);
    const dropped = settled.filter((r) => r.status === 'rejected').length;
    expect(dropped).toBeGreaterThanOrEqual(1);
    expect(await scrape(registry, 'sluice_ratelimit_queued')).toBe(0);
    expect(await scrape(registry, 'sluice_ratelimit_dropped_total')).toBe(dropped);
    expect(sent + dropped).toBe(4);
  });
});
