/**
 * Report pipeline contract: the measure and group-by allow-lists, the input schema (checked at
 * the edge and again inside the workflow), month arithmetic, and the result type.
 * Sandbox-safe: no Node built-ins.
 */
import type { AfterFinalStatus, Artifact } from './artifact';
import { z } from 'zod';
import { DEFAULT_TENANT, DEFAULT_TIER, IDEMPOTENCY_KEY_PATTERN, TENANT_PATTERN, TIERS, type Tier } from './constants';
import { FailurePolicyInputSchema, type DeadLetterStatus } from './fan-out';
import { PromoteAfterSecondsSchema } from './flow';
import { WebhookTargetSchema, type WebhookOutcome } from './webhook';

/**
 * Measures a report may ask for. Every partition returns the same partial aggregates (count,
 * sum, min, max of `amount` in cents) so partitions merge exactly; a measure is a function of
 * those partials. User text only ever selects a key here: nothing of it reaches SQL.
 */
export const MEASURES = {
  /** Number of orders. */
  orders: 'number of orders',
  /** Sum of `amount`. */
  revenue: 'sum of amount',
  /** Mean `amount`, rounded to cents. */
  avg_amount: 'mean amount',
  /** Smallest `amount`. */
  min_amount: 'smallest amount',
  /** Largest `amount`. */
  max_amount: 'largest amount',
} as const;
export type Measure = keyof typeof MEASURES;
export const MEASURE_NAMES = Object.keys(MEASURES) as Measure[];

/**
 * Group-by columns a report may use. `month` is the partition itself; the others are columns
 * of the orders dataset. The SQL column for each lives in `src/data/queries.ts`.
 */
export const GROUP_BY = {
  month: 'partition month (YYYY-MM)',
  tenant: 'tenant of the order',
  region: 'sales region',
  product: 'product',
} as const;
export type GroupBy = keyof typeof GROUP_BY;
export const GROUP_BY_NAMES = Object.keys(GROUP_BY) as GroupBy[];

