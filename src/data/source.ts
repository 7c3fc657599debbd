/** What a report source does: say which partitions exist and aggregate one shard of one. */
import type { GroupBy } from '../shared/report';

/** Partial aggregates of one group, as the source returns them; amounts in cents. */
export interface SourceGroup {
  key: string[];
  count: number;
  sumCents: number;
  minCents: number;
  maxCents: number;
}

export interface AggregateRequest {
  month: string;
  groupBy: readonly GroupBy[];
  shard: number;
  shards: number;
  tenantFilter?: string;
  /** Aborts the running query (activity cancellation). */
  signal?: AbortSignal;
}

/** A report data source (DuckDB over Parquet, or PostgreSQL). */
export interface ReportDataSource {
  readonly kind: 'duckdb' | 'postgres';
  /** Which of `months` have a partition. */
  listPartitions(months: readonly string[]): Promise<string[]>;
  /** Partial aggregates of one shard of one month's partition. */
  aggregate(req: AggregateRequest): Promise<SourceGroup[]>;
  close(): Promise<void>;
}

/** Raised when a month has no partition. */
export class PartitionNotFoundError extends Error {
  constructor(readonly month: string) {
    super(`no partition for month ${month}`);
    this.name = 'PartitionNotFoundError';
  }
}

/** Raised when the source cannot be reached (worth retrying). */
export class SourceUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SourceUnavailableError';
  }
}

/** Raised when a partition's data cannot be read as what it claims to be (corrupt Parquet): not worth retrying. */
export class InvalidDataError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidDataError';
  }
}

/**
 * True for DuckDB's answers to a file that is not valid Parquet ("Invalid Input Error: No magic
 * bytes found…", a corrupt footer or page). The query text is Sluice's own, so an invalid-input
 * error from it means the data, not the request.
 */
export function isCorruptDataError(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /^Invalid Input Error:|magic bytes|corrupt|not a parquet file/i.test(message);
}

/** Converts a row `{g0…, n, s, lo, hi}` (bigints, numeric strings or numbers) to a {@link SourceGroup}. */
export function toGroup(row: Record<string, unknown>, keys: number): SourceGroup {
  const num = (v: unknown) => (typeof v === 'bigint' ? Number(v) : Number(v ?? 0));
  return {
    key: Array.from({ length: keys }, (_, i) => String(row[`g${i}`])),
    count: num(row.n),
    sumCents: num(row.s),
    minCents: num(row.lo),
    maxCents: num(row.hi),
  };
}
