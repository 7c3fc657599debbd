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
import type { Duration, Priority } from '@temporalio/common';
import { pipelineStartOptions, type StartConfig, type WorkflowOf } from '../client/start-options';
import { PipelineKind, pipelineWorkflowId } from '../shared/constants';
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

/**
 * The action of a schedule. The 1.24 options type omits `priority`, although the client encodes
 * it (schedule-helpers.js) and describes it back; this type adds it.
 */
type StartReportAction = ScheduleOptionsStartWorkflowAction<WorkflowOf<'reportPipelineWorkflow'>> & {
  priority?: Priority;
};

/**
 * The schedule options of a definition, with the hash of everything that defines it. The action
 * gets the same start options as a run started by the client (queue, priority key, tenant
 * fairness key and weight, flow memo, search attributes), so a scheduled low-tier report is
 * promoted and shares its queue fairly like any other.
 */
export function scheduleOptionsOf(def: ScheduleDefinition, config: StartConfig): ScheduleOptions {
  const input = def.input;
  const range = input.lastMonths ? `last ${input.lastMonths} months` : `${input.from} … ${input.to}`;
  const action: StartReportAction = {
    type: 'startWorkflow',
    workflowType: 'reportPipelineWorkflow',
    // Temporal appends the scheduled time to this ID for each run.
    workflowId: pipelineWorkflowId(PipelineKind.report, input.tenant, def.id),
    args: [input],
    ...pipelineStartOptions(config, {
      kind: PipelineKind.report,
      tier: def.tier,
      tenant: input.tenant,
      priorityKey: input.priorityKey,
      summary: `scheduled report ${def.id}: ${range}, ${input.measures.join(', ')} by ${input.groupBy.join(', ') || 'all'} (${def.tier})`,
    }),
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
    action: { ...action, memo: { ...action.memo, [SCHEDULE_HASH_MEMO]: hash } },
    policies,
    state: { paused: def.paused, note: def.description ?? 'applied by sluice schedule apply' },
  };
}

/** Creates or updates each schedule; returns what happened to each. */
export async function applySchedules(
  client: Client,
  defs: readonly ScheduleDefinition[],
  config: StartConfig,
): Promise<{ id: string; outcome: ApplyOutcome }[]> {
  const results: { id: string; outcome: ApplyOutcome }[] = [];
  for (const def of defs) {
    const options = scheduleOptionsOf(def, config);
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
