/**
 * Deterministic orders data: one Parquet file per month, generated inside DuckDB from a seed
 * (no downloads, no JS loop over rows). A month's rows depend only on (month, rows, seed), so
 * regenerating gives the same data whatever the start month.
 */
import fs from 'node:fs';
import path from 'node:path';
import { addMonths, MONTH_PATTERN } from '../shared/report';
import { openDuckDb, partitionFile } from './duckdb';

/** Value lists of the generated dimensions. */
export const TENANTS = ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark', 'wayne', 'tyrell'] as const;
export const REGIONS = ['emea', 'amer', 'apac', 'latam', 'anz'] as const;
export const PRODUCTS = [
  'basic',
  'plus',
  'pro',
  'team',
  'business',
  'enterprise',
  'addon-storage',
  'addon-seats',
  'support',
  'training',
] as const;

export interface GenerateOptions {
  /** Partitions directory (`<SLUICE_DATA_DIR>/orders`). */
  dir: string;
  /** First month, `YYYY-MM`. */
  start: string;
  months: number;
  rowsPerMonth: number;
  /** @default 42 */
  seed?: number;
  /** DuckDB threads. @default DuckDB's own */
  threads?: number;
}

export interface GeneratedPartition {
  month: string;
  file: string;
  rows: number;
  bytes: number;
}

const list = (values: readonly string[]) => `[${values.map((v) => `'${v}'`).join(', ')}]`;

/** Writes `<dir>/<YYYY-MM>.parquet` for each month (temp file, then rename). */
export async function generateOrders(opts: GenerateOptions): Promise<GeneratedPartition[]> {
  if (!MONTH_PATTERN.test(opts.start)) throw new Error(`start: must be a month as YYYY-MM, got ${opts.start}`);
  if (!Number.isInteger(opts.months) || opts.months < 1 || opts.months > 240)
    throw new Error('months: must be a whole number from 1 to 240');
  if (!Number.isInteger(opts.rowsPerMonth) || opts.rowsPerMonth < 1 || opts.rowsPerMonth > 100_000_000)
    throw new Error('rows-per-month: must be a whole number from 1 to 100000000');
  const seed = opts.seed ?? 42;
  if (!Number.isInteger(seed) || seed < 0) throw new Error('seed: must be a whole number ≥ 0');
  fs.mkdirSync(opts.dir, { recursive: true });
  const db = await openDuckDb(opts.threads);
  const conn = await db.connect();
  const out: GeneratedPartition[] = [];
  try {
    for (let i = 0; i < opts.months; i++) {
      const month = addMonths(opts.start, i);
      const [y, m] = month.split('-').map(Number) as [number, number];
      const monthMicros =
        new Date(Date.UTC(y, m, 1)).getTime() * 1000 - new Date(Date.UTC(y, m - 1, 1)).getTime() * 1000;
      const file = partitionFile(opts.dir, month);
      const tmp = `${file}.tmp-${process.pid}`;
      // Every value is a hash of (row, seed, month, column): deterministic and order-independent.
      const sql = `COPY (
        SELECT
          CAST($1 AS BIGINT) * 1000000000 + i AS order_id,
          (${list(TENANTS)})[1 + CAST(hash(i, $2, $3, 1) % ${TENANTS.length} AS INTEGER)] AS tenant,
          (${list(REGIONS)})[1 + CAST(hash(i, $2, $3, 2) % ${REGIONS.length} AS INTEGER)] AS region,
          (${list(PRODUCTS)})[1 + CAST(hash(i, $2, $3, 3) % ${PRODUCTS.length} AS INTEGER)] AS product,
          CAST(CAST(100 + hash(i, $2, $3, 4) % 99900 AS DECIMAL(14, 2)) / 100 AS DECIMAL(12, 2)) AS amount,
          CAST($4 AS TIMESTAMP) + to_microseconds(CAST(hash(i, $2, $3, 5) % $5 AS BIGINT)) AS ts
        FROM (SELECT range AS i FROM range(CAST($6 AS BIGINT)))
        ORDER BY order_id
      ) TO '${tmp.replace(/'/g, "''")}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)`;
      await conn.run(sql, [y * 12 + m - 1, seed, month, `${month}-01 00:00:00`, monthMicros, opts.rowsPerMonth]);
      fs.renameSync(tmp, file);
      out.push({ month, file, rows: opts.rowsPerMonth, bytes: fs.statSync(file).size });
    }
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  return out;
}

/** Months that have a partition file in `dir`, sorted. */
export function listPartitionFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((f) => path.basename(f, '.parquet'))
    .filter((m) => MONTH_PATTERN.test(m))
    .sort();
}
