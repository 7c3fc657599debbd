import { describe, expect, it } from 'vitest';
import { planCapacity, type PlannerSettings, type TierLoad } from '../../src/scaling/planner';

const settings: PlannerSettings = {
  slotsPerReplica: 4,
  avgTaskSeconds: 0.2,
  avgTaskSource: 'test',
  drainTargetSeconds: 10,
  reactionSeconds: 30,
  buffer: 0.25,
  minReplicas: 1,
  maxReplicas: 4,
};
const idle: TierLoad = { tier: 'critical', backlog: 0, backlogAgeSeconds: 0, addRate: 0, dispatchRate: 0 };

describe('planCapacity', () => {
  it('an idle queue stays at the minimum', () => {
    const plan = planCapacity(idle, settings);
    expect(plan.desiredReplicas).toBe(1);
    expect(plan.bounded).toBe('min');
    expect(plan.rawReplicas).toBe(0);
  });

  it('clears the backlog within the drain target: backlog × avg ÷ (target × slots), plus 25%', () => {
    // 100 tasks × 0.2 s ÷ (10 s × 4 slots) = 0.5 replicas; ×1.25 = 0.625 → 1.
    expect(planCapacity({ ...idle, backlog: 100 }, settings).desiredReplicas).toBe(1);
    // 400 × 0.2 ÷ 40 = 2 → 2.5 → 3.
    const plan = planCapacity({ ...idle, backlog: 400 }, settings);
    expect(plan.terms.drainReplicas).toBeCloseTo(2);
    expect(plan.terms.bufferedReplicas).toBeCloseTo(2.5);
    expect(plan.desiredReplicas).toBe(3);
    expect(plan.bounded).toBe(false);
  });

  it('is capped at the maximum and says so', () => {
    const plan = planCapacity({ ...idle, backlog: 10_000 }, settings);
    expect(plan.desiredReplicas).toBe(4);
    expect(plan.bounded).toBe('max');
    expect(plan.explanation.join('\n')).toMatch(/capped at the maximum 4/);
  });

  it('a growing backlog scales up before it is deep (add rate above dispatch rate)', () => {
    const shallow = { ...idle, backlog: 20, addRate: 30, dispatchRate: 20 };
    const steady = { ...shallow, dispatchRate: 30 };
    const growing = planCapacity(shallow, { ...settings, maxReplicas: 100 });
    const notGrowing = planCapacity(steady, { ...settings, maxReplicas: 100 });
    expect(growing.terms.growthReplicas).toBeGreaterThan(0);
    expect(notGrowing.terms.growthReplicas).toBe(0);
    expect(growing.desiredReplicas).toBeGreaterThan(notGrowing.desiredReplicas);
  });

  it('keeps up with arrivals even with no backlog (Little’s law)', () => {
    // 40 tasks/s × 0.2 s = 8 busy slots = 2 replicas; ×1.25 = 2.5 → 3.
    const plan = planCapacity({ ...idle, addRate: 40, dispatchRate: 40 }, { ...settings, maxReplicas: 10 });
    expect(plan.terms.arrivalReplicas).toBeCloseTo(2);
    expect(plan.desiredReplicas).toBe(3);
  });

  it('a longer drain target needs fewer replicas for the same backlog', () => {
    const tight = planCapacity({ ...idle, backlog: 400 }, { ...settings, maxReplicas: 100 });
    const loose = planCapacity({ ...idle, backlog: 400 }, { ...settings, drainTargetSeconds: 3600, maxReplicas: 100 });
    expect(loose.desiredReplicas).toBeLessThan(tight.desiredReplicas);
  });

  it('a minimum of 0 allows scaling to zero', () => {
    expect(planCapacity(idle, { ...settings, minReplicas: 0 }).desiredReplicas).toBe(0);
  });

  it('never plans 0 while a task waits, however small the computed need (scale from zero)', () => {
    // One workflow task waiting on a tier at 0, and the server's add rate already back at 0 (the
    // fault suite's last-worker run that starved: 1.7e-7 replicas → 0, the task waited for good).
    const plan = planCapacity(
      { ...idle, backlog: 1, backlogAgeSeconds: 115 },
      { ...settings, avgTaskSeconds: 0.001, drainTargetSeconds: 3600, minReplicas: 0 },
    );
    expect(plan.terms.bufferedReplicas).toBeLessThan(0.01);
    expect(plan.desiredReplicas).toBe(1);
    expect(plan.explanation.join('\n')).toMatch(/1 waiting: at least 1/);
  });

  it('explains every number it used', () => {
    const plan = planCapacity({ ...idle, backlog: 400, backlogAgeSeconds: 12, addRate: 5, dispatchRate: 2 }, settings);
    const text = plan.explanation.join('\n');
    expect(text).toMatch(/backlog 400/);
    expect(text).toMatch(/add rate 5\/s/);
    expect(text).toMatch(/25% buffer/);
    expect(text).toMatch(/OVER TARGET/);
    expect(plan.explanation).toHaveLength(7);
  });
});
