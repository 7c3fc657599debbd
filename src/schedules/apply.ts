/**
 * `sluice schedule apply`: creates or updates Temporal schedules from their definitions,
 * idempotently. Each schedule's action carries a hash of its definition in its memo; a schedule
 * whose hash matches is left alone, so applying the same file twice changes nothing.
 */
import crypto from 'node:crypto';
import {
  ScheduleNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
  type ScheduleOptionsStartWorkflowAction,
  type ScheduleSpec,
} from '@temporalio/client';
import type { Duration, Workflow } from '@temporalio/common';
import { PipelineKind, pipelineWorkflowId, taskQueueFor } from '../shared/constants';
import { PipelineKindKey, TenantKey, TierKey } from '../shared/search-attributes';
import type { ScheduleDefinition } from './file';

/** Memo key holding the hash of the applied definition. */
export const SCHEDULE_HASH_MEMO = 'sluiceScheduleHash';

export type ApplyOutcome = 'created' | 'updated' | 'unchanged';

function specOf(def: ScheduleDefinition): ScheduleSpec {
  return def.calendar
    ? {
        calendars: def.calendar.map((c) => ({
          ...(c.minute !== undefined ? { minute: c.minute } : {}),
          ...(c.hour !== undefined ? { hour: c.hour } : {}),
          ...(c.dayOfMonth !== undefined ? { dayOfMonth: c.dayOfMonth } : {}),
          ...(c.dayOfWeek !== undefined ? { dayOfWeek: c.dayOfWeek } : {}),
          ...(c.comment !== undefined ? { comment: c.comment } : {}),
        })),
        timezone: def.timezone,
      }
    : { intervals: [{ every: def.every as Duration }], timezone: def.timezone };
}

/** The schedule options of a definition, with the hash of everything that defines it. */
export function scheduleOptionsOf(def: ScheduleDefinition, taskQueueSuffix: string): ScheduleOptions {
  const input = def.input;
  const range = input.lastMonths ? `last ${input.lastMonths} months` : `${input.from} … ${input.to}`;
  const action: ScheduleOptionsStartWorkflowAction<Workflow> = {
    type: 'startWorkflow',
    workflowType: 'reportPipelineWorkflow',
    // Temporal appends the scheduled time to this ID for each run.
    workflowId: pipelineWorkflowId(PipelineKind.report, input.tenant, def.id),
    taskQueue: taskQueueFor(def.tier, taskQueueSuffix),
    args: [input],
    typedSearchAttributes: [
      { key: PipelineKindKey, value: PipelineKind.report },
      { key: TierKey, value: def.tier },
      { key: TenantKey, value: input.tenant },
    ],
    staticSummary: `scheduled report ${def.id}: ${range}, ${input.measures.join(', ')} by ${input.groupBy.join(', ') || 'all'} (${def.tier})`,
  };
  const spec = specOf(def);
  const policies = {
    overlap: def.overlap,
    catchupWindow: def.catchupWindow as Duration,
    pauseOnFailure: def.pauseOnFailure,
  };
  const hash = crypto
    .createHash('sha256')
    .update(
      JSON.stringify({
        spec,
        policies,
        action: { ...action, typedSearchAttributes: [def.tier, input.tenant] },
        description: def.description,
      }),
    )
    .digest('hex')
    .slice(0, 32);
  return {
    scheduleId: def.id,
    spec,
    action: { ...action, memo: { [SCHEDULE_HASH_MEMO]: hash } },
    policies,
    state: { paused: def.paused, note: def.description ?? 'applied by sluice schedule apply' },
  };
}

/** Creates or updates each schedule; returns what happened to each. */
export async function applySchedules(
  client: Client,
  defs: readonly ScheduleDefinition[],
  taskQueueSuffix: string,
): Promise<{ id: string; outcome: ApplyOutcome }[]> {
  const results: { id: string; outcome: ApplyOutcome }[] = [];
  for (const def of defs) {
    const options = scheduleOptionsOf(def, taskQueueSuffix);
    const handle = client.schedule.getHandle(def.id);
    let current: ScheduleDescription | undefined;
    try {
      current = await handle.describe();
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
    if (!current) {
      await client.schedule.create(options);
      results.push({ id: def.id, outcome: 'created' });
      continue;
    }
    const want = (options.action.memo as Record<string, unknown>)[SCHEDULE_HASH_MEMO];
    const have = current.action.type === 'startWorkflow' ? current.action.memo?.[SCHEDULE_HASH_MEMO] : undefined;
    if (have === want) {
      results.push({ id: def.id, outcome: 'unchanged' });
      continue;
    }
    // Pause state is operational (`sluice schedule pause`): an update keeps it.
    await handle.update((prev) => ({
      spec: options.spec,
      action: options.action,
      policies: options.policies,
      state: { paused: prev.state.paused, note: prev.state.note },
    }));
    results.push({ id: def.id, outcome: 'updated' });
  }
  return results;
}
