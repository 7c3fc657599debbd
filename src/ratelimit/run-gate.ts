/**
 * Prefetch (SLUICE_PREFETCH): a worker polls for up to `slots + prefetch` activity tasks, and this
 * gate lets only `slots` of them run at once. When one finishes, the next held task starts at once,
 * while its replacement is polled in the background: the poll and the completion round trip no
 * longer sit between two tasks. Waiting tasks go most urgent tier first, then in arrival order.
 */
import type { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import { TIERS, type Tier } from '../shared/constants';

interface Waiter {
  rank: number;
  resolve: () => void;
}

/** Lets at most `capacity` holders run at once; the rest wait, most urgent tier first. */
export class RunGate {
  private running = 0;
  private readonly waiters: Waiter[] = [];

  constructor(readonly capacity: number) {}

  /** Tasks held and waiting for a slot to run. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Takes a running place if one is free and nobody waits for it; true when taken. */
  tryAcquire(): boolean {
    if (this.running >= this.capacity || this.waiters.length > 0) return false;
    this.running++;
    return true;
  }

  /** Resolves when the caller may run; rejects with the signal's reason if it aborts first. */
  acquire(tier: Tier, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { rank: TIERS.indexOf(tier), resolve };
      // After every waiter of the same or a more urgent tier: urgency first, then arrival order.
      const at = this.waiters.findIndex((w) => w.rank > waiter.rank);
      this.waiters.splice(at < 0 ? this.waiters.length : at, 0, waiter);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(waiter);
          if (i < 0) return;
          this.waiters.splice(i, 1);
          reject(signal.reason as Error);
        },
        { once: true },
      );
    });
  }

  /** Frees a running place and hands it to the first waiter. */
  release(): void {
    const next = this.waiters.shift();
    if (next) next.resolve();
    else this.running--;
  }
}

/**
 * The activity interceptor that holds each task at the gate until it may run. A held task whose
 * activity has a heartbeat timeout keeps heartbeating (with the details it arrived with, so a
 * resumable activity still finds its progress), and a cancelled one leaves the queue at once.
 */
export class RunGateInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: Context,
    private readonly gate: RunGate,
    private readonly tier: Tier,
    private readonly onWaiting: (delta: number) => void,
  ) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    if (!this.gate.tryAcquire()) await this.wait();
    try {
      return await next(input);
    } finally {
      this.gate.release();
    }
  }

  /** Waits at the gate, heartbeating and counted as held, until a running place is handed over. */
  private async wait(): Promise<void> {
    const heartbeatMs = this.ctx.info.heartbeatTimeoutMs;
    const beat = heartbeatMs
      ? setInterval(
          () => this.ctx.heartbeat(this.ctx.info.heartbeatDetails),
          Math.max(100, Math.min(1_000, heartbeatMs / 3)),
        )
      : undefined;
    this.onWaiting(1);
    try {
      await this.gate.acquire(this.tier, this.ctx.cancellationSignal);
    } finally {
      this.onWaiting(-1);
      clearInterval(beat);
    }
  }
}