/** Output formats; every run writes all three, the format picks the primary artifact. */
export const REPORT_FORMATS = ['csv', 'json', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** Report sources: the embedded default (DuckDB over Parquet) and production (PostgreSQL). */
export const REPORT_SOURCES = ['duckdb', 'postgres'] as const;

/** Defaults of the report input (the schema applies them; clients need not). */
export const REPORT_DEFAULTS = {
  /** @default ['orders', 'revenue'] */
  measures: ['orders', 'revenue'] as readonly Measure[],
  /** @default ['month'] */
  groupBy: ['month'] as readonly GroupBy[],
  /** @default 'html' */
  format: 'html' as ReportFormat,
} as const;

/** `YYYY-MM`, months 01-12. */
export const MONTH_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;

/** Limits on report input, checked at the edge and in the workflow. */
export const REPORT_LIMITS = {
  /** Most months one report may span. */
  maxMonths: 240,
  /** Most shards a partition may be split into (sub-jobs = months × shards). */
  maxShards: 2_000,
  /** @default 12 — sub-jobs in flight. */
  defaultWindow: 12,
} as const;

/** Months from `from` to `to` inclusive (`YYYY-MM`); empty when `from` is after `to`. */
export function monthRange(from: string, to: string): string[] {
  const [fy, fm] = from.split('-').map(Number) as [number, number];
  const [ty, tm] = to.split('-').map(Number) as [number, number];
  const out: string[] = [];
  for (let y = fy, m = fm; y < ty || (y === ty && m <= tm); m === 12 ? ((y += 1), (m = 1)) : (m += 1)) {
    out.push(`${y}-${String(m).padStart(2, '0')}`);
    if (out.length > REPORT_LIMITS.maxMonths) break;
  }
  return out;
}

/** `YYYY-MM` plus `n` months (n may be negative). */
export function addMonths(month: string, n: number): string {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const total = y * 12 + (m - 1) + n;
  return `${Math.floor(total / 12)}-${String((total % 12) + 1).padStart(2, '0')}`;
}

const month = z.string().regex(MONTH_PATTERN, 'must be a month as YYYY-MM');
// Enums (not refined strings) so the generated JSON Schema lists the names.
const measure = z.enum(MEASURE_NAMES as [Measure, ...Measure[]], {
  errorMap: () => ({ message: `unknown measure; expected one of ${MEASURE_NAMES.join(', ')}` }),
});
const groupBy = z.enum(GROUP_BY_NAMES as [GroupBy, ...GroupBy[]], {
  errorMap: () => ({ message: `not an allowed group-by column; expected some of ${GROUP_BY_NAMES.join(', ')}` }),
});

/** Schema of {@link ReportPipelineInput}. */
export const ReportPipelineInputSchema = z
  .object({
    /** First month, `YYYY-MM`. Required unless `lastMonths` is given. */
    from: month.optional(),
    /** Last month (inclusive), `YYYY-MM`. Required unless `lastMonths` is given. */
    to: month.optional(),
    /**
     * Instead of from/to: the last N complete months before the month the run starts in (for
     * schedules, whose arguments are fixed).
     */
    lastMonths: z.number().int().min(1).max(REPORT_LIMITS.maxMonths).optional(),
    /** Measures to compute. @default ['orders', 'revenue'] */
    measures: z
      .array(measure)
      .min(1, 'at least one measure')
      .refine((l) => new Set(l).size === l.length, 'measures must not repeat')
      .default([...REPORT_DEFAULTS.measures]),
    /** Group-by columns (empty: one total row). @default ['month'] */
    groupBy: z
      .array(groupBy)
      .max(GROUP_BY_NAMES.length)
      .refine((l) => new Set(l).size === l.length, 'group-by columns must not repeat')
      .default([...REPORT_DEFAULTS.groupBy]),
    /** Primary artifact (all three are written). @default 'html' */
    format: z.enum(REPORT_FORMATS).default(REPORT_DEFAULTS.format),
    /** Priority tier; the run must be started on this tier's task queue. @default 'default' */
    tier: z.enum(TIERS as [Tier, ...Tier[]]).default(DEFAULT_TIER),
    /** Tenant: the second part of the workflow ID and the fairness key. @default 'default' */
    tenant: z
      .string()
      .regex(TENANT_PATTERN, 'must be 1-63 characters of a-z, 0-9, _ or -, starting with a letter or digit')
      .default(DEFAULT_TENANT),
    /** Only rows of this data tenant (bound as a query parameter). @default all tenants */
    tenantFilter: z.string().regex(TENANT_PATTERN, 'must be a tenant name').optional(),
    /** The third part of the workflow ID (`report:<tenant>:<idempotencyKey>`). */
    idempotencyKey: z.string().regex(IDEMPOTENCY_KEY_PATTERN, 'must be 1-128 characters of A-Z, a-z, 0-9, ., _ or -'),
    /**
     * Fan-in failure policy: `fail-fast`, `retry-failed[:N]`, `partial`, `deadline-partial[:S]`,
     * `quorum:K`, or the object form (`{"kind":"quorum","k":3}`). @default 'fail-fast'
     */
    policy: FailurePolicyInputSchema.default('fail-fast'),
    /** Sub-jobs in flight at once (activities, or child batches for large fan-outs). @default 12 */
    window: z.number().int().min(1).max(500).default(REPORT_LIMITS.defaultWindow),
    /** Split each partition into this many sub-jobs (by `order_id % shards`). @default 1 */
    shards: z.number().int().min(1).max(REPORT_LIMITS.maxShards).default(1),
    /** Priority key within the tier's queue, 1 (first) to 5. @default from the tier */
    priorityKey: z.number().int().min(1).max(5).optional(),
    /** Completion callback, POSTed once the report's artifacts are written. */
    webhook: WebhookTargetSchema.optional(),
    /** Promotion ages by tier, used when the start carries no flow memo. @default { low: 1800 } */
    promoteAfterSeconds: PromoteAfterSecondsSchema.optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.lastMonths !== undefined) {
      if (v.from !== undefined || v.to !== undefined)
        ctx.addIssue({ code: 'custom', path: ['lastMonths'], message: 'give either lastMonths or from/to, not both' });
      return;
    }
    if (v.from === undefined) ctx.addIssue({ code: 'custom', path: ['from'], message: 'required' });
    if (v.to === undefined) ctx.addIssue({ code: 'custom', path: ['to'], message: 'required' });
    if (v.from === undefined || v.to === undefined) return;
    if (MONTH_PATTERN.test(v.from) && MONTH_PATTERN.test(v.to)) {
      if (v.from > v.to) {
        ctx.addIssue({ code: 'custom', path: ['from'], message: `from ${v.from} is after to ${v.to}` });
      } else if (monthRange(v.from, v.to).length > REPORT_LIMITS.maxMonths) {
        ctx.addIssue({ code: 'custom', path: ['to'], message: `at most ${REPORT_LIMITS.maxMonths} months` });
      }
    }
    if (v.policy.kind === 'quorum' && v.from && v.to && v.from <= v.to) {
      const n = monthRange(v.from, v.to).length * (v.shards ?? 1);
      if (v.policy.k > n)
        ctx.addIssue({ code: 'custom', path: ['policy'], message: `quorum ${v.policy.k} exceeds ${n} sub-jobs` });
    }
  });

