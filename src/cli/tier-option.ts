/**
 * `--tier <tier>` of the commands that start a pipeline: the tier picks the task queue (and the
 * priority key unless one is given). `--priority <tier>` is its older spelling, kept as an alias
 * for scripts; the two together are a usage error, since `priorityKey` is something else.
 */
import { Option, type Command } from 'commander';
import { TIERS, Tier } from '../shared/constants';

/** Adds `--tier` and its alias `--priority` to `cmd`. */
export function addTierOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--tier <tier>', 'tier: the task queue to run on (default: default)').choices([...TIERS]))
    .addOption(
      new Option('--priority <tier>', 'alias of --tier (older spelling)').choices([...TIERS]).conflicts('tier'),
    );
}

/** The tier chosen by `--tier` or `--priority`. @default 'default' */
export function tierOption(opts: Record<string, unknown>): Tier {
  return (opts.tier ?? opts.priority ?? Tier.default) as Tier;
}
