/** Typed search-attribute keys (sandbox-safe), built from the names in the constants module. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { SearchAttribute } from './constants';

export const PipelineKindKey = defineSearchAttributeKey(SearchAttribute.PipelineKind, SearchAttributeType.KEYWORD);
export const TierKey = defineSearchAttributeKey(SearchAttribute.Tier, SearchAttributeType.KEYWORD);
export const TenantKey = defineSearchAttributeKey(SearchAttribute.Tenant, SearchAttributeType.KEYWORD);
export const StageKey = defineSearchAttributeKey(SearchAttribute.Stage, SearchAttributeType.KEYWORD);
export const PartialKey = defineSearchAttributeKey(SearchAttribute.Partial, SearchAttributeType.BOOL);
