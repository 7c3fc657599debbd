/**
 * Weighted activity slots for a process that serves several tiers: one pool of `total` slots,
 * split by weight (critical 6 : high 3 : default 2 : low 1 by default). Each tier's Worker gets a
 * custom slot supplier (the SDK's `tuner` API) that reserves from the pool, so the split holds
 * before a task is even polled: a tier that is out of slots does not poll, and its backlog stays
 * on the server for other processes.
 *
 * Lending: a tier counts as idle when it has run nothing for `idleAfterMs`. An idle tier keeps one
 * slot (one poller, so new work is still noticed at once) and lends the rest of its share. When
 * work arrives for it, its share is back in force: released slots go to tiers under their share
 * first, most urgent first. A lent slot returns when the activity holding it finishes, so an
 * idle tier's ramp-up is bounded by the borrowers' activity duration, never by their backlog.
 */
import type { ActivitySlotInfo, CustomSlotSupplier, SlotPermit, SlotSupplier } from '@temporalio/worker';
import { TIERS, type Tier } from '../shared/constants';

/** Options of a {@link WeightedSlotPool}. */
export interface WeightedSlotPoolOptions {
  /** Slots in all; raised to the number of tiers so each has at least one. */
  total: number;
  /** Tiers served by this process. */
  tiers: readonly Tier[];
  /** Weight per tier. */
  weights: Readonly<Record<Tier, number>>;
  /** A tier with nothing running for this long lends its share. @default 1000 */
  idleAfterMs?: number;
  /** Clock (tests). @default Date.now */
  now?: () => number;
}

interface TierState {
  share: number;
  reserved: number;
  used: number;
  lastUsedAt: number;
}

interface Waiter {
  tier: Tier;
  resolve: (permit: PoolPermit) => void;
}

/** The permit handed to the SDK; `id` survives a round trip through the native bridge. */
interface PoolPermit extends SlotPermit {
  id: number;
  tier: Tier;
}

/** Split `total` by `weights` with largest remainders, at least 1 each. */
export function splitSlots(total: number, tiers: readonly Tier[], weights: Readonly<Record<Tier, number>>) {
  const n = Math.max(total, tiers.length);
  const raw = tiers.map((t) => Math.max(0, weights[t]));
  const sum = raw.reduce((a, b) => a + b, 0);
  // All-zero weights mean an equal split.
  const exact = tiers.map((t, i) => ({ t, x: sum > 0 ? ((raw[i] ?? 0) * n) / sum : n / tiers.length }));
  const shares = Object.fromEntries(exact.map(({ t, x }) => [t, Math.max(1, Math.floor(x))])) as Record<Tier, number>;
  let left = n - tiers.reduce((s, t) => s + shares[t], 0);
  // Remainders go to the largest fractional parts, ties to the more urgent tier (TIERS order).
  const byRemainder = [...exact].sort((a, b) => b.x - Math.floor(b.x) - (a.x - Math.floor(a.x)));
  for (let i = 0; left > 0; i = (i + 1) % byRemainder.length, left--) shares[byRemainder[i]!.t]++;
  // Flooring plus the minimum of 1 may overshoot: take back from the largest shares.
  while (left < 0) {
    const biggest = [...tiers].sort((a, b) => shares[b] - shares[a])[0]!;
    if (shares[biggest] <= 1) break;
    shares[biggest]--;
    left++;
  }
  return shares;
}

/** One process-wide pool of activity slots shared by the tiers' Workers. */
export class WeightedSlotPool {
  readonly total: number;
  private readonly state = new Map<Tier, TierState>();
  private readonly permits = new Map<number, PoolPermit & { used: boolean }>();
  private readonly waiters: Waiter[] = [];
  private nextId = 1;
  private readonly idleAfterMs: number;
  private readonly now: () => number;
  private recheck: NodeJS.Timeout | undefined;

  constructor(opts: WeightedSlotPoolOptions) {
    const tiers = TIERS.filter((t) => opts.tiers.includes(t));
    this.total = Math.max(opts.total, tiers.length);
    this.idleAfterMs = opts.idleAfterMs ?? 1_000;
    this.now = opts.now ?? Date.now;
    const shares = splitSlots(this.total, tiers, opts.weights);
    for (const t of tiers) this.state.set(t, { share: shares[t], reserved: 0, used: 0, lastUsedAt: -Infinity });
  }

  /** Configured share of each served tier. */
  get shares(): Record<Tier, number> {
    return Object.fromEntries([...this.state].map(([t, s]) => [t, s.share])) as Record<Tier, number>;
  }

  /** Reserved (polling or running) and used (running) slots per tier. */
  snapshot(): Record<string, { share: number; reserved: number; used: number }> {
    return Object.fromEntries(
      [...this.state].map(([t, s]) => [t, { share: s.share, reserved: s.reserved, used: s.used }]),
    );
  }

  /** True when the pool serves a single tier: it has nobody to lend to, and its Worker owns every slot. */
  get singleTier(): boolean {
    return this.state.size === 1;
  }

