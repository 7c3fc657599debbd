/**
 * `npm run temporal:ensure`: makes sure a Temporal server is reachable for `npm start` and
 * `npm test` — a remote one (TEMPORAL_ADDRESS), or a local CLI binary found or built now.
 */
import { loadConfig } from '../config';
import { cliVersion, ensureTemporalCli } from './cli-binary';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = (line: string) => process.stderr.write(`[temporal:ensure] ${line}\n`);
  if (config.temporal.address) {
    log(`TEMPORAL_ADDRESS=${config.temporal.address}: using that cluster, no local server needed`);
    return;
  }
  const cli = await ensureTemporalCli(config.temporalCliPath, log);
  if (!cli) {
    log('no temporal CLI and no Go on PATH: the dev server will be fetched by the SDK at start (needs internet)');
    return;
  }
  log(`temporal CLI (${cli.source}): ${cli.path} — ${cliVersion(cli.path).split('\n')[0]}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`[temporal:ensure] failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
