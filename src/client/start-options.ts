/**
 * The one builder of a workflow's start options: its tier's queue, `priority` (priority key,
 * tenant fairness key and weight), the flow memo, the search attributes and the UI summary. The
 * client, the schedules, DLQ replays and the burst demo all start through it, so a scheduled or
 * replayed run carries the same flow settings as one started by an app.
 */
import type { Priority, SearchAttributePair, Workflow } from '@temporalio/common';
import type { SluiceConfig } from '../config';
import {
  FLOW_MEMO_KEY,
  PRIORITY_KEY_BY_TIER,
  REQUEST_MEMO_KEY,
  taskQueueFor,
  type FlowMemo,
  type PipelineKind,
  type Tier,
} from '../shared/constants';
import { PipelineKindKey, TenantKey, TierKey } from '../shared/search-attributes';
import type * as workflows from '../workflows';
import type { BATCH_WORKFLOW_TYPE } from '../workflows/fan-out';

/** The settings a start reads from config: queue suffix, fairness weights, promotion ages. */
export type StartConfig = Pick<SluiceConfig, 'taskQueueSuffix' | 'fairnessWeights' | 'promoteAfterSeconds'>;

/** Names of the workflow types the bundle registers: a misspelt name fails the typecheck. */
export type WorkflowType = {
  [K in keyof typeof workflows]: (typeof workflows)[K] extends Workflow ? K : never;
}[keyof typeof workflows];

/** Fails the typecheck unless the batch child's type (a constant in the sandbox code) is one the bundle exports. */
export type BatchWorkflowType = Registered<typeof BATCH_WORKFLOW_TYPE>;
type Registered<T extends WorkflowType> = T;

/** The workflow function of a {@link WorkflowType}, for typed `args`. */
export type WorkflowOf<N extends WorkflowType> = (typeof workflows)[N];

/** What a start is about. */
export interface StartSpec {
  /** Sets the `PipelineKind` search attribute; omitted for workflows that are not pipelines (the burst demo). */
  kind?: PipelineKind;
  tier: Tier;
  /** The fairness key within the tier's queue, and the `Tenant` search attribute. */
  tenant: string;
  /** 1 (first) to 5 within the tier's queue. @default from the tier ({@link PRIORITY_KEY_BY_TIER}) */
  priorityKey?: number;
  /** Shown in the Temporal UI (`staticSummary`). */
  summary: string;
  /** Fingerprint of the request an edge (the HTTP API) started this run for, kept in the memo. */
  requestHash?: string;
}

/** Start options shared by workflow starts and schedule actions. */
export interface PipelineStartOptions {
  taskQueue: string;
  priority: Required<Pick<Priority, 'priorityKey' | 'fairnessKey'>> & Pick<Priority, 'fairnessWeight'>;
  memo: Record<string, unknown> & { [FLOW_MEMO_KEY]: FlowMemo };
  typedSearchAttributes: SearchAttributePair[];
  staticSummary: string;
}

/**
 * Start options of a run: the tier's queue; `priority` with the priority key from the tier
 * unless given, the tenant as fairness key and its weight from SLUICE_FAIRNESS_WEIGHTS; the flow
 * memo (promotion ages from SLUICE_PROMOTION_AGE_SECONDS), which the workflow passes on to every
 * activity and child since workflows cannot read config; `Tier`, `Tenant` and `PipelineKind`.
 */
export function pipelineStartOptions(config: StartConfig, spec: StartSpec): PipelineStartOptions {
  // Own keys only: a tenant named `constructor` or `toString` must not find Object's members.
  const weight = Object.hasOwn(config.fairnessWeights, spec.tenant) ? config.fairnessWeights[spec.tenant] : undefined;
  return {
    taskQueue: taskQueueFor(spec.tier, config.taskQueueSuffix),
    priority: {
      priorityKey: spec.priorityKey ?? PRIORITY_KEY_BY_TIER[spec.tier],
      fairnessKey: spec.tenant,
      ...(weight !== undefined ? { fairnessWeight: weight } : {}),
    },
    memo: {
      [FLOW_MEMO_KEY]: { promoteAfterSeconds: config.promoteAfterSeconds },
      ...(spec.requestHash ? { [REQUEST_MEMO_KEY]: spec.requestHash } : {}),
    },
    typedSearchAttributes: [
      ...(spec.kind !== undefined ? [{ key: PipelineKindKey, value: spec.kind }] : []),
      { key: TierKey, value: spec.tier },
      { key: TenantKey, value: spec.tenant },
    ],
    staticSummary: spec.summary,
  };
}
