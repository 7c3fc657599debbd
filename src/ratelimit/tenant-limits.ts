/**
 * The tenant limits file (`SLUICE_TENANT_LIMITS`, YAML): per tenant, with a default, the
 * fairness weight within a queue and the concurrency caps. Parsed with `yaml`, validated with zod,
 * every problem named by its path and line (`limits.yaml:7: tenants.acme.weight: …`).
 *
 * ```yaml
 * default: { maxRunning: 20, maxInFlight: 100 }
 * tenants:
 *   acme: { weight: 3, maxRunning: 5 }
 *   bulk: { weight: 0.5, maxInFlight: 10 }
 * ```
 *
 * {@link TenantLimitsSource} re-reads the file when it changes, so a weight change reaches the
 * next start of a long-lived client (the HTTP API, an app) without a restart. A change that does
 * not parse is logged and ignored: the last good limits stay in force.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { TENANT_PATTERN } from '../shared/constants';
import { formatProblems, parseYamlFile, type FileProblem } from '../shared/yaml-file';

const TenantEntrySchema = z
  .object({
    /** Temporal `fairnessWeight` of the tenant's runs. @default 1 (or SLUICE_FAIRNESS_WEIGHTS) */
    weight: z.number({ invalid_type_error: 'must be a number' }).positive('must be a positive number').max(1000),
    /** Pipelines running at once; 0 = no cap. @default 0 */
    maxRunning: z
      .number({ invalid_type_error: 'must be a number' })
      .int('must be a whole number')
      .min(0, 'must not be negative (0 = no cap)')
      .max(1e6, 'must be at most 1000000'),
    /** Sub-jobs in flight across every worker; 0 = no cap. @default 0 */
    maxInFlight: z
      .number({ invalid_type_error: 'must be a number' })
      .int('must be a whole number')
      .min(0, 'must not be negative (0 = no cap)')
      .max(1e6, 'must be at most 1000000'),
  })
  .partial()
  .strict();

const FileSchema = z
  .object({
    default: TenantEntrySchema.omit({ weight: true }).optional(),
    tenants: z.record(TenantEntrySchema).optional(),
  })
  .strict();

/** One tenant's limits (unset fields fall back to the default). */
export type TenantLimitEntry = z.output<typeof TenantEntrySchema>;

/** A validated limits file. */
export interface TenantLimits {
  default: { maxRunning: number; maxInFlight: number };
  tenants: Record<string, TenantLimitEntry>;
}

/** A limits file that is not valid; each problem names its field and line. */
export class TenantLimitsError extends Error {
  constructor(
    readonly file: string,
    readonly problems: FileProblem[],
  ) {
    super(`invalid tenant limits ${file}:\n${formatProblems(file, problems)}`);
    this.name = 'TenantLimitsError';
  }
}

/** Parses and validates a limits file's text. Throws {@link TenantLimitsError}. */
export function parseTenantLimits(text: string, file = 'SLUICE_TENANT_LIMITS'): TenantLimits {
  const parsed = parseYamlFile(text, FileSchema);
  if (!parsed.ok) throw new TenantLimitsError(file, parsed.problems);
  const tenants = parsed.value.tenants ?? {};
  const bad = Object.keys(tenants).filter((t) => !TENANT_PATTERN.test(t));
  if (bad.length > 0) {
    throw new TenantLimitsError(
      file,
      bad.map((t) => ({
        line: parsed.yaml.lineOf(['tenants', t]),
        path: `tenants.${t}`,
        message: 'not a tenant name: 1-63 characters of a-z, 0-9, _ or -',
      })),
    );
  }
  return {
    default: { maxRunning: parsed.value.default?.maxRunning ?? 0, maxInFlight: parsed.value.default?.maxInFlight ?? 0 },
    tenants,
  };
}

/** Reads and validates a limits file. Throws {@link TenantLimitsError} (a missing file included). */
export function readTenantLimitsFile(file: string): TenantLimits {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new TenantLimitsError(file, [{ line: undefined, path: '', message: (err as Error).message }]);
  }
  return parseTenantLimits(text, file);
}

/** The caps in force for `tenant` (0 = none). */
export function capsOf(limits: TenantLimits, tenant: string): { maxRunning: number; maxInFlight: number } {
  const t = limits.tenants[tenant];
  return {
    maxRunning: t?.maxRunning ?? limits.default.maxRunning,
    maxInFlight: t?.maxInFlight ?? limits.default.maxInFlight,
  };
}

/** The limits file, re-read whenever it changes (stat polled every `intervalMs`). */
export class TenantLimitsSource {
  private limits: TenantLimits;
  private readonly listener: (cur: fs.Stats, prev: fs.Stats) => void;

  private constructor(
    readonly file: string,
    intervalMs: number,
    private readonly onReload: (event: { limits?: TenantLimits; error?: TenantLimitsError }) => void,
  ) {
    this.limits = readTenantLimitsFile(file);
    this.listener = (cur, prev) => {
      if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
      this.reload();
    };
    // watchFile polls stat: it survives editors and config maps that replace the file by rename.
    fs.watchFile(file, { interval: intervalMs, persistent: false }, this.listener);
  }

  /**
   * Opens `file` (throws {@link TenantLimitsError} when it is not valid now) and follows it.
   * `onReload` hears of every later change: the new limits, or the error that kept the old ones.
   */
  static open(
    file: string,
    onReload: (event: { limits?: TenantLimits; error?: TenantLimitsError }) => void = () => undefined,
    intervalMs = 1000,
  ): TenantLimitsSource {
    return new TenantLimitsSource(file, intervalMs, onReload);
  }

  /** Re-reads the file now; keeps the last good limits when it is not valid. */
  reload(): void {
    try {
      this.limits = readTenantLimitsFile(this.file);
      this.onReload({ limits: this.limits });
    } catch (err) {
      if (!(err instanceof TenantLimitsError)) throw err;
      this.onReload({ error: err });
    }
  }

  current(): TenantLimits {
    return this.limits;
  }

  /** The tenant's fairness weight from the file, if it sets one. */
  weightOf(tenant: string): number | undefined {
    return this.limits.tenants[tenant]?.weight;
  }

  close(): void {
    fs.unwatchFile(this.file, this.listener);
  }
}
