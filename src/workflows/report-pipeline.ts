/**
 * Report pipeline: plan the months → fan out one `aggregatePartition` per month (× shard) through
 * the shared fan-out helper under the chosen failure policy → fan in with `mergeReport` (CSV,
 * JSON, HTML). The result lists the partitions used and the ones missing, and why.
 */
import {
  ApplicationFailure,
  proxyActivities,
  upsertSearchAttributes,
  patched,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureType, PipelineKind } from '../shared/constants';
import type { SubJob } from '../shared/fan-out';
import {
  ReportPipelineInputSchema,
  addMonths,
  monthRange,
  type AggregatePartitionInput,
  type AggregatePartitionResult,
  type MissingPartition,
  type ReportPipelineInput,
  type ReportPipelineResult,
  type ValidReportPipelineInput,
} from '../shared/report';
import { PartialKey } from '../shared/search-attributes';
import type { ReportActivities } from '../activities/reports';
import { activityOptionsFor, runSubJobs, type ActivityName } from './fan-out';
import { trackProgress } from './progress';
import { withRunPriority } from './flow-control';
import { KEEP_FINAL_ARTIFACTS_PATCH } from './final-cleanup';
import { subJobsFailed } from './failure-policy';
import { REPORT_DEAD_LETTER_PATCH, runOutput, runPipeline, startPipeline, type Finished } from './pipeline';

/** The pipeline's own activities, with the run's priority once it owns it (see ./contract.ts). */
function reportActivities() {
  return {
    plan: proxyActivities<Pick<ReportActivities, 'listPartitions'>>(
      withRunPriority({ ...activityOptionsFor('listPartitions'), summary: 'list partitions' }),
    ),
    merge: proxyActivities<Pick<ReportActivities, 'mergeReport'>>(
      withRunPriority({ ...activityOptionsFor('mergeReport'), summary: 'merge report' }),
    ),
    cleanup: proxyActivities<Pick<ReportActivities, 'cleanupReport'>>(
      withRunPriority({ ...activityOptionsFor('cleanupReport'), summary: 'clean up' }),
    ),
  };
}

function fail(type: FailureType, message: string, details?: unknown): never {
  throw ApplicationFailure.create({ type, nonRetryable: true, message, details: details ? [details] : undefined });
}

