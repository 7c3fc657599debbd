/**
 * A pipeline owns its contract (runs in the sandbox): at its first workflow task it checks that
 * it was started consistently, and sets for itself what Sluice's client sets at start, so a run
 * started by any client (Go, Python, the `temporal` CLI, the UI) behaves the same: the
 * `PipelineKind`/`Tier`/`Tenant` search attributes, the priority and fairness key of its
 * activities and children, and the promotion ages. Helpers only; not re-exported.
 */
import { ApplicationFailure, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { SearchAttributePair } from '@temporalio/common';
import { startContractIssues, type ContractInput } from '../shared/contract';
import {
  DEFAULT_PROMOTE_AFTER_SECONDS,
  FLOW_MEMO_KEY,
  FailureType,
  PRIORITY_KEY_BY_TIER,
  type FlowMemo,
  type PipelineKind,
  type Tier,
} from '../shared/constants';
import { PipelineKindKey, TenantKey, TierKey } from '../shared/search-attributes';
import { adoptRunFlow } from './flow-control';

/**
 * Patch ID guarding the contract checks and self-set attributes, priority and flow settings:
 * histories recorded before it replay as they ran.
 */
export const CONTRACT_PATCH = 'sluice-contract-v1';

/** Throws the non-retryable InvalidInput every pipeline uses for bad input, naming each field. */
export function failInvalidInput(issues: { path: string; message: string }[]): never {
  throw ApplicationFailure.create({
    type: FailureType.InvalidInput,
    nonRetryable: true,
    message: issues.map((i) => `${i.path}: ${i.message}`).join('; '),
    details: [issues],
  });
}

/**
 * Checks the start against the input (task queue of its tier, workflow ID of its kind, tenant
 * and key) and adopts the input's priority, fairness key and flow settings. Call once, after the
 * input parsed, before any activity, child or timer.
 *
 * The check runs on replay too, against the replaying worker's task queue: replay a history with
 * `replayName` = the queue its run started on (`Worker.runReplayHistories` names its queue
 * `<replayName>-<n>`, which parses as that tier), as test/workflows/replay.test.ts does.
 */
export function ownContract(
  kind: PipelineKind,
  input: ContractInput & { priorityKey?: number; promoteAfterSeconds?: Partial<Record<Tier, number>> },
): void {
  if (!patched(CONTRACT_PATCH)) return;
  const info = workflowInfo();
  const issues = startContractIssues(kind, input, info);
  if (issues.length > 0) failInvalidInput(issues);

  const attrs = info.typedSearchAttributes;
  const missing: SearchAttributePair[] = [];
  if (attrs.get(PipelineKindKey) === undefined) missing.push({ key: PipelineKindKey, value: kind });
  if (attrs.get(TierKey) === undefined) missing.push({ key: TierKey, value: input.tier });
  if (attrs.get(TenantKey) === undefined) missing.push({ key: TenantKey, value: input.tenant });
  if (missing.length > 0) upsertSearchAttributes(missing);

  // The start's priority key (Sluice's client sets the same one) unless the input names its own;
  // the tenant is always the fairness key; the weight comes only from the starter's config.
  // An unset proto field decodes as 0: treat 0 as "not set".
  const started = info.priority;
  const startedKey = started?.priorityKey ? started.priorityKey : undefined;
  const startedWeight = started?.fairnessWeight ? started.fairnessWeight : undefined;
  const memo = info.memo?.[FLOW_MEMO_KEY] as FlowMemo | undefined;
  adoptRunFlow({
    priority: {
      priorityKey: input.priorityKey ?? startedKey ?? PRIORITY_KEY_BY_TIER[input.tier],
      fairnessKey: input.tenant,
      ...(startedWeight !== undefined ? { fairnessWeight: startedWeight } : {}),
    },
    flow:
      memo && typeof memo === 'object'
        ? memo
        : { promoteAfterSeconds: input.promoteAfterSeconds ?? { ...DEFAULT_PROMOTE_AFTER_SECONDS } },
  });
}
