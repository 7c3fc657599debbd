/**
 * Flow settings a pipeline input may carry (sandbox-safe): promotion ages by tier, for starts
 * that carry no flow memo (any client other than Sluice's own).
 */
import { z } from 'zod';
import { TIERS, type Tier } from './constants';

/** Seconds a sub-job may wait on a tier's queue before it moves to the next tier up, by tier. */
export const PromoteAfterSecondsSchema = z
  .object(
    Object.fromEntries(
      TIERS.map((t) => [
        t,
        z
          .number()
          .int()
          .min(1)
          .max(30 * 24 * 3600)
          .optional(),
      ]),
    ) as Record<Tier, z.ZodOptional<z.ZodNumber>>,
  )
  .strict();