/** The month the workflow started in, from workflow time (deterministic on replay). */
function currentMonth(): string {
  const now = new Date(workflowInfo().startTime);
  return `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
}

/**
 * Builds a report over monthly partitions. Bad input fails once with a non-retryable
 * InvalidInput. Months without a partition fail the pipeline (NotFound, naming them) unless the
 * policy accepts a partial result, which is then flagged with the `Partial` search attribute.
 */
export async function reportPipelineWorkflow(rawInput: ReportPipelineInput): Promise<ReportPipelineResult> {
  return startPipeline(PipelineKind.report, ReportPipelineInputSchema, rawInput, (input) =>
    buildReport(input, rawInput),
  );
}

async function buildReport(
  input: ValidReportPipelineInput,
  rawInput: ReportPipelineInput,
): Promise<ReportPipelineResult> {
  const { plan, merge, cleanup } = reportActivities();
  const { pipelineId, runId, output } = runOutput();
  const to = input.to ?? addMonths(currentMonth(), -1);
  const from = input.from ?? addMonths(to, -((input.lastMonths ?? 1) - 1));
  const months = monthRange(from, to);
  const policy = input.policy;
  const lenient = policy.kind === 'partial' || policy.kind === 'deadline-partial' || policy.kind === 'quorum';

  const stages = trackProgress('planning');
  const { progress, setStage } = stages;

  // Once the merge wrote the report the artifacts are final: removing `.work/` happens after the
  // work, and its failure never removes them (histories recorded before the patch replay the old way).
  const work = async (): Promise<Finished<ReportPipelineResult>> => {
    let cleanupAfter = false;
    setStage('planning', `${from} … ${to}: ${months.length} months`);
    const available = new Set(await plan.listPartitions({ months }));
    const missing: MissingPartition[] = months
      .filter((m) => !available.has(m))
      .map((month) => ({ month, reason: 'no partition' }));
    if (missing.length > 0 && !lenient) {
      fail(
        FailureType.NotFound,
        `no partition for ${missing.length === 1 ? 'month' : 'months'} ${missing.map((m) => m.month).join(', ')} (policy ${policy.kind} needs every month)`,
        { missing: missing.map((m) => m.month) },
      );
    }
    const present = months.filter((m) => available.has(m));
    const jobs: SubJob<ActivityName>[] = [];
    for (const month of present) {
      for (let shard = 0; shard < input.shards; shard++) {
        const job: AggregatePartitionInput = {
          output,
          month,
          groupBy: input.groupBy,
          shard,
          shards: input.shards,
          ...(input.tenantFilter ? { tenantFilter: input.tenantFilter } : {}),
        };
        jobs.push({
          activity: 'aggregatePartition',
          input: job,
          summary: input.shards > 1 ? `${month} shard ${shard + 1}/${input.shards}` : `aggregate ${month}`,
        });
      }
    }
    if (policy.kind === 'quorum' && jobs.length < policy.k) {
      throw subJobsFailed(
        `quorum ${policy.k} cannot be reached: ${jobs.length} sub-jobs have a partition (missing ${missing.map((m) => m.month).join(', ')})`,
      );
    }
    progress.total = jobs.length + 1;
    setStage(
      'aggregating',
      `${present.length} partitions × ${input.shards} shard(s), policy ${policy.kind}${missing.length ? `, ${missing.length} missing` : ''}`,
    );
    const fan = await runSubJobs<AggregatePartitionResult>(jobs, {
      parentId: pipelineId,
      window: input.window,
      policy,
      onSettled: (_, ok) => (ok ? progress.done++ : progress.failed++),
    });

    // A month counts only when every shard of it succeeded.
    const reasons = new Map<number, string>();
    for (const f of fan.failed) reasons.set(f.index, `failed: ${f.message}`);
    const cancelledWhy =
      policy.kind === 'quorum'
        ? 'not needed: quorum reached'
        : policy.kind === 'deadline-partial'
          ? `cancelled at the ${policy.deadlineSeconds}s deadline`
          : 'cancelled';
    for (const i of fan.cancelled) if (!reasons.has(i)) reasons.set(i, cancelledWhy);
    const used: string[] = [];
    present.forEach((month, m) => {
      let why: string | undefined;
      for (let s = 0; s < input.shards && !why; s++) {
        const i = m * input.shards + s;
        if (fan.results[i] == null) why = reasons.get(i) ?? cancelledWhy;
      }
      if (why) missing.push({ month, reason: why });
      else used.push(month);
    });
    missing.sort((a, b) => a.month.localeCompare(b.month));
    if (used.length === 0) {
      throw subJobsFailed(
        `no partition could be aggregated: ${missing.map((m) => `${m.month} ${m.reason}`).join('; ')}`,
      );
    }
    const partial = missing.length > 0;
    if (partial) upsertSearchAttributes([{ key: PartialKey, value: true }]);

    setStage(
      'merging',
      `${used.length} partitions${partial ? `, missing ${missing.map((m) => m.month).join(', ')}` : ''}`,
    );
    const title = `Orders ${from} … ${to}${input.groupBy.length ? ` by ${input.groupBy.join(', ')}` : ''}`;
    const artifacts = await merge.mergeReport({
      output,
      title,
      measures: input.measures,
      groupBy: input.groupBy,
      format: input.format,
      used,
      shards: input.shards,
      missing,
    });
    // The merge keeps the partials (a merge retried after a crash reads them again): remove them now.
    // Histories recorded before this step replay without it.
    if (patched('report-cleanup-after-merge')) {
      cleanupAfter = patched(KEEP_FINAL_ARTIFACTS_PATCH);
      if (!cleanupAfter) await cleanup.cleanupReport({ output, removeArtifacts: false });
    }
    progress.done++;
    const result: ReportPipelineResult = {
      workflowId: pipelineId,
      runId,
      from,
      to,
      used,
      missing,
      partial,
      subJobs: jobs.length,
      ...artifacts,
    };
    return { result, cleanupAfter };
  };
  // The one ending of every pipeline (./pipeline.ts): dead letter, cleanup, completion on the critical tier.
  return runPipeline(work, {
    stages,
    removeOutputs: (removeArtifacts) => cleanup.cleanupReport({ output, removeArtifacts }),
    rawInput,
    tenant: input.tenant,
    // Runs recorded before the report was dead-lettered replay without it.
    deadLetter: () => patched(REPORT_DEAD_LETTER_PATCH),
    webhook: input.webhook,
    completion: (r) => ({
      kind: 'report',
      from: r.from,
      to: r.to,
      partial: r.partial,
      missing: r.missing.map((m) => m.month),
      primary: r.primary.uri,
      rows: r.rows,
    }),
    done: (r) => `${r.rows} rows → ${r.primary.uri}${r.partial ? ' (partial)' : ''}`,
  });
}
