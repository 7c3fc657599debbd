/**
 * `sluice data load-postgres`: copies the generated Parquet partitions into PostgreSQL, one
 * transaction per month (replace the month's rows, record the partition), so that both report
 * sources hold the same data.
 */
import pg from 'pg';
import { openDuckDb, partitionFile } from './duckdb';
import { listPartitionFiles } from './generate';
import { monthBounds } from './queries';
import { PG_SCHEMA_SQL } from './postgres';

export interface LoadPostgresOptions {
  partitionsDir: string;
  pgUrl: string;
  /** Months to load. @default every partition found */
  months?: string[];
  /** Rows per INSERT. @default 20000 */
  batchRows?: number;
}

/** Loads partitions into PostgreSQL; returns rows loaded per month. */
export async function loadPostgres(opts: LoadPostgresOptions): Promise<{ month: string; rows: number }[]> {
  const months = opts.months ?? listPartitionFiles(opts.partitionsDir);
  const batch = opts.batchRows ?? 20_000;
  const client = new pg.Client({ connectionString: opts.pgUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  const db = await openDuckDb();
  const conn = await db.connect();
  const loaded: { month: string; rows: number }[] = [];
  try {
    await client.query(PG_SCHEMA_SQL);
    for (const month of months) {
      const file = partitionFile(opts.partitionsDir, month);
      const bounds = monthBounds(month);
      await client.query('BEGIN');
      try {
        await client.query('DELETE FROM sluice_orders WHERE ts >= $1::timestamp AND ts < $2::timestamp', [
          bounds.start,
          bounds.end,
        ]);
        let rows = 0;
        for (let offset = 0; ; offset += batch) {
          const reader = await conn.runAndReadAll(
            `SELECT CAST(order_id AS VARCHAR) AS id, tenant, region, product, CAST(amount AS VARCHAR) AS amount,
                    strftime(ts, '%Y-%m-%d %H:%M:%S.%f') AS ts
             FROM read_parquet($1) ORDER BY order_id LIMIT $2 OFFSET $3`,
            [file, batch, offset],
          );
          const got = reader.getRowObjectsJS() as Record<string, string>[];
          if (got.length === 0) break;
          const col = (k: string) => got.map((r) => r[k] as string);
          await client.query(
            `INSERT INTO sluice_orders (order_id, tenant, region, product, amount, ts)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::timestamp[])`,
            [col('id'), col('tenant'), col('region'), col('product'), col('amount'), col('ts')],
          );
          rows += got.length;
          if (got.length < batch) break;
        }
        await client.query(
          `INSERT INTO sluice_order_partitions (month, rows, loaded_at) VALUES ($1, $2, now())
           ON CONFLICT (month) DO UPDATE SET rows = EXCLUDED.rows, loaded_at = now()`,
          [month, rows],
        );
        await client.query('COMMIT');
        loaded.push({ month, rows });
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    }
  } finally {
    conn.closeSync();
    db.closeSync();
    await client.end();
  }
  return loaded;
}
