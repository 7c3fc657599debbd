/**
 * Scaling targets per tier that `deploy/` is generated from (scripts/gen-deploy.ts): how long a
 * typical task of the tier runs, and from that and the tier's SLA the KEDA `targetQueueSize`.
 * Kept with the planner so the cluster and the local autoscaler reason the same way.
 */
import { TIER_SLA_SECONDS, type Tier } from '../shared/constants';

/** Typical activity duration per tier in seconds (thumbnails and webhooks … backfills). */
export const NOMINAL_TASK_SECONDS: Readonly<Record<Tier, number>> = {
  critical: 2,
  high: 20,
  default: 30,
  low: 60,
};

/** Activity slots per worker pod in deploy/ (SLUICE_SLOTS_<TIER>). */
export const DEPLOY_SLOTS: Readonly<Record<Tier, number>> = { critical: 4, high: 4, default: 4, low: 2 };

/** Worker shutdown grace per tier in deploy/ (SLUICE_SHUTDOWN_GRACE_MS): long enough for one typical task, with margin. */
export const DEPLOY_SHUTDOWN_GRACE_MS: Readonly<Record<Tier, number>> = {
  critical: 30_000,
  high: 120_000,
  default: 180_000,
  low: 300_000,
};

/** Planner headroom used for the KEDA target too. */
export const DEPLOY_BUFFER = 0.25;

/**
 * KEDA `targetQueueSize` for a tier: the backlog one replica can clear within the tier's SLA
 * (`SLA × slots ÷ task seconds`), less the 25% buffer. KEDA then wants `ceil(backlog ÷ target)`
 * replicas, which is the planner's drain term with the same buffer.
 */
export function kedaTargetQueueSize(tier: Tier): number {
  const perReplica = (TIER_SLA_SECONDS[tier] * DEPLOY_SLOTS[tier]) / NOMINAL_TASK_SECONDS[tier];
  return Math.max(1, Math.floor(perReplica / (1 + DEPLOY_BUFFER)));
}
