/**
 * bench:report — a report over 12 monthly partitions of 1M rows each (generated once, seeded,
 * cached under .data/bench-report/), through the real `sluice worker` (DuckDB source) on a private
 * dev server. Prints the pipeline's wall time divided by the wall time of one DuckDB query over all
 * partitions computing the same table in this same run (target ≤ 1.3), and the worker's peak RSS.
 *
 *   npm run bench:report [-- --rows 1000000 --months 12 --repeat 3]
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { SluiceClient } from '../src/client';
import { openDuckDb, partitionFile } from '../src/data/duckdb';
import { generateOrders } from '../src/data/generate';
import { addMonths } from '../src/shared/report';
import { taskQueueFor } from '../src/shared/constants';
import { numberArg, rssOf, spawnWorker, startBenchEnv } from './harness';

const REPO = path.resolve(__dirname, '..');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function main(): Promise<void> {
  const rows = numberArg('rows', 1_000_000);
  const months = numberArg('months', 12);
  const repeat = numberArg('repeat', 3);
  const dataDir = path.join(REPO, '.data', 'bench-report', `r${rows}`);
  const partitions = path.join(dataDir, 'orders');
  const first = '2024-01';
  const last = addMonths(first, months - 1);
  const files = Array.from({ length: months }, (_, i) => partitionFile(partitions, addMonths(first, i)));
  if (!files.every((f) => fs.existsSync(f))) {
    process.stderr.write(`generating ${months} partitions × ${rows} rows under ${partitions} …\n`);
    const t0 = performance.now();
    await generateOrders({ dir: partitions, start: first, months, rowsPerMonth: rows, seed: 42 });
    process.stderr.write(`generated in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  }

  Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  const bench = await startBenchEnv('report', {
    SLUICE_LOG_LEVEL: 'silent',
    SLUICE_DATA_DIR: dataDir,
    REPORT_SOURCE: 'duckdb',
  });
  const { config, env } = bench;
  let client: SluiceClient | undefined;
  let worker: Awaited<ReturnType<typeof spawnWorker>> | undefined;
  const db = await openDuckDb();
  const conn = await db.connect();
  try {
    client = await SluiceClient.connect({ config });
    worker = await spawnWorker(env, client, taskQueueFor('default', config.taskQueueSuffix));
    const pid = worker.child.pid as number;
    const request = {
      from: first,
      to: last,
      measures: ['orders', 'revenue', 'avg_amount', 'min_amount', 'max_amount'],
      groupBy: ['month', 'region', 'product'],
      format: 'html' as const,
      tenant: 'bench',
    };
    // The same table as the report, with the same aggregate expressions as the pipeline's
    // partition queries (exact cents), in one scan over all partitions.
    const sql = `SELECT date_trunc('month', ts) AS month, region, product, COUNT(*) AS orders,
                        CAST(SUM(amount * 100) AS BIGINT) AS revenue_cents,
                        CAST(MIN(amount * 100) AS BIGINT) AS min_cents, CAST(MAX(amount * 100) AS BIGINT) AS max_cents
                 FROM read_parquet([${files.map((_, i) => `$${i + 1}`).join(', ')}]) GROUP BY ALL`;
    const query = async () => {
      const t0 = performance.now();
      const reader = await conn.runAndReadAll(sql, files);
      return { ms: performance.now() - t0, rows: reader.currentRowCount };
    };
    const pipeline = async (key: string) => {
      const t0 = performance.now();
      const { workflowId } = await (client as SluiceClient).startReportPipeline({ ...request, idempotencyKey: key });
      const result = await (client as SluiceClient).getReportResult(workflowId);
      return { ms: performance.now() - t0, rows: result.rows, used: result.used.length };
    };

    // Warm both paths once (page cache, DuckDB instances, workflow cache), then alternate.
    await query();
    await pipeline(`warm-${Date.now()}`);
    const q: number[] = [];
    const p: number[] = [];
    let checked = false;
    for (let i = 0; i < repeat; i++) {
      const a = await query();
      const b = await pipeline(`run-${Date.now()}-${i}`);
      if (!checked) {
        if (a.rows !== b.rows || b.used !== months)
          throw new Error(`pipeline gave ${b.rows} rows from ${b.used} months; the query gave ${a.rows}`);
        checked = true;
      }
      q.push(a.ms);
      p.push(b.ms);
    }
    const queryMs = median(q);
    const pipelineMs = median(p);
    const rss = rssOf(pid);
    const out = {
      partitions: months,
      rowsPerPartition: rows,
      repeat,
      queryMs: +queryMs.toFixed(0),
      pipelineMs: +pipelineMs.toFixed(0),
      ratio: +(pipelineMs / queryMs).toFixed(3),
      ratioTargetOk: pipelineMs / queryMs <= 1.3,
      peakWorkerRssMB: rss.peakMB,
      queryRuns: q.map((x) => +x.toFixed(0)),
      pipelineRuns: p.map((x) => +x.toFixed(0)),
    };
    process.stdout.write(
      [
        `data                 ${months} partitions × ${rows} rows (${partitions})`,
        `one DuckDB query     ${out.queryMs} ms (median of ${repeat}: ${out.queryRuns.join(', ')})`,
        `report pipeline      ${out.pipelineMs} ms (median of ${repeat}: ${out.pipelineRuns.join(', ')})`,
        `ratio                ${out.ratio} (target ≤ 1.3 ${out.ratioTargetOk ? 'OK' : 'MISSED'})`,
        `peak worker RSS      ${out.peakWorkerRssMB} MB`,
        JSON.stringify(out),
        '',
      ].join('\n'),
    );
  } finally {
    conn.closeSync();
    db.closeSync();
    await client?.close();
    await worker?.stop();
    await bench.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:report failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
