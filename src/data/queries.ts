/**
 * The one place report SQL is built. Column names come only from {@link GROUP_COLUMNS}, keyed by
 * the allow-listed group-by names; every value (paths, months, shard numbers, tenants) is a bound
 * parameter. Both dialects run the same statement shape, so DuckDB and PostgreSQL agree exactly.
 */
import type { GroupBy } from '../shared/report';

/** SQL column of each group-by key that is a dataset column (`month` is the partition itself). */
export const GROUP_COLUMNS: Readonly<Record<Exclude<GroupBy, 'month'>, string>> = {
  tenant: 'tenant',
  region: 'region',
  product: 'product',
};

/** Group-by keys that are columns, in order (drops `month`). */
export function columnGroups(groupBy: readonly GroupBy[]): Exclude<GroupBy, 'month'>[] {
  return groupBy.filter((g): g is Exclude<GroupBy, 'month'> => g !== 'month');
}

export type Dialect = 'duckdb' | 'postgres';

/** A statement with positional parameters (`$1`, `$2`, …). */
export interface BoundQuery {
  sql: string;
  params: (string | number)[];
}

/**
 * Partial aggregates (count, and sum/min/max of `amount` in cents) of one partition shard,
 * grouped by the allow-listed columns. `source` is the Parquet file (DuckDB) or the month's
 * `[start, end)` timestamps (PostgreSQL).
 */
export function aggregateQuery(
  dialect: Dialect,
  opts: {
    groupBy: readonly GroupBy[];
    shard: number;
    shards: number;
    tenantFilter?: string;
    source: { parquetFile: string } | { start: string; end: string };
  },
): BoundQuery {
  const params: (string | number)[] = [];
  const p = (v: string | number) => {
    params.push(v);
    return `$${params.length}`;
  };
  const cols = columnGroups(opts.groupBy).map((g) => GROUP_COLUMNS[g]);
  let from: string;
  const where: string[] = [];
  if ('parquetFile' in opts.source) {
    if (dialect !== 'duckdb') throw new Error('a Parquet source needs DuckDB');
    from = `read_parquet(${p(opts.source.parquetFile)})`;
  } else {
    from = 'sluice_orders';
    where.push(`ts >= CAST(${p(opts.source.start)} AS TIMESTAMP)`, `ts < CAST(${p(opts.source.end)} AS TIMESTAMP)`);
  }
  if (opts.shards > 1) where.push(`order_id % ${p(opts.shards)} = ${p(opts.shard)}`);
  if (opts.tenantFilter !== undefined) where.push(`tenant = ${p(opts.tenantFilter)}`);
  const select = [
    ...cols.map((c, i) => `${c} AS g${i}`),
    'COUNT(*) AS n',
    'CAST(SUM(amount * 100) AS BIGINT) AS s',
    'CAST(MIN(amount * 100) AS BIGINT) AS lo',
    'CAST(MAX(amount * 100) AS BIGINT) AS hi',
  ];
  const sql =
    `SELECT ${select.join(', ')} FROM ${from}` +
    (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
    (cols.length ? ` GROUP BY ${cols.join(', ')} ORDER BY ${cols.join(', ')}` : '');
  return { sql, params };
}

/** `[start, end)` of a month as timestamps, for range filters. */
export function monthBounds(month: string): { start: string; end: string } {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const next = m === 12 ? `${y + 1}-01` : `${y}-${String(m + 1).padStart(2, '0')}`;
  return { start: `${month}-01 00:00:00`, end: `${next}-01 00:00:00` };
}
