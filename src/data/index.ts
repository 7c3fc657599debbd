/** The report data source chosen by config (`REPORT_SOURCE`). */
import type { SluiceConfig } from '../config';
import type { Storage } from '../storage';
import { DuckDbSource } from './duckdb';
import { PostgresSource } from './postgres';
import type { ReportDataSource } from './source';

export type { ReportDataSource } from './source';
export { DuckDbSource } from './duckdb';
export { PostgresSource } from './postgres';

/** DuckDB over the datasets store's partitions (default) or PostgreSQL with a Pool of `SLUICE_PG_POOL_MAX`. */
export function createReportSource(config: SluiceConfig, storage: Storage): ReportDataSource {
  const r = config.reports;
  return r.source === 'postgres'
    ? new PostgresSource({ url: r.pgUrl, poolMax: r.pgPoolMax })
    : new DuckDbSource({
        partitions: storage.datasets,
        scratchDir: storage.scratchDir,
        threads: r.duckdbThreads,
        memoryLimit: r.duckdbMemoryLimit,
      });
}
