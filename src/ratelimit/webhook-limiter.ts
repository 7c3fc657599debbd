/**
 * The limiters in front of a downstream (webhook receivers), in the order a request passes them:
 *
 * 1. **Per tenant** — a `Bottleneck.Group`, one limiter per tenant, rate from config
 *    (SLUICE_WEBHOOK_TENANT_LIMITS, else SLUICE_WEBHOOK_TENANT_RATE_PER_SECOND). Per process.
 * 2. **Global** — with REDIS_URL, a clustered Bottleneck (ioredis) whose `minTime` spacing is
 *    shared by every worker process using the same limiter id: the downstream sees at most
 *    SLUICE_WEBHOOK_RATE_PER_SECOND however many workers run. Without REDIS_URL the same limiter
 *    runs in process.
 * 3. **Per process** — a local Bottleneck (rate and concurrency of this process alone).
 *
 * Redis unreachable (not connected at the moment a request asks): with `local-share` (default)
 * requests pass a local limiter at SLUICE_WEBHOOK_FALLBACK_RATE_PER_SECOND instead of the
 * cluster one — a conservative share, so N processes send at most N × that rate; with `pause`
 * nothing is sent until Redis is back. Never unlimited.
 *
 * Adaptive: {@link WebhookLimiter.penalize} (a 429/503 with Retry-After) holds every request of
 * this process until the delay has passed and doubles the spacing of the global limiter (for a
 * clustered limiter that setting lives in Redis, so every process slows down); the spacing halves
 * again every `recoverAfterMs` without a new penalty.
 *
 * Redis restarted (empty): the cluster limiter re-creates its settings from this process's
 * current ones on the next request (see {@link recogniseRedis7Sentinels}), so the cluster route
 * comes back by itself once Redis answers.
 */
import Bottleneck from 'bottleneck';
import Redis from 'ioredis';
import type { Logger } from '../logger';

/** Options of a {@link WebhookLimiter}. */
export interface WebhookLimiterOptions {
  /** Requests per second across the cluster (or the process without Redis). */
  ratePerSecond: number;
  /** Requests per second of this process. */
  localRatePerSecond: number;
  /** Requests in flight in this process. */
  concurrency: number;
  /** Requests per second by tenant. */
  tenantRates: Readonly<Record<string, number>>;
  /** Requests per second of a tenant not in {@link tenantRates}. */
  defaultTenantRatePerSecond: number;
  /** Redis for the cluster-wide limiter; undefined keeps it in process. */
  redisUrl: string | undefined;
  /** Behaviour while Redis is unreachable. */
  redisFallback: 'local-share' | 'pause';
  /** This process's rate while Redis is unreachable (`local-share`). */
  fallbackRatePerSecond: number;
  /** Cluster id (Redis key prefix); processes with the same id share one limit. */
  id: string;
  /** After this long without a penalty the global spacing halves back toward normal. @default 5000 */
  recoverAfterMs?: number;
  log?: Logger;
}

/** Which route a request took through the global stage. */
export type GlobalRoute = 'cluster' | 'local' | 'fallback';

const spacing = (perSecond: number) => Math.max(0, Math.ceil(1000 / perSecond));
const MAX_SLOWDOWN = 16;

/**
 * Prefix of a tenant's key in the Bottleneck group: the group keeps its limiters in a plain
 * object, where the tenant `constructor` would find `Object` and `__proto__` the prototype.
 */
const TENANT_KEY_PREFIX = 'tenant:';

/** Local, global (Redis) and per-tenant limits with adaptive slow-down. */
export class WebhookLimiter {
  private readonly local: Bottleneck;
  private readonly global: Bottleneck;
  private readonly fallback: Bottleneck;
  private readonly tenants: Bottleneck.Group;
  private readonly redis: Redis | undefined;
  private readonly connection: Bottleneck.IORedisConnection | undefined;
  private readonly baseMinTime: number;
  private slowdown = 1;
  private holdUntil = 0;
  private lastPenaltyAt = 0;
  private readonly recoverTimer: NodeJS.Timeout;
  private closed = false;
  private outageLogged = false;
  /** Requests that went through each global route (observability and tests). */
  readonly routes: Record<GlobalRoute, number> = { cluster: 0, local: 0, fallback: 0 };
  /** Requests waiting in the limiters now (not yet sent). */
  queued = 0;
  /** Requests abandoned while they waited (cancelled, or the limiter closed), since start. */
  dropped = 0;

