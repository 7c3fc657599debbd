/**
 * Replaying many dead letters at once (`sluice dlq replay --all | --filter …`), at a capped rate so
 * a replay after an incident does not become the next incident.
 */
import type { SluiceClient } from './index';
import { replayDeadLetter, type ReplayOutcome } from './replay';
import type { DeadLetter, DlqStore } from '../dlq/store';

/** Which dead letters: every field given must match. */
export interface DlqFilter {
  kind?: 'pipeline' | 'sub-job';
  tenant?: string;
  /** Recorded at or after this time. */
  since?: Date;
}

const AGE_UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * Parses `kind=pipeline,tenant=acme,since=2h` (`since` an age or an ISO time). Returns the filter
 * or the problem, naming the field (`filter.since: …`).
 */
export function parseDlqFilter(text: string, now = Date.now()): DlqFilter | { error: string; path: string } {
  const filter: DlqFilter = {};
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) return { path: 'filter', error: 'give at least one of kind=, tenant=, since=' };
  for (const part of parts) {
    const eq = part.indexOf('=');
    const key = eq > 0 ? part.slice(0, eq).trim() : part;
    const value = eq > 0 ? part.slice(eq + 1).trim() : '';
    if (eq <= 0 || value === '') return { path: `filter.${key}`, error: `expected ${key}=<value>` };
    if (key === 'kind') {
      if (value !== 'pipeline' && value !== 'sub-job')
        return { path: 'filter.kind', error: `must be pipeline or sub-job, got ${JSON.stringify(value)}` };
      filter.kind = value;
    } else if (key === 'tenant') {
      filter.tenant = value;
    } else if (key === 'since') {
      const age = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(value);
      const at = age ? now - Number(age[1]) * (AGE_UNITS[age[2] as string] as number) : Date.parse(value);
      if (!Number.isFinite(at))
        return {
          path: 'filter.since',
          error: `must be an age (30m, 12h, 7d) or an ISO time, got ${JSON.stringify(value)}`,
        };
      filter.since = new Date(at);
    } else {
      return { path: `filter.${key}`, error: 'unknown field; expected kind, tenant or since' };
    }
  }
  return filter;
}

/** Dead letters not yet replayed that match `filter` (all of them without one), oldest first. */
export async function selectDeadLetters(store: DlqStore, filter: DlqFilter | undefined): Promise<DeadLetter[]> {
  const all = await store.list({ limit: 1_000_000, includeReplayed: false });
  return all
    .filter(
      (r) =>
        !filter ||
        ((!filter.kind || r.kind === filter.kind) &&
          (!filter.tenant || (r.tenant ?? 'default') === filter.tenant) &&
          (!filter.since || new Date(r.failedAt) >= filter.since)),
    )
    .sort((a, b) => a.failedAt.localeCompare(b.failedAt));
}

/** What a bulk replay did. */
export interface BulkReplaySummary {
  selected: number;
  started: number;
  existing: number;
  failed: { id: string; error: string }[];
  outcomes: ReplayOutcome[];
}

/**
 * Replays `records` one at a time, starting at most `ratePerSecond` per second (evenly spaced);
 * a record that fails to replay is reported and the rest go on.
 */
export async function replayDeadLetters(
  client: SluiceClient,
  store: DlqStore,
  records: readonly DeadLetter[],
  opts: { ratePerSecond: number; onProgress?: (done: number) => void },
): Promise<BulkReplaySummary> {
  const spacingMs = 1000 / opts.ratePerSecond;
  const summary: BulkReplaySummary = { selected: records.length, started: 0, existing: 0, failed: [], outcomes: [] };
  const t0 = Date.now();
  for (const [i, rec] of records.entries()) {
    // Start i goes out no earlier than t0 + i × spacing: the cap holds over any window.
    const wait = t0 + i * spacingMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    try {
      const outcome = await replayDeadLetter(client, store, rec.id);
      summary.outcomes.push(outcome);
      if (outcome.started) summary.started++;
      else summary.existing++;
    } catch (err) {
      summary.failed.push({ id: rec.id, error: (err as Error).message });
    }
    opts.onProgress?.(i + 1);
  }
  return summary;
}
