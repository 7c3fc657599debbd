/**
 * Jobs pipeline contract (`jobsPipelineWorkflow`): the input schema, checked at the edge (the
 * client) and again inside the workflow. Sandbox-safe: no Node built-ins.
 */
import { z } from 'zod';
import { IDEMPOTENCY_KEY_PATTERN, MAX_PACK, TENANT_PATTERN, TIERS, type Tier } from './constants';
import { FailurePolicySchema, type SubJob } from './fan-out';
import { WebhookTargetSchema } from './webhook';

/** Longest UI summary of a sub-job. */
const MAX_SUMMARY_LENGTH = 400;

/** Schema of one {@link SubJob}. */
export const SubJobSchema = z
  .object({
    activity: z
      .string({ required_error: 'required', invalid_type_error: 'must be a string' })
      .min(1, 'must not be empty'),
    input: z.unknown(),
    summary: z.string().max(MAX_SUMMARY_LENGTH, `must be at most ${MAX_SUMMARY_LENGTH} characters`).optional(),
  })
  .strict();

/** Schema of {@link JobsPipelineInput}. */
export const JobsPipelineInputSchema = z
  .object({
    tier: z.enum(TIERS as [Tier, ...Tier[]], {
      errorMap: () => ({ message: `must be one of ${TIERS.join(', ')}` }),
    }),
    tenant: z
      .string()
      .regex(TENANT_PATTERN, 'must be 1-63 characters of a-z, 0-9, _ or -, starting with a letter or digit'),
    idempotencyKey: z.string().regex(IDEMPOTENCY_KEY_PATTERN, 'must be 1-128 characters of A-Z, a-z, 0-9, ., _ or -'),
    jobs: z.array(SubJobSchema, { invalid_type_error: 'must be a list of sub-jobs' }).min(1, 'at least one sub-job'),
    /** Sub-jobs in flight. @default 16 */
    window: z.number().int('must be a whole number').min(1).max(500).optional(),
    /**
     * Sub-jobs per activity task, 1 to {@link MAX_PACK}, for tiny sub-jobs: up to this many of one
     * activity type run one after another in one task, each with its own result, attempts and
     * failure. @default 1
     */
    pack: z
      .number()
      .int('must be a whole number')
      .min(1, `must be a whole number from 1 to ${MAX_PACK}`)
      .max(MAX_PACK, `must be a whole number from 1 to ${MAX_PACK}`)
      .optional(),
    /** @default fail-fast */
    policy: FailurePolicySchema.optional(),
    /** Completion callback, POSTed when the pipeline completes. */
    webhook: WebhookTargetSchema.optional(),
    /** 1 (first) to 5 within the tier's queue. @default from the tier */
    priorityKey: z
      .number()
      .int('must be a whole number from 1 to 5')
      .min(1, 'must be a whole number from 1 to 5')
      .max(5, 'must be a whole number from 1 to 5')
      .optional(),
  })
  .strict();

/** Input of `jobsPipelineWorkflow`. */
export type JobsPipelineInput = Omit<z.input<typeof JobsPipelineInputSchema>, 'jobs'> & { jobs: SubJob[] };