  constructor(private readonly opts: WebhookLimiterOptions) {
    this.baseMinTime = spacing(opts.ratePerSecond);
    this.local = new Bottleneck({ maxConcurrent: opts.concurrency, minTime: spacing(opts.localRatePerSecond) });
    this.fallback = new Bottleneck({ maxConcurrent: opts.concurrency, minTime: spacing(opts.fallbackRatePerSecond) });
    this.tenants = new Bottleneck.Group({ maxConcurrent: opts.concurrency });
    this.tenants.on('created', (limiter, key) => {
      const tenant = key.slice(TENANT_KEY_PREFIX.length);
      limiter.updateSettings({
        minTime: spacing(
          Object.hasOwn(opts.tenantRates, tenant)
            ? (opts.tenantRates[tenant] as number)
            : opts.defaultTenantRatePerSecond,
        ),
      });
    });
    if (opts.redisUrl) {
      // No offline queue: while Redis is down a command fails at once instead of waiting, so the
      // fallback route is taken rather than an unbounded backlog of commands.
      this.redis = new Redis(opts.redisUrl, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        lazyConnect: false,
        retryStrategy: (times) => Math.min(2_000, 100 * times),
      });
      this.redis.on('error', (err: Error) => opts.log?.debug({ err: err.message }, 'webhook limiter: redis error'));
      const connection = new Bottleneck.IORedisConnection({ client: this.redis });
      recogniseRedis7Sentinels(connection);
      this.connection = connection;
      connection.on('error', (err: Error) => opts.log?.debug({ err: err.message }, 'webhook limiter: cluster error'));
      this.global = new Bottleneck({
        id: opts.id,
        datastore: 'ioredis',
        connection,
        clearDatastore: false,
        minTime: this.baseMinTime,
        // A crashed process must not hold a share forever.
        timeout: 60_000,
      });
    } else {
      this.global = new Bottleneck({ id: opts.id, minTime: this.baseMinTime });
    }
    // While Redis is away the cluster limiter fails every few milliseconds: say so once per
    // outage, and once more when the cluster route is back.
    this.global.on('error', (err: Error) => {
      if (this.redis && !this.clusterReady) {
        if (this.outageLogged) return opts.log?.debug({ err: err.message }, 'webhook limiter error');
        this.outageLogged = true;
        return opts.log?.warn(
          { err: err.message, fallback: opts.redisFallback },
          'webhook limiter: Redis unreachable, using the fallback',
        );
      }
      opts.log?.warn({ err: err.message }, 'webhook limiter error');
    });
    this.redis?.on('ready', () => {
      if (!this.outageLogged) return;
      this.outageLogged = false;
      opts.log?.info('webhook limiter: Redis is back, cluster route resumed');
    });
    this.recoverTimer = setInterval(() => this.recover(), opts.recoverAfterMs ?? 5_000);
    this.recoverTimer.unref();
  }

  /** True when the cluster-wide limiter is in use and Redis is connected now. */
  get clusterReady(): boolean {
    return this.redis?.status === 'ready';
  }

  /** Current spacing factor of the global limiter (1 = configured rate). */
  get slowdownFactor(): number {
    return this.slowdown;
  }

  /**
   * Runs `fn` once every limiter lets it through. `onWait` is called about every second while
   * waiting (activities heartbeat from it); `signal` abandons the wait.
   */
  async schedule<T>(
    tenant: string,
    fn: () => Promise<T>,
    opts: { signal?: AbortSignal; onWait?: () => void } = {},
  ): Promise<T> {
    const waitTicker = opts.onWait ? setInterval(opts.onWait, 1_000) : undefined;
    let sent = false;
    this.queued++;
    try {
      return await this.tenants.key(TENANT_KEY_PREFIX + tenant).schedule(async () => {
        // A penalty holds requests before they take a place in the global limiter, so that when
        // the hold ends they leave at its pace instead of all at once.
        await this.waitForHold(opts.signal);
        return this.throughGlobal(opts.signal, () =>
          this.local.schedule(() => {
            sent = true;
            this.queued--;
            return fn();
          }),
        );
      });
    } finally {
      if (waitTicker) clearInterval(waitTicker);
      if (!sent) {
        this.queued--;
        this.dropped++;
      }
    }
  }

  /**
   * The global stage: the cluster limiter while Redis is connected, else the fallback. The two
   * never send side by side: a fallback request first lets the requests the cluster already
   * admitted leave at the times it reserved for them, and one that waited for its local share
   * while Redis came back goes through the cluster instead.
   */
  private async throughGlobal<T>(signal: AbortSignal | undefined, send: () => Promise<T>): Promise<T> {
    const route = await this.route(signal);
    if (route !== 'fallback') {
      return this.global.schedule(() => {
        this.routes[route]++;
        return send();
      });
    }
    // Before taking a fallback place, so the fallback's pacing starts after the cluster's sends.
    while (!this.clusterReady && this.global.counts().RUNNING > 0) {
      if (signal?.aborted || this.closed) throw signal?.reason ?? new Error('webhook limiter closed');
      await sleep(25);
    }
    if (this.clusterReady) return this.throughGlobal(signal, send);
    return this.fallback.schedule(async () => {
      if (this.clusterReady) return this.throughGlobal(signal, send);
      this.routes.fallback++;
      return send();
    });
  }

  /** Picks the global route; in `pause` mode waits for Redis instead of falling back. */
  private async route(signal: AbortSignal | undefined): Promise<GlobalRoute> {
    if (!this.redis) return 'local';
    if (this.clusterReady) return 'cluster';
    if (this.opts.redisFallback === 'local-share') return 'fallback';
    while (!this.clusterReady) {
      if (signal?.aborted || this.closed) throw signal?.reason ?? new Error('webhook limiter closed');
      await sleep(250);
    }
    return 'cluster';
  }

  private async waitForHold(signal: AbortSignal | undefined): Promise<void> {
    while (Date.now() < this.holdUntil) {
      if (signal?.aborted) throw signal.reason;
      await sleep(Math.min(1_000, this.holdUntil - Date.now()));
    }
  }

  /**
   * The downstream said "slow down" (429/503 with Retry-After): hold this process's requests for
   * `retryAfterMs` and double the global spacing (cluster-wide with Redis).
   */
  penalize(retryAfterMs: number): void {
    this.holdUntil = Math.max(this.holdUntil, Date.now() + retryAfterMs);
    this.lastPenaltyAt = Date.now();
    if (this.slowdown < MAX_SLOWDOWN) {
      this.slowdown *= 2;
      this.applySpacing();
    }
  }

  private recover(): void {
    if (this.slowdown <= 1 || Date.now() - this.lastPenaltyAt < (this.opts.recoverAfterMs ?? 5_000)) return;
    this.slowdown = Math.max(1, this.slowdown / 2);
    this.applySpacing();
  }

  private applySpacing(): void {
    const minTime = this.baseMinTime * this.slowdown;
    // With Redis this writes the shared settings, so every process sharing the id slows down.
    this.global.updateSettings({ minTime });
  }

  /** Stops timers, drops queued work and closes the Redis connection. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.recoverTimer);
    await Promise.allSettled([
      this.local.stop({ dropWaitingJobs: true }),
      this.fallback.stop({ dropWaitingJobs: true }),
      // With Redis down there is nothing to unsubscribe from: just drop both connections.
      this.redis && !this.clusterReady ? this.connection?.disconnect(false) : this.global.disconnect(true),
    ]);
    for (const limiter of this.tenants.limiters()) void limiter.limiter.stop({ dropWaitingJobs: true });
  }
}

/**
 * Bottleneck's Redis scripts signal two recoverable states — the limiter's settings key is gone
 * (Redis restarted or flushed) and this client is unknown — and Bottleneck recovers from them by
 * re-running `init` / `register_client`. It matches the bare messages, but Redis 7 prefixes
 * `ERR ` to a script error without an error code (SGrondin/bottleneck#205, #212), so the recovery
 * never runs and every request after a Redis restart fails with `ERR SETTINGS_KEY_NOT_FOUND`.
 * This strips the prefix from those two messages, in the callback Bottleneck gives each script.
 */
function recogniseRedis7Sentinels(connection: Bottleneck.IORedisConnection): void {
  type ScriptCallback = (err: Error | null, replies: unknown) => void;
  const target = connection as unknown as {
    __scriptArgs__(name: string, id: string, args: unknown[], cb: ScriptCallback): unknown[];
  };
  const original = target.__scriptArgs__.bind(connection);
  target.__scriptArgs__ = (name, id, args, cb) =>
    original(name, id, args, (err, replies) => {
      const bare = err && /^ERR (SETTINGS_KEY_NOT_FOUND|UNKNOWN_CLIENT)$/.exec(err.message)?.[1];
      if (err && bare) err.message = bare;
      cb(err, replies);
    });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Parses a Retry-After header (seconds or an HTTP date) into milliseconds; undefined if absent or bad. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
