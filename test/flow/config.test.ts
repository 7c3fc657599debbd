/** Flow-control settings parse from the environment with defaults, and bad values are all named. */
import { describe, expect, it } from 'vitest';
import { parseAge } from '../../src/cli/commands/dlq';
import { ConfigError, loadConfig } from '../../src/config';

describe('flow-control config', () => {
  it('has documented defaults', () => {
    const c = loadConfig({}, '/tmp');
    expect(c.slotPool).toEqual({ total: undefined, weights: { critical: 6, high: 3, default: 2, low: 1 } });
    expect(c.promoteAfterSeconds).toEqual({ low: 1800 });
    expect(c.maxTaskQueueActivitiesPerSecond).toBeUndefined();
    expect(c.retry).toEqual({ baseMs: 1000, capMs: 30000, byActivity: {} });
    expect(c.webhook).toMatchObject({ ratePerSecond: 50, redisFallback: 'local-share', fallbackRatePerSecond: 5 });
    expect(c.redisUrl).toBeUndefined();
    expect(c.databaseUrl).toBeUndefined();
  });

  it('parses weights, tenant limits, fairness weights, retry policies and the queue-wide rate', () => {
    const c = loadConfig(
      {
        SLUICE_SLOTS_TOTAL: '20',
        SLUICE_SLOT_WEIGHTS: 'critical=8,low=2',
        SLUICE_PROMOTION_AGE_SECONDS: '0',
        SLUICE_MAX_TASK_QUEUE_ACTIVITIES_PER_SECOND: '250',
        SLUICE_WEBHOOK_TENANT_LIMITS: 'acme=10, globex=2.5',
        SLUICE_FAIRNESS_WEIGHTS: 'acme=3',
        SLUICE_RETRY_POLICIES: '{"deliverWebhook":{"maxAttempts":8,"baseMs":500}}',
        SLUICE_WEBHOOK_REDIS_FALLBACK: 'pause',
      },
      '/tmp',
    );
    expect(c.slotPool).toEqual({ total: 20, weights: { critical: 8, high: 3, default: 2, low: 2 } });
    expect(c.promoteAfterSeconds).toEqual({});
    expect(c.maxTaskQueueActivitiesPerSecond).toBe(250);
    expect(c.webhook.tenantRates).toEqual({ acme: 10, globex: 2.5 });
    expect(c.webhook.redisFallback).toBe('pause');
    expect(c.fairnessWeights).toEqual({ acme: 3 });
    expect(c.retry.byActivity).toEqual({ deliverWebhook: { maxAttempts: 8, baseMs: 500 } });
  });

  it('lists every bad value with its variable', () => {
    let err: unknown;
    try {
      loadConfig(
        {
          SLUICE_SLOT_WEIGHTS: 'urgent=5',
          SLUICE_WEBHOOK_TENANT_LIMITS: 'acme=fast',
          SLUICE_RETRY_POLICIES: '{"x":{"maxAttempts":0}}',
        },
        '/tmp',
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toContain('SLUICE_SLOT_WEIGHTS: unknown tier "urgent"');
    expect(problems).toContain('SLUICE_WEBHOOK_TENANT_LIMITS');
    expect(problems).toContain('SLUICE_RETRY_POLICIES.x.maxAttempts');
  });

  it('honours SLUICE_CRASH_AT only with SLUICE_TEST_CRASH_HOOKS=1, and only for a listed crash point', () => {
    const problems = (env: NodeJS.ProcessEnv) => {
      try {
        loadConfig(env, '/tmp');
        return '';
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as ConfigError).problems.join('\n');
      }
    };
    expect(problems({ SLUICE_CRASH_AT: 'mergeReport:start' })).toContain(
      'SLUICE_CRASH_AT: honoured only with SLUICE_TEST_CRASH_HOOKS=1',
    );
    expect(problems({ SLUICE_TEST_CRASH_HOOKS: '1', SLUICE_CRASH_AT: 'mergeReport:begin' })).toContain(
      'SLUICE_CRASH_AT: unknown crash point "mergeReport:begin"',
    );
    expect(loadConfig({}, '/tmp').testCrashHooks).toBeUndefined();
    expect(
      loadConfig({ SLUICE_TEST_CRASH_HOOKS: '1', SLUICE_CRASH_AT: 'mergeReport:start' }, '/tmp').testCrashHooks,
    ).toEqual({
      dir: '/tmp/.data/crash-hooks',
      at: 'mergeReport:start',
    });
  });

  it('reads purge ages with a unit', () => {
    expect(parseAge('90s')).toBe(90_000);
    expect(parseAge('7d')).toBe(7 * 86_400_000);
    expect(() => parseAge('7')).toThrow(/older-than/);
  });
});
