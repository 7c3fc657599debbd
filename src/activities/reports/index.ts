/**
 * Report activities (DuckDB / PostgreSQL) over the artifacts store. Created by
 * {@link createReportActivities} from their dependencies, so tests pass their own source, store
 * and fault hooks.
 *
 * Layout under the run's `<workflowId>/<runId>/` (the `output` of every input):
 *   `.work/<YYYY-MM>-s<shard>.json` — partials of one sub-job (a retry reuses them)
 *   `report.csv`, `report.json`, `report.html` — artifacts, each visible only when complete
 * Every step is idempotent at every point where it can die: `mergeReport` never removes the
 * partials it reads (the workflow's cleanup does, after the merge succeeded), so a merge retried
 * after a crash reads the same partials and writes the same bytes again.
 */
import { ApplicationFailure, Context, activityInfo, heartbeat } from '@temporalio/activity';
import { FailureType } from '../../shared/constants';
import type { Artifact } from '../../shared/artifact';
import type {
  AggregatePartitionInput,
  AggregatePartitionResult,
  ListPartitionsInput,
  MergeReportInput,
  PartialGroup,
  ReportArtifacts,
} from '../../shared/report';
import { PartitionNotFoundError, SourceUnavailableError, type ReportDataSource } from '../../data/source';
import { joinKey, storageFailure, type ObjectInfo, type Storage } from '../../storage';
import { mergePartials, renderCsv, renderHtml, type MonthPartials } from './render';

/** Test hooks: called inside the activity (so `Context.current()` works) before the work starts. */
export interface ReportFaults {
  /** May throw (an injected failure) or wait (a slow sub-job); `attempt` counts from 1. */
  beforeAggregate?: (input: AggregatePartitionInput, attempt: number) => Promise<void> | void;
}

export interface ReportDeps {
  source: ReportDataSource;
  /** Artifacts go to `<workflowId>/<runId>/` in `storage.artifacts`. */
  storage: Storage;
  /** Heartbeat interval while a query runs. @default 2000 */
  heartbeatMs?: number;
  faults?: ReportFaults;
}

/** Input of `cleanupReport`. */
export interface CleanupReportInput {
  /** The run's output prefix: `<workflowId>/<runId>`. */
  output: string;
  /** Also remove this run's finished artifacts (after a failure or cancellation). */
  removeArtifacts: boolean;
}

/** The run's prefix, checked to be `<workflowId>/<runId>` with no way out of the store. */
function runKey(output: string, ...rest: string[]): string {
  const parts = output.split('/');
  if (parts.length !== 2 || parts.some((p) => !p || p.startsWith('.')) || output.includes('\0'))
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      nonRetryable: true,
      message: `output ${JSON.stringify(output)} is not <workflowId>/<runId>`,
    });
  return joinKey(output, ...rest);
}

function partialsKey(output: string, month: string, shard: number): string {
  return runKey(output, '.work', `${month}-s${String(shard).padStart(4, '0')}.json`);
}

function toFailure(err: unknown): unknown {
  if (err instanceof PartitionNotFoundError) {
    return ApplicationFailure.create({
      type: FailureType.NotFound,
      nonRetryable: true,
      message: err.message,
      details: [{ month: err.month }],
    });
  }
  if (err instanceof SourceUnavailableError) {
    return ApplicationFailure.create({ type: FailureType.DownstreamUnavailable, message: err.message, cause: err });
  }
  return storageFailure(err);
}

