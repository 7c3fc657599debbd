/**
 * `sluice limits set|show|check`: live server-side rate limits of the tiers' task queues
 * (Temporal task-queue config) and the tenant limits file (SLUICE_TENANT_LIMITS).
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../../config';
import { InvalidInputError, type SluiceClient } from '../../client';
import type { TenantGateState } from '../../workflows/tenant-gate';
import {
  LIMIT_QUEUE_TYPES,
  describeTaskQueueLimits,
  setTaskQueueLimits,
  type LimitQueueType,
  type TaskQueueLimits,
} from '../../ratelimit/task-queue-limits';
import { TenantLimitsError, readTenantLimitsFile, type TenantLimits } from '../../ratelimit/tenant-limits';
import { TIERS, type Tier } from '../../shared/constants';
import { operatorIdentity } from '../bulk';
import { withClient, type SetExit } from '../context';
import { UsageError, info, printJson } from '../output';

/** Parses a rate: a number ≥ 0, or `none` to remove the limit (commander turns a null into '', hence the string). */
export function parseRate(field: string) {
  return (value: string): number | 'none' => {
    if (/^(none|off|unset|default)$/i.test(value.trim())) return 'none';
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n))
      throw new InvalidArgumentError(`${field}: must be a number ≥ 0 or "none", got ${JSON.stringify(value)}`);
    if (n < 0) throw new InvalidArgumentError(`${field}: must not be negative, got ${value}`);
    return n;
  };
}

function target(client: SluiceClient) {
  return {
    service: client.temporal.workflowService,
    namespace: client.temporal.options.namespace,
    identity: operatorIdentity(),
    suffix: client.config.taskQueueSuffix,
  };
}

const rate = (r: number | null) => (r === null ? 'none' : `${r}/s`);

function describe(l: TaskQueueLimits): string {
  const overrides = Object.entries(l.weightOverrides);
  return (
    `${l.taskQueue.padEnd(24)} ${l.type.padEnd(8)} queue=${rate(l.queueRps).padEnd(8)} per-tenant=${rate(l.tenantRps).padEnd(8)}` +
    (overrides.length ? ` weights=${overrides.map(([k, v]) => `${k}=${v}`).join(',')}` : '') +
    (l.updatedAt ? `  (${l.updatedBy ?? '?'} at ${l.updatedAt})` : '')
  );
}

/** Reads the limits file; a file that is not valid becomes InvalidInputError (exit 2, naming the field). */
function readLimits(file: string): TenantLimits {
  try {
    return readTenantLimitsFile(file);
  } catch (err) {
    if (!(err instanceof TenantLimitsError)) throw err;
    throw new InvalidInputError(
      err.problems.map((p) => ({
        path: p.path || 'SLUICE_TENANT_LIMITS',
        message: `${err.file}:${p.line ?? '?'}: ${p.message}`,
      })),
    );
  }
}

/** Tenants named in the file that no workflow in the namespace has (likely typos): accepted, with a warning. */
async function unknownTenants(client: SluiceClient, limits: TenantLimits): Promise<string[]> {
  const out: string[] = [];
  for (const tenant of Object.keys(limits.tenants)) {
    // Tenant names match TENANT_PATTERN (checked by the parser), so quoting is safe.
    const { count } = await client.temporal.workflow.count(`Tenant = "${tenant}"`);
    if (count === 0) out.push(tenant);
  }
  return out;
}

