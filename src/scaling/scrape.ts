/**
 * Reads observed activity durations from Prometheus text exposition (a worker's /metrics), so a
 * process that runs no activities itself (the local autoscaler, `sluice capacity`) can still
 * plan with real average durations.
 */
import { isTier, type Tier } from '../shared/constants';
import type { ObservedDuration } from './exporter';

const SAMPLE = /^sluice_activity_duration_seconds_(sum|count)\{([^}]*)\}\s+([0-9.eE+-]+|NaN)/;

/** Sum and count of `sluice_activity_duration_seconds` per tier in a /metrics text. */
export function parseDurationTotals(text: string): Partial<Record<Tier, { sum: number; count: number }>> {
  const out: Partial<Record<Tier, { sum: number; count: number }>> = {};
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const tier = /(?:^|,)tier="([^"]*)"/.exec(m[2] ?? '')?.[1];
    const value = Number(m[3]);
    if (!isTier(tier) || !Number.isFinite(value)) continue;
    const entry = (out[tier] ??= { sum: 0, count: 0 });
    if (m[1] === 'sum') entry.sum += value;
    else entry.count += value;
  }
  return out;
}

/** Adds up totals from several processes into average durations per tier. */
export function mergeDurations(
  totals: readonly Partial<Record<Tier, { sum: number; count: number }>>[],
): Partial<Record<Tier, ObservedDuration>> {
  const acc: Partial<Record<Tier, { sum: number; count: number }>> = {};
  for (const t of totals) {
    for (const [tier, v] of Object.entries(t) as [Tier, { sum: number; count: number }][]) {
      const e = (acc[tier] ??= { sum: 0, count: 0 });
      e.sum += v.sum;
      e.count += v.count;
    }
  }
  const out: Partial<Record<Tier, ObservedDuration>> = {};
  for (const [tier, { sum, count }] of Object.entries(acc) as [Tier, { sum: number; count: number }][]) {
    if (count > 0) out[tier] = { avgSeconds: sum / count, count };
  }
  return out;
}

/** Fetches /metrics from each URL (failures are skipped: a worker may be starting or gone). */
export async function scrapeDurationTotals(
  urls: readonly string[],
  timeoutMs = 1_000,
): Promise<Partial<Record<Tier, { sum: number; count: number }>>[]> {
  const texts = await Promise.all(
    urls.map((url) =>
      fetch(url, { signal: AbortSignal.timeout(timeoutMs) }).then(
        (res) => (res.ok ? res.text() : ''),
        () => '',
      ),
    ),
  );
  return texts.map(parseDurationTotals);
}

const IN_FLIGHT = /^sluice_activities_in_flight(?:\{[^}]*\})?\s+([0-9.eE+-]+)/;

/** Activities running in one process (sum of `sluice_activities_in_flight` over its tiers). */
export function parseInFlight(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    const v = Number(IN_FLIGHT.exec(line)?.[1]);
    if (Number.isFinite(v)) n += v;
  }
  return n;
}

/**
 * Activities running in the process behind `url`; undefined when it does not answer (starting,
 * gone), which a caller about to stop the process must treat as "may be busy".
 */
export async function scrapeInFlight(url: string, timeoutMs = 1_000): Promise<number | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return res.ok ? parseInFlight(await res.text()) : undefined;
  } catch {
    return undefined;
  }
}