  /**
   * What one tier's Worker gets as `tuner.activityTaskSlotSupplier`: for a {@link singleTier}
   * pool, the SDK's own fixed-size supplier (no round trip into JavaScript for every slot);
   * otherwise {@link supplierFor}.
   */
  workerSupplierFor(tier: Tier): SlotSupplier<ActivitySlotInfo> {
    return this.singleTier && this.state.has(tier)
      ? { type: 'fixed-size', numSlots: this.total }
      : this.supplierFor(tier);
  }

  /** The weighted, lending slot supplier for one tier's Worker. */
  supplierFor(tier: Tier): CustomSlotSupplier<ActivitySlotInfo> {
    if (!this.state.has(tier)) throw new Error(`tier ${tier} is not served by this pool`);
    return {
      type: 'custom',
      reserveSlot: (_ctx, abortSignal) => this.reserve(tier, abortSignal),
      tryReserveSlot: () => (this.canGrant(tier) ? this.grant(tier) : null),
      markSlotUsed: (ctx) => this.markUsed(ctx.permit as PoolPermit),
      releaseSlot: (ctx) => this.release(ctx.permit as PoolPermit),
    };
  }

  /** Stops the background re-check (call when the Workers have stopped). */
  close(): void {
    if (this.recheck) clearInterval(this.recheck);
    this.recheck = undefined;
  }

  private busy(s: TierState): boolean {
    return s.used > 0 || this.now() - s.lastUsedAt < this.idleAfterMs;
  }

  /** Slots a tier may hold without borrowing: its share while busy, one poller while idle. */
  private protectedFor(s: TierState): number {
    return this.busy(s) ? s.share : Math.min(1, s.share);
  }

  private reservedTotal(): number {
    let n = 0;
    for (const s of this.state.values()) n += s.reserved;
    return n;
  }

  private canGrant(tier: Tier): boolean {
    const s = this.state.get(tier)!;
    const free = this.total - this.reservedTotal();
    if (free <= 0) return false;
    if (s.reserved < this.protectedFor(s)) return true;
    // Only a tier with work borrows; an idle tier's pollers keep to their one slot.
    if (!this.busy(s)) return false;
    // Borrowing: leave enough free slots for every other tier to reach what it is owed.
    let owed = 0;
    for (const [t, o] of this.state) if (t !== tier) owed += Math.max(0, this.protectedFor(o) - o.reserved);
    return free - owed >= 1;
  }

  private grant(tier: Tier): PoolPermit {
    const s = this.state.get(tier)!;
    s.reserved++;
    const permit = { id: this.nextId++, tier, used: false };
    this.permits.set(permit.id, permit);
    return { id: permit.id, tier };
  }

  private reserve(tier: Tier, abortSignal: AbortSignal): Promise<PoolPermit> {
    // The SDK expects exactly the signal's reason back (an AbortError).
    if (abortSignal.aborted) return Promise.reject(abortSignal.reason as Error);
    if (this.waiters.length === 0 && this.canGrant(tier)) return Promise.resolve(this.grant(tier));
    return new Promise<PoolPermit>((resolve, reject) => {
      const waiter: Waiter = { tier, resolve };
      this.waiters.push(waiter);
      this.ensureRecheck();
      this.drain();
      if (!this.waiters.includes(waiter)) return;
      abortSignal.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          // The SDK expects exactly the signal's reason back.
          reject(abortSignal.reason as Error);
        },
        { once: true },
      );
    });
  }

  private markUsed(permit: PoolPermit): void {
    const p = this.permits.get(permit.id);
    const s = this.state.get(permit.tier);
    if (!p || !s || p.used) return;
    p.used = true;
    s.used++;
    s.lastUsedAt = this.now();
    // This tier just turned busy: its share is owed again, which may change who goes next.
    this.drain();
  }

  private release(permit: PoolPermit): void {
    const p = this.permits.get(permit.id);
    const s = this.state.get(permit.tier);
    if (!p || !s) return;
    this.permits.delete(permit.id);
    s.reserved--;
    if (p.used) {
      s.used--;
      s.lastUsedAt = this.now();
    }
    this.drain();
  }

  /** Hands free slots to waiters: tiers under what they are owed first, most urgent first. */
  private drain(): void {
    for (;;) {
      const order = [...this.waiters].sort((a, b) => this.rank(a.tier) - this.rank(b.tier));
      const next = order.find((w) => this.canGrant(w.tier));
      if (!next) break;
      this.waiters.splice(this.waiters.indexOf(next), 1);
      next.resolve(this.grant(next.tier));
    }
    if (this.waiters.length === 0) this.close();
  }

  private rank(tier: Tier): number {
    const s = this.state.get(tier)!;
    const under = s.reserved < this.protectedFor(s) ? 0 : 10;
    return under + TIERS.indexOf(tier);
  }

  /** Idleness changes with time alone, so waiting reservations are looked at again periodically. */
  private ensureRecheck(): void {
    if (this.recheck) return;
    this.recheck = setInterval(() => this.drain(), Math.max(50, Math.floor(this.idleAfterMs / 4)));
    this.recheck.unref();
  }
}
