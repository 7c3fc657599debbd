/**
 * Capacity planner: how many worker processes (replicas) a tier needs, from its task-queue
 * stats. One pure function feeds `sluice capacity`, the `sluice_desired_replicas` gauge and the
 * local autoscaler, so all three always agree.
 *
 * The model, per tier:
 * - one replica finishes `slots ÷ avgTaskSeconds` tasks per second;
 * - the backlog must be cleared within the drain target (the tier's schedule-to-start SLA), so
 *   draining it needs `backlog × avgTaskSeconds ÷ (target × slots)` replicas;
 * - arrivals keep coming at the add rate, which needs `addRate × avgTaskSeconds ÷ slots`
 *   replicas on top (Little's law);
 * - when tasks are added faster than they are dispatched, the backlog is growing: it is
 *   projected forward by `(addRate − dispatchRate) × reactionSeconds`, so a growing backlog
 *   scales up before it is deep;
 * - plus a buffer (25%), rounded up, bounded by min and max.
 */
import type { Tier } from '../shared/constants';

/** What the planner reads for one tier. */
export interface TierLoad {
  tier: Tier;
  /** Activity + workflow tasks waiting in the tier's queue (sticky tasks are not counted by the server). */
  backlog: number;
  /** Age of the oldest waiting task, in seconds. */
  backlogAgeSeconds: number;
  /** Tasks added per second (server's 30 s average). */
  addRate: number;
  /** Tasks dispatched to workers per second (server's 30 s average). */
  dispatchRate: number;
}

/** Tunables of the planner (from config; see `SLUICE_SCALE_*`). */
export interface PlannerSettings {
  /** Activity slots of one replica of this tier. */
  slotsPerReplica: number;
  /** Average task duration in seconds. */
  avgTaskSeconds: number;
  /** Where `avgTaskSeconds` comes from, for the explanation ("observed over 120 tasks", "configured default"). */
  avgTaskSource: string;
  /** Time in which the backlog should be cleared: the tier's SLA unless overridden. */
  drainTargetSeconds: number;
  /** How far ahead a growing backlog is projected (roughly how long new replicas take to help). @default 30 */
  reactionSeconds: number;
  /** Headroom on top of the computed need. @default 0.25 */
  buffer: number;
  minReplicas: number;
  maxReplicas: number;
}

/** The planner's answer for one tier, with every number explained. */
export interface CapacityPlan {
  tier: Tier;
  desiredReplicas: number;
  /** The need before rounding and bounds (replicas, fractional). */
  rawReplicas: number;
  /** True when min or max changed the answer. */
  bounded: 'min' | 'max' | false;
  terms: {
    drainReplicas: number;
    arrivalReplicas: number;
    growthReplicas: number;
    bufferedReplicas: number;
  };
  inputs: TierLoad & Omit<PlannerSettings, 'avgTaskSource'> & { avgTaskSource: string };
  /** One line per number, in the order they are computed. */
  explanation: string[];
}

const fmt = (n: number, digits = 2): string => (Number.isInteger(n) ? String(n) : n.toFixed(digits));

/** Desired replicas for one tier (pure: same inputs, same answer). */
export function planCapacity(load: TierLoad, s: PlannerSettings): CapacityPlan {
  const backlog = Math.max(0, load.backlog);
  const add = Math.max(0, load.addRate);
  const dispatch = Math.max(0, load.dispatchRate);
  const slots = Math.max(1, s.slotsPerReplica);
  const avg = Math.max(0.001, s.avgTaskSeconds);
  const target = Math.max(1, s.drainTargetSeconds);
  const perReplicaRate = slots / avg;

  const drainReplicas = (backlog * avg) / (target * slots);
  const arrivalReplicas = (add * avg) / slots;
  const growth = Math.max(0, add - dispatch);
  const growthReplicas = (growth * s.reactionSeconds * avg) / (target * slots);
  const rawReplicas = drainReplicas + arrivalReplicas + growthReplicas;
  const bufferedReplicas = rawReplicas * (1 + s.buffer);
  // A tiny residue (float noise) must not hold a replica up on its own; but a task that waits
  // needs a worker: with a backlog the tier never plans 0 (scale from zero, as KEDA activates on
  // a queue size above 0), whatever the rates say (the server's add rate reads 0 between bursts).
  const computed = bufferedReplicas < 0.01 ? 0 : Math.ceil(bufferedReplicas - 1e-9);
  const rounded = backlog > 0 ? Math.max(1, computed) : computed;
  const desiredReplicas = Math.min(s.maxReplicas, Math.max(s.minReplicas, rounded));
  const bounded = rounded < s.minReplicas ? 'min' : rounded > s.maxReplicas ? 'max' : false;

  const explanation = [
    `one replica runs ${slots} slots × 1/${fmt(avg)} s = ${fmt(perReplicaRate)} tasks/s (average task ${fmt(avg)} s: ${s.avgTaskSource})`,
    `drain: backlog ${backlog} × ${fmt(avg)} s ÷ (${fmt(target)} s target × ${slots} slots) = ${fmt(drainReplicas)} replicas`,
    `arrivals: add rate ${fmt(add)}/s × ${fmt(avg)} s ÷ ${slots} slots = ${fmt(arrivalReplicas)} replicas`,
    growth > 0
      ? `growth: add ${fmt(add)}/s > dispatch ${fmt(dispatch)}/s, backlog grows ${fmt(growth)}/s; over ${s.reactionSeconds} s that is ${fmt(growth * s.reactionSeconds)} more tasks = ${fmt(growthReplicas)} replicas`
      : `growth: add ${fmt(add)}/s ≤ dispatch ${fmt(dispatch)}/s, backlog not growing: 0 replicas`,
    `need ${fmt(rawReplicas)} + ${Math.round(s.buffer * 100)}% buffer = ${fmt(bufferedReplicas)} → ${computed}` +
      (rounded > computed ? `; ${backlog} waiting: at least 1` : ''),
    bounded === 'min'
      ? `raised to the minimum ${s.minReplicas}`
      : bounded === 'max'
        ? `capped at the maximum ${s.maxReplicas}`
        : `within bounds [${s.minReplicas}, ${s.maxReplicas}]`,
    `oldest task waits ${fmt(load.backlogAgeSeconds, 1)} s (target ${fmt(target)} s)${load.backlogAgeSeconds > target ? ': OVER TARGET' : ''}`,
  ];
  return {
    tier: load.tier,
    desiredReplicas,
    rawReplicas,
    bounded,
    terms: { drainReplicas, arrivalReplicas, growthReplicas, bufferedReplicas },
    inputs: { ...load, ...s },
    explanation,
  };
}