/** Input of `reportPipelineWorkflow`. */
export type ReportPipelineInput = z.input<typeof ReportPipelineInputSchema>;
export type ValidReportPipelineInput = z.output<typeof ReportPipelineInputSchema>;

/** Partial aggregates of one group in one partition (or shard); amounts in cents. */
export interface PartialGroup {
  /** Values of the group-by columns other than `month`, in `groupBy` order. */
  key: string[];
  count: number;
  sumCents: number;
  minCents: number;
  maxCents: number;
}

/** Input of the `aggregatePartition` activity. */
export interface AggregatePartitionInput {
  /** The run's output prefix in the artifacts store: `<workflowId>/<runId>`. */
  output: string;
  month: string;
  groupBy: GroupBy[];
  tenantFilter?: string;
  shard: number;
  shards: number;
}

/** What `aggregatePartition` returns: a small summary; the partials go to a file under the pipeline's work dir. */
export interface AggregatePartitionResult {
  month: string;
  shard: number;
  groups: number;
  rows: number;
  /** URI of the partials (JSON) in the run's `.work/`, read by `mergeReport`. */
  partials: string;
}

/** Input of `listPartitions`. */
export interface ListPartitionsInput {
  months: string[];
}

/** Input of the `mergeReport` activity. */
export interface MergeReportInput {
  /** The run's output prefix in the artifacts store: `<workflowId>/<runId>`. */
  output: string;
  title: string;
  measures: Measure[];
  groupBy: GroupBy[];
  format: ReportFormat;
  /** Months whose partials (every shard) are in the work dir. */
  used: string[];
  /** Shards per month. */
  shards: number;
  missing: MissingPartition[];
}

/** A month left out of a report, and why. */
export interface MissingPartition {
  month: string;
  reason: string;
}

/** Artifacts of a report: all three formats, and the primary one. */
export interface ReportArtifacts {
  csv: Artifact;
  json: Artifact;
  html: Artifact;
  /** The artifact of the requested format. */
  primary: Artifact;
  rows: number;
}

/** Result of `reportPipelineWorkflow`. */
export interface ReportPipelineResult extends ReportArtifacts {
  workflowId: string;
  /** Run whose outputs these are: artifacts live under `<workflowId>/<runId>/` in the store. */
  runId: string;
  from: string;
  to: string;
  /** Months aggregated. */
  used: string[];
  /** Months left out (no partition, failed, or cancelled by the policy). */
  missing: MissingPartition[];
  partial: boolean;
  subJobs: number;
  /** The completion webhook, when one was given. */
  webhook?: WebhookOutcome;
  /** Set when a dead letter of this run could not be written (the record is lost). */
  deadLetter?: DeadLetterStatus;
  /**
   * Set when a step after the artifacts were final failed (removing `.work/`): the run still
   * completes, and its artifacts are in place.
   */
  afterFinal?: AfterFinalStatus;
}

/** One row of a finished report: group values then measures. */
export type ReportRow = Record<string, string | number>;
