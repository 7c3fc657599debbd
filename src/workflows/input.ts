/**
 * A workflow's own check of its input: the schema the edge used, again in the workflow, since a
 * start may come from anywhere (another SDK, the CLI `temporal workflow start`). Sandbox-safe.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import type { z } from 'zod';
import { FailureType } from '../shared/constants';
import { zodIssues } from '../shared/video';

/**
 * `raw` parsed by `schema`. Bad input fails the run once, as a non-retryable InvalidInput whose
 * message names each field (`tier: …; window: …`) and whose details list the issues.
 */
export function parseWorkflowInput<S extends z.ZodTypeAny>(schema: S, raw: unknown): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data as z.output<S>;
  const issues = zodIssues(parsed.error);
  throw ApplicationFailure.create({
    type: FailureType.InvalidInput,
    nonRetryable: true,
    message: issues.map((i) => `${i.path}: ${i.message}`).join('; '),
    details: [issues],
  });
}
