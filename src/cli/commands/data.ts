/**
 * `sluice data generate|load-postgres`: deterministic orders partitions for reports, and a copy
 * of them in PostgreSQL so both report sources hold the same data.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config';
import { openStorage } from '../../storage';
import { generateOrders } from '../../data/generate';
import { loadPostgres } from '../../data/load-postgres';
import { describePgUrl } from '../../data/postgres';
import { MONTH_PATTERN, addMonths } from '../../shared/report';
import type { SetExit } from '../context';
import { ExitCode, UsageError, info, printJson } from '../output';

function wholeNumber(field: string, value: unknown, min: number, max: number): number {
  const n = Number(value);
  if (typeof value !== 'string' || value.trim() === '' || !Number.isInteger(n) || n < min || n > max)
    throw new UsageError(field, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

function months(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const list = value
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean);
  const bad = list.filter((m) => !MONTH_PATTERN.test(m));
  if (list.length === 0 || bad.length)
    throw new UsageError('months', `expected YYYY-MM months, got ${bad.join(', ') || '(none)'}`);
  return list;
}

/** Registers `sluice data …`. */
export function registerDataCommands(program: Command, setExit: SetExit): void {
  const data = program
    .command('data')
    .description('report data: generate Parquet partitions, load them into PostgreSQL');

  data
    .command('generate')
    .description(
      'write deterministic monthly orders partitions (Parquet) to the store: SLUICE_DATA_DIR/orders, or <SLUICE_STORAGE_URL>/orders on s3',
    )
    .option(
      '--start <YYYY-MM>',
      'first month (default: --months before the current month, so the partitions are the last complete months that lastMonths schedules read)',
    )
    .option('--months <n>', 'number of months', '12')
    .requiredOption('--rows-per-month <n>', 'rows in each partition')
    .option('--seed <n>', 'seed of the generator', '42')
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: Record<string, unknown>) => {
      const count = wholeNumber('months', opts.months, 1, 240);
      const now = new Date();
      const thisMonth = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
      const start = typeof opts.start === 'string' ? opts.start : addMonths(thisMonth, -count);
      if (!MONTH_PATTERN.test(start))
        throw new UsageError('start', `must be a month as YYYY-MM, got ${JSON.stringify(start)}`);
      const config = loadConfig();
      const began = Date.now();
      const storage = openStorage(config.storage, {
        outputDir: config.outputDir,
        partitionsDir: config.reports.partitionsDir,
      });
      // On s3 the partitions are written to this host's scratch, uploaded, then removed here.
      fs.mkdirSync(config.storage.scratchDir, { recursive: true });
      const dir =
        storage.kind === 'file'
          ? config.reports.partitionsDir
          : fs.mkdtempSync(path.join(config.storage.scratchDir, 'generate-'));
      const generated = await generateOrders({
        dir,
        start,
        months: count,
        rowsPerMonth: wholeNumber('rows-per-month', opts.rowsPerMonth, 1, 100_000_000),
        seed: wholeNumber('seed', opts.seed, 0, 2 ** 31),
        threads: config.reports.duckdbThreads,
      });
      const parts =
        storage.kind === 'file'
          ? generated
          : await Promise.all(
              generated.map(async (p) => {
                await storage.datasets.putFile(`${p.month}.parquet`, p.file);
                return { ...p, file: storage.datasets.uri(`${p.month}.parquet`) };
              }),
            ).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
      const where = storage.kind === 'file' ? config.reports.partitionsDir : storage.datasets.uri('');
      if (opts.json) printJson({ dir: where, partitions: parts, ms: Date.now() - began });
      else {
        for (const p of parts) info(`${p.month}  ${p.rows} rows  ${(p.bytes / 1e6).toFixed(2)} MB  ${p.file}`);
        info(`${parts.length} partitions in ${((Date.now() - began) / 1000).toFixed(1)} s`);
      }
      setExit(ExitCode.ok);
    });

  data
    .command('load-postgres')
    .description('copy the Parquet partitions into PostgreSQL (SLUICE_PG_URL), replacing each month')
    .option('--months <list>', 'comma-separated YYYY-MM months (default: every partition)')
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { months?: string; json?: boolean }) => {
      const config = loadConfig();
      const loaded = await loadPostgres({
        partitionsDir: config.reports.partitionsDir,
        pgUrl: config.reports.pgUrl,
        months: months(opts.months),
      });
      if (opts.json) printJson({ database: describePgUrl(config.reports.pgUrl), loaded });
      else for (const l of loaded) info(`${l.month}  ${l.rows} rows → ${describePgUrl(config.reports.pgUrl)}`);
      setExit(ExitCode.ok);
    });
}
