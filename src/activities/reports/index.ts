/**
 * Report activities (DuckDB / PostgreSQL). Created by {@link createReportActivities} from their
 * dependencies, so tests pass their own source, output root and fault hooks.
 *
 * Layout under `<outputRoot>/<pipelineId>/`:
 *   `.work/<YYYY-MM>-s<shard>.json` — partials of one sub-job (written atomically; a retry reuses it)
 *   `report.csv`, `report.json`, `report.html` — artifacts, each written to a temp name and renamed
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, Context, activityInfo, heartbeat } from '@temporalio/activity';
import { FailureType } from '../../shared/constants';
import type {
  AggregatePartitionInput,
  AggregatePartitionResult,
  ListPartitionsInput,
  MergeReportInput,
  PartialGroup,
  ReportArtifacts,
} from '../../shared/report';
import {
  InvalidDataError,
  PartitionNotFoundError,
  SourceUnavailableError,
  type ReportDataSource,
} from '../../data/source';
import { mergePartials, renderCsv, renderHtml, type MonthPartials } from './render';

/** Test hooks: called inside the activity (so `Context.current()` works) before the work starts. */
export interface ReportFaults {
  /** May throw (an injected failure) or wait (a slow sub-job); `attempt` counts from 1. */
  beforeAggregate?: (input: AggregatePartitionInput, attempt: number) => Promise<void> | void;
}

export interface ReportDeps {
  source: ReportDataSource;
  /** Artifacts go to `<outputRoot>/<pipelineId>/`. */
  outputRoot: string;
  /** Heartbeat interval while a query runs. @default 2000 */
  heartbeatMs?: number;
  faults?: ReportFaults;
}

/** Input of `cleanupReport`. */
export interface CleanupReportInput {
  pipelineId: string;
  /** Also remove finished artifacts (after a failure or cancellation). */
  removeArtifacts: boolean;
}

/** Workflow IDs become directory names: keep them to one safe path segment. */
function pipelineDir(root: string, pipelineId: string): string {
  if (!pipelineId || pipelineId.includes('/') || pipelineId.includes('\0') || pipelineId.startsWith('.'))
    throw ApplicationFailure.create({
      type: FailureType.InvalidInput,
      nonRetryable: true,
      message: `pipelineId ${JSON.stringify(pipelineId)} is not a safe directory name`,
    });
  return path.join(root, pipelineId);
}

function partialsPath(dir: string, month: string, shard: number): string {
  return path.join(dir, '.work', `${month}-s${String(shard).padStart(4, '0')}.json`);
}

async function writeAtomic(file: string, content: string): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  try {
    await fsp.writeFile(tmp, content);
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw ApplicationFailure.create({
      type: FailureType.OutputUnwritable,
      nonRetryable: true,
      message: `cannot write ${file}: ${(err as Error).message}`,
      cause: err as Error,
    });
  }
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
  if (err instanceof InvalidDataError) {
    return ApplicationFailure.create({
      type: FailureType.InvalidData,
      nonRetryable: true,
      message: err.message,
      cause: err,
    });
  }
  if (err instanceof SourceUnavailableError) {
    return ApplicationFailure.create({ type: FailureType.DownstreamUnavailable, message: err.message, cause: err });
  }
  return err;
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

  /**
   * Aggregates one shard of one month's partition into partial groups (count, sum, min, max in
   * cents) and writes them to the pipeline's work dir. Heartbeats while the query runs; a
   * cancellation interrupts the query. A retry after a completed write reuses the file.
   */
  async function aggregatePartition(input: AggregatePartitionInput): Promise<AggregatePartitionResult> {
    const ctx = Context.current();
    const dir = pipelineDir(deps.outputRoot, input.pipelineId);
    const partialsFile = partialsPath(dir, input.month, input.shard);
    heartbeat({ month: input.month, shard: input.shard, phase: 'start' });
    await deps.faults?.beforeAggregate?.(input, activityInfo().attempt);
    if (fs.existsSync(partialsFile)) {
      const groups = (JSON.parse(await fsp.readFile(partialsFile, 'utf8')) as { groups: PartialGroup[] }).groups;
      return summary(input, groups, partialsFile);
    }
    const beat = setInterval(() => heartbeat({ month: input.month, shard: input.shard, phase: 'query' }), heartbeatMs);
    let groups: PartialGroup[];
    try {
      groups = await deps.source.aggregate({ ...input, signal: ctx.cancellationSignal });
    } catch (err) {
      // A query interrupted by cancellation surfaces as a DuckDB error: report the cancellation instead.
      if (ctx.cancellationSignal.aborted) await ctx.cancelled;
      throw toFailure(err);
    } finally {
      clearInterval(beat);
    }
    await writeAtomic(partialsFile, JSON.stringify({ month: input.month, shard: input.shard, groups }));
    heartbeat({ month: input.month, shard: input.shard, phase: 'written' });
    return summary(input, groups, partialsFile);
  }

  function summary(
    input: AggregatePartitionInput,
    groups: PartialGroup[],
    partialsFile: string,
  ): AggregatePartitionResult {
    return {
      month: input.month,
      shard: input.shard,
      groups: groups.length,
      rows: groups.reduce((n, g) => n + g.count, 0),
      partialsFile,
    };
  }

  /** Fan-in: merges the partials of the months used and writes CSV, JSON and HTML, each atomically. */
  async function mergeReport(input: MergeReportInput): Promise<ReportArtifacts> {
    const dir = pipelineDir(deps.outputRoot, input.pipelineId);
    const parts: MonthPartials[] = [];
    let read = 0;
    for (const month of input.used) {
      for (let shard = 0; shard < input.shards; shard++) {
        const data = JSON.parse(await fsp.readFile(partialsPath(dir, month, shard), 'utf8')) as {
          groups: PartialGroup[];
        };
        parts.push({ month, groups: data.groups });
        if (++read % 200 === 0) heartbeat({ phase: 'reading', done: read });
      }
    }
    const rows = mergePartials(parts, input.groupBy, input.measures);
    const columns = [...input.groupBy, ...input.measures];
    const files = {
      csv: path.join(dir, 'report.csv'),
      json: path.join(dir, 'report.json'),
      html: path.join(dir, 'report.html'),
    };
    await writeAtomic(files.csv, renderCsv(rows, columns));
    await writeAtomic(
      files.json,
      JSON.stringify(
        {
          title: input.title,
          groupBy: input.groupBy,
          measures: input.measures,
          used: input.used,
          missing: input.missing,
          rows,
        },
        null,
        2,
      ) + '\n',
    );
    await writeAtomic(
      files.html,
      renderHtml({
        title: input.title,
        rows,
        groupBy: input.groupBy,
        measures: input.measures,
        used: input.used,
        missing: input.missing,
      }),
    );
    await fsp.rm(path.join(dir, '.work'), { recursive: true, force: true });
    return { ...files, primary: files[input.format], rows: rows.length };
  }

  /** Removes the work dir (and, after a failure, the artifacts). */
  async function cleanupReport(input: CleanupReportInput): Promise<void> {
    const dir = pipelineDir(deps.outputRoot, input.pipelineId);
    await fsp.rm(path.join(dir, '.work'), { recursive: true, force: true });
    if (input.removeArtifacts) await fsp.rm(dir, { recursive: true, force: true });
  }

  return { listPartitions, aggregatePartition, mergeReport, cleanupReport };
}

export type ReportActivities = ReturnType<typeof createReportActivities>;