/** Registers `sluice limits …`. */
export function registerLimitsCommands(program: Command, _setExit: SetExit): void {
  const limits = program
    .command('limits')
    .description('live rate limits of the tiers’ task queues, and the tenant limits file');

  limits
    .command('set')
    .description('set the queue-wide and per-tenant dispatch rate of a tier’s queue (takes effect at once, no restart)')
    .addOption(new Option('--tier <tier>', 'tier').choices([...TIERS]).makeOptionMandatory())
    .option('--queue-rps <r>', 'tasks per second from the whole queue, or "none"', parseRate('queue-rps'))
    .option(
      '--tenant-rps <r>',
      'tasks per second of each tenant (scaled by its weight), or "none"',
      parseRate('tenant-rps'),
    )
    .addOption(
      new Option('--type <type>', 'which of the tier’s queues').choices([...LIMIT_QUEUE_TYPES]).default('activity'),
    )
    .option('--reason <text>', 'why; stored by the server with the change')
    .option('--json', 'print one JSON object on stdout')
    .action(
      async (opts: {
        tier: Tier;
        queueRps?: number | 'none';
        tenantRps?: number | 'none';
        type: LimitQueueType;
        reason?: string;
        json?: boolean;
      }) => {
        if (opts.queueRps === undefined && opts.tenantRps === undefined)
          throw new UsageError('queue-rps', 'give --queue-rps, --tenant-rps or both');
        await withClient(async (client) => {
          const after = await setTaskQueueLimits(target(client), {
            tier: opts.tier,
            type: opts.type,
            ...(opts.queueRps !== undefined ? { queueRps: opts.queueRps === 'none' ? null : opts.queueRps } : {}),
            ...(opts.tenantRps !== undefined ? { tenantRps: opts.tenantRps === 'none' ? null : opts.tenantRps } : {}),
            ...(opts.reason ? { reason: opts.reason } : {}),
          });
          if (opts.json) printJson(after);
          else info(describe(after));
        });
      },
    );

  limits
    .command('show')
    .description('the rate limits in force on every tier’s queues, and the tenant limits file')
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { json?: boolean }) => {
      const config = loadConfig();
      const file = config.tenantLimitsFile ? readLimits(config.tenantLimitsFile) : undefined;
      await withClient(async (client) => {
        const queues: TaskQueueLimits[] = [];
        for (const tier of TIERS)
          for (const type of LIMIT_QUEUE_TYPES) queues.push(await describeTaskQueueLimits(target(client), tier, type));
        // What each listed tenant's gate holds now (tenants with caps that have started a run).
        const gates: Record<string, TenantGateState> = {};
        for (const tenant of Object.keys(file?.tenants ?? {})) {
          const state = await client.gateState(tenant);
          if (state) gates[tenant] = state;
        }
        if (opts.json) {
          printJson({ queues, tenantLimits: file ?? null, tenantLimitsFile: config.tenantLimitsFile ?? null, gates });
          return;
        }
        for (const q of queues) info(describe(q));
        if (!file) info('tenant limits: none (SLUICE_TENANT_LIMITS unset)');
        else {
          info(`tenant limits (${config.tenantLimitsFile}):`);
          info(
            `  default  maxRunning=${file.default.maxRunning || '∞'} maxInFlight=${file.default.maxInFlight || '∞'}`,
          );
          for (const [t, l] of Object.entries(file.tenants)) {
            const g = gates[t];
            info(
              `  ${t}  weight=${l.weight ?? '-'} maxRunning=${l.maxRunning ?? '(default)'} maxInFlight=${l.maxInFlight ?? '(default)'}` +
                (g
                  ? `  now: running ${g.running.length}, queued ${g.queued.length}, sub-jobs ${g.inFlight} (+${g.waiting} waiting)`
                  : ''),
            );
          }
        }
      });
    });

  limits
    .command('check')
    .description('validate a tenant limits file; tenants without any pipeline are accepted with a warning')
    .option('--file <path>', 'the file (default: SLUICE_TENANT_LIMITS)')
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { file?: string; json?: boolean }) => {
      const file = opts.file ?? loadConfig().tenantLimitsFile;
      if (!file) throw new UsageError('file', 'give --file or set SLUICE_TENANT_LIMITS');
      const parsed = readLimits(file);
      const unknown = await withClient((client) => unknownTenants(client, parsed));
      const warnings = unknown.map((t) => ({
        path: `tenants.${t}`,
        message: `unknown tenant ${t}: no pipeline in the namespace has Tenant="${t}"; accepted`,
      }));
      for (const w of warnings) info(`warning: ${w.path}: ${w.message}`);
      if (opts.json) printJson({ file, valid: true, limits: parsed, warnings });
      else info(`${file}: valid (${Object.keys(parsed.tenants).length} tenants)`);
    });
}