/** Report activities over one data source: `listPartitions`, `aggregatePartition`, `mergeReport`, `cleanupReport`. */
export function createReportActivities(deps: ReportDeps) {
  const heartbeatMs = deps.heartbeatMs ?? 2_000;

  /** Which of the requested months have a partition in the configured source. */
  async function listPartitions(input: ListPartitionsInput): Promise<string[]> {
    try {
      return await deps.source.listPartitions(input.months);
    } catch (err) {
      throw toFailure(err);
    }
  }

  const { artifacts } = deps.storage;

  /** Writes a value to the store; a full disk or a store failure gets its own type. */
  async function put(key: string, content: string, contentType: string): Promise<ObjectInfo> {
    try {
      return await artifacts.put(key, content, { contentType });
    } catch (err) {
      throw toFailure(err);
    }
  }

  async function describe(key: string, info: ObjectInfo): Promise<Artifact> {
    const local = artifacts.localPath(key);
    const url = await artifacts.presign(key, deps.storage.presignTtlSec);
    return {
      uri: artifacts.uri(key),
      bytes: info.bytes,
      sha256: info.sha256 ?? '',
      ...(local ? { path: local } : {}),
      ...(url ? { url } : {}),
    };
  }

  /**
   * Aggregates one shard of one month's partition into partial groups (count, sum, min, max in
   * cents) and writes them to the run's `.work/` in the store. Heartbeats while the query runs;
   * a cancellation interrupts the query. A retry after a completed write reuses the partials.
   */
  async function aggregatePartition(input: AggregatePartitionInput): Promise<AggregatePartitionResult> {
    const ctx = Context.current();
    const key = partialsKey(input.output, input.month, input.shard);
    heartbeat({ month: input.month, shard: input.shard, phase: 'start' });
    await deps.faults?.beforeAggregate?.(input, activityInfo().attempt);
    const beat = setInterval(() => heartbeat({ month: input.month, shard: input.shard, phase: 'query' }), heartbeatMs);
    try {
      if (await artifacts.head(key)) {
        const groups = (JSON.parse((await artifacts.getBuffer(key)).toString('utf8')) as { groups: PartialGroup[] })
          .groups;
        return summary(input, groups, key);
      }
      let groups: PartialGroup[];
      try {
        groups = await deps.source.aggregate({ ...input, signal: ctx.cancellationSignal });
      } catch (err) {
        // A query interrupted by cancellation surfaces as a DuckDB error: report the cancellation instead.
        if (ctx.cancellationSignal.aborted) await ctx.cancelled;
        throw err;
      }
      await put(key, JSON.stringify({ month: input.month, shard: input.shard, groups }), 'application/json');
      heartbeat({ month: input.month, shard: input.shard, phase: 'written' });
      return summary(input, groups, key);
    } catch (err) {
      throw toFailure(err);
    } finally {
      clearInterval(beat);
    }
  }

  function summary(input: AggregatePartitionInput, groups: PartialGroup[], key: string): AggregatePartitionResult {
    return {
      month: input.month,
      shard: input.shard,
      groups: groups.length,
      rows: groups.reduce((n, g) => n + g.count, 0),
      partials: artifacts.uri(key),
    };
  }

  /**
   * Fan-in: merges the partials of the months used and writes CSV, JSON and HTML to the store,
   * each visible only when complete. It never removes the partials: a merge that dies at any
   * point runs again on the same partials and writes the same artifacts.
   */
  async function mergeReport(input: MergeReportInput): Promise<ReportArtifacts> {
    const parts: MonthPartials[] = [];
    let read = 0;
    try {
      for (const month of input.used) {
        for (let shard = 0; shard < input.shards; shard++) {
          const data = JSON.parse(
            (await artifacts.getBuffer(partialsKey(input.output, month, shard))).toString('utf8'),
          ) as {
            groups: PartialGroup[];
          };
          parts.push({ month, groups: data.groups });
          if (++read % 200 === 0) heartbeat({ phase: 'reading', done: read });
        }
      }
    } catch (err) {
      throw toFailure(err);
    }
    const rows = mergePartials(parts, input.groupBy, input.measures);
    const columns = [...input.groupBy, ...input.measures];
    const meta = {
      title: input.title,
      groupBy: input.groupBy,
      measures: input.measures,
      used: input.used,
      missing: input.missing,
    };
    const keys = {
      csv: runKey(input.output, 'report.csv'),
      json: runKey(input.output, 'report.json'),
      html: runKey(input.output, 'report.html'),
    };
    const csv = await describe(keys.csv, await put(keys.csv, renderCsv(rows, columns), 'text/csv'));
    const json = await describe(
      keys.json,
      await put(keys.json, JSON.stringify({ ...meta, rows }, null, 2) + '\n', 'application/json'),
    );
    const html = await describe(keys.html, await put(keys.html, renderHtml({ ...meta, rows }), 'text/html'));
    const files = { csv, json, html };
    return { ...files, primary: files[input.format], rows: rows.length };
  }

  /** Removes the run's `.work/` (and, after a failure or cancel, the run's artifacts). Never another run's. */
  async function cleanupReport(input: CleanupReportInput): Promise<void> {
    try {
      await artifacts.deletePrefix(runKey(input.output, '.work'));
      if (input.removeArtifacts) await artifacts.deletePrefix(runKey(input.output));
    } catch (err) {
      throw toFailure(err);
    }
  }

  return { listPartitions, aggregatePartition, mergeReport, cleanupReport };
}

export type ReportActivities = ReturnType<typeof createReportActivities>;
