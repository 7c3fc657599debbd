/**
 * The embedded report source: DuckDB over one Parquet file per month, `<YYYY-MM>.parquet` in
 * the datasets store (`<SLUICE_DATA_DIR>/orders/` on `file`, `<prefix>/orders/` on `s3`). On
 * `file` DuckDB reads the partition in place; on `s3` the partition is copied into this host's
 * scratch folder for the query and removed after it (DuckDB's httpfs extension would be
 * downloaded at run time, which an offline worker cannot do). One DuckDB instance per process,
 * one connection per query.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ObjectNotFoundError, type ObjectStore } from '../storage';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { ResultGarbage } from './gc';
import { aggregateQuery, columnGroups } from './queries';
import { SpanKind, withSpan } from '../tracing';
import {
  InvalidDataError,
  PartitionNotFoundError,
  isCorruptDataError,
  toGroup,
  type AggregateRequest,
  type ReportDataSource,
  type SourceGroup,
} from './source';

/** Path of a month's partition. */
export function partitionFile(dir: string, month: string): string {
  return path.join(dir, partitionKey(month));
}

/** Key of a month's partition in the datasets store. */
export function partitionKey(month: string): string {
  return `${month}.parquet`;
}

export interface DuckDbSourceOptions {
  /** The datasets store holding `<YYYY-MM>.parquet` objects. */
  partitions: ObjectStore;
  /** This host's scratch folder, for copies of partitions that are not local files. */
  scratchDir: string;
  /** DuckDB threads. @default the cores shared among the concurrent queries (at least 1) */
  threads?: number;
  /** DuckDB `memory_limit`, e.g. '256MB'. @default DuckDB's own (80% of RAM) */
  memoryLimit?: string;
  /**
   * Queries run at once in this process; the rest wait. DuckDB parallelizes each query over its
   * threads, so more concurrent queries add memory, not throughput. @default 4
   */
  maxConcurrentQueries?: number;
  /**
   * Ask V8 for a full GC every N queries, to release the native memory of old results (0: never).
   * Every 32 keeps a busy worker ~20 MB lower than every 200 (bench:fanout) at no measurable cost.
   * @default 32
   */
  gcEveryQueries?: number;
}

/** Opens an in-memory DuckDB instance. */
export async function openDuckDb(threads?: number, memoryLimit?: string): Promise<DuckDBInstance> {
  // Loaded on first use: a worker that never runs a report does not map DuckDB's native library.
  const { DuckDBInstance } = await import('@duckdb/node-api');
  return DuckDBInstance.create(':memory:', {
    ...(threads ? { threads: String(threads) } : {}),
    ...(memoryLimit ? { memory_limit: memoryLimit } : {}),
  });
}

export class DuckDbSource implements ReportDataSource {
  readonly kind = 'duckdb' as const;
  private instance: Promise<DuckDBInstance> | undefined;
  /** Idle connections, reused: opening one per query churns native memory. */
  private idle: DuckDBConnection[] = [];
  private running = 0;
  private waiting: (() => void)[] = [];
  private readonly garbage: ResultGarbage;

  constructor(private readonly opts: DuckDbSourceOptions) {
    this.garbage = new ResultGarbage(opts.gcEveryQueries ?? 32);
  }

  private async acquire(): Promise<DuckDBConnection> {
    while (this.running >= this.maxQueries) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return this.idle.pop() ?? (await (await this.db()).connect());
    } catch (err) {
      this.release(undefined);
      throw err;
    }
  }

  private release(conn: DuckDBConnection | undefined): void {
    this.running--;
    if (conn) this.idle.push(conn);
    this.waiting.shift()?.();
  }

  private get maxQueries(): number {
    return this.opts.maxConcurrentQueries ?? 4;
  }

  private db(): Promise<DuckDBInstance> {
    // Queries run side by side, each on its own threads: share the cores rather than multiply them
    // (every DuckDB thread keeps its own buffers, so oversubscribing costs memory, not time).
    this.instance ??= openDuckDb(
      this.opts.threads ?? Math.max(1, Math.floor(os.availableParallelism() / this.maxQueries)),
      this.opts.memoryLimit,
    );
    return this.instance;
  }

  async listPartitions(months: readonly string[]): Promise<string[]> {
    const found = await Promise.all(
      months.map(async (m) => ((await this.opts.partitions.head(partitionKey(m))) ? m : undefined)),
    );
    return found.filter((m): m is string => m !== undefined);
  }

  async aggregate(req: AggregateRequest): Promise<SourceGroup[]> {
    const key = partitionKey(req.month);
    const local = this.opts.partitions.localPath(key);
    if (local) {
      if (!fs.existsSync(local)) throw new PartitionNotFoundError(req.month);
      return this.query(req, local);
    }
    // A private copy in scratch for this query, removed after it.
    await fsp.mkdir(this.opts.scratchDir, { recursive: true });
    const copy = path.join(this.opts.scratchDir, `part-${req.month}-${crypto.randomBytes(4).toString('hex')}.parquet`);
    try {
      try {
        await this.opts.partitions.download(key, copy);
      } catch (err) {
        if (err instanceof ObjectNotFoundError) throw new PartitionNotFoundError(req.month);
        throw err;
      }
      return await this.query(req, copy);
    } finally {
      await fsp.rm(copy, { force: true });
    }
  }

  private async query(req: AggregateRequest, file: string): Promise<SourceGroup[]> {
    const q = aggregateQuery('duckdb', { ...req, source: { parquetFile: file } });
    if (req.signal?.aborted) throw new Error('aggregate aborted');
    const conn = await this.acquire();
    const onAbort = () => conn.interrupt();
    req.signal?.addEventListener('abort', onAbort);
    let healthy = true;
    try {
      const reader = await withSpan(
        'duckdb.query',
        { 'db.system': 'duckdb', 'db.operation.name': 'SELECT', 'sluice.partition': req.month },
        () => conn.runAndReadAll(q.sql, q.params),
        SpanKind.CLIENT,
      );
      const keys = columnGroups(req.groupBy).length;
      return reader
        .getRowObjectsJS()
        .map((r) => toGroup(r, keys))
        .filter((g) => g.count > 0);
    } catch (err) {
      // An interrupted or failed connection is not reused.
      healthy = false;
      conn.closeSync();
      if (!req.signal?.aborted && isCorruptDataError(err))
        throw new InvalidDataError(
          `partition ${req.month} is not readable Parquet: ${(err as Error).message.split('\n')[0]}`,
          {
            cause: err,
          },
        );
      throw err;
    } finally {
      req.signal?.removeEventListener('abort', onAbort);
      this.release(healthy ? conn : undefined);
      this.garbage.done();
    }
  }

  async close(): Promise<void> {
    const instance = this.instance;
    this.instance = undefined;
    for (const conn of this.idle.splice(0)) conn.closeSync();
    if (instance) (await instance).closeSync();
  }
}
