/**
 * The production report source: PostgreSQL through a `pg` Pool sized from config. The same
 * statement shape as DuckDB (see `queries.ts`), over `sluice_orders` filtered by month range;
 * `sluice_order_partitions` records which months are loaded.
 */
import pg from 'pg';
import { aggregateQuery, columnGroups, monthBounds } from './queries';
import {
  PartitionNotFoundError,
  SourceUnavailableError,
  toGroup,
  type AggregateRequest,
  type ReportDataSource,
  type SourceGroup,
} from './source';

/** Schema of the report tables (idempotent). */
export const PG_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS sluice_orders (
  order_id BIGINT PRIMARY KEY,
  tenant TEXT NOT NULL,
  region TEXT NOT NULL,
  product TEXT NOT NULL,
  amount NUMERIC(12, 2) NOT NULL,
  ts TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS sluice_orders_ts ON sluice_orders (ts);
CREATE TABLE IF NOT EXISTS sluice_order_partitions (
  month TEXT PRIMARY KEY,
  rows BIGINT NOT NULL,
  loaded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);`;

export interface PostgresSourceOptions {
  url: string;
  /** Pool size. */
  poolMax: number;
  /** @default 5000 */
  connectTimeoutMs?: number;
}

/** Connection errors (refused, reset, timeouts, server shutting down) are worth retrying. */
export function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  const msg = err instanceof Error ? err.message : '';
  return (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      'ENOTFOUND',
      'EPIPE',
      '57P01',
      '57P03',
      '53300',
    ].includes(code ?? '') || /timeout|terminated|Connection terminated/i.test(msg)
  );
}

/** `host:port` of a connection URL, for messages (never the password). */
export function describePgUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return '(unparseable SLUICE_PG_URL)';
  }
}

export class PostgresSource implements ReportDataSource {
  readonly kind = 'postgres' as const;
  readonly pool: pg.Pool;

  constructor(private readonly opts: PostgresSourceOptions) {
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolMax,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle client's error must not crash the worker; the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  private async run<T extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<pg.QueryResult<T>> {
    try {
      return await this.pool.query<T>(sql, params);
    } catch (err) {
      if (isUnavailable(err)) {
        throw new SourceUnavailableError(
          `PostgreSQL at ${describePgUrl(this.opts.url)} unreachable: ${(err as Error).message || (err as { code?: string }).code}`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async listPartitions(months: readonly string[]): Promise<string[]> {
    try {
      const res = await this.run<{ month: string }>(
        'SELECT month FROM sluice_order_partitions WHERE month = ANY($1::text[])',
        [months],
      );
      const have = new Set(res.rows.map((r) => r.month));
      return months.filter((m) => have.has(m));
    } catch (err) {
      // No table yet: nothing has been loaded.
      if ((err as { code?: string }).code === '42P01') return [];
      throw err;
    }
  }

  async aggregate(req: AggregateRequest): Promise<SourceGroup[]> {
    const [present] = [await this.listPartitions([req.month])];
    if (!present?.length) throw new PartitionNotFoundError(req.month);
    const q = aggregateQuery('postgres', { ...req, source: monthBounds(req.month) });
    const res = await this.run<Record<string, unknown>>(q.sql, q.params);
    const keys = columnGroups(req.groupBy).length;
    return res.rows.map((r) => toGroup(r, keys)).filter((g) => g.count > 0);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
