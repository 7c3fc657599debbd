/**
 * Temporal durations (`'5 minutes'`, `'30s'`, or milliseconds) as milliseconds, parsed with `ms`,
 * the parser the SDK itself uses, instead of a deep import of the SDK's internal time module.
 * Sandbox-safe.
 */
import type { Duration } from '@temporalio/common';
import ms from 'ms';

/** Milliseconds of a Temporal `Duration`; throws a TypeError naming a string it cannot read. */
export function durationMs(value: Duration): number {
  if (typeof value === 'number') return value;
  const millis = ms(value);
  if (millis == null || Number.isNaN(millis)) throw new TypeError(`Invalid duration string: '${value}'`);
  return millis;
}
