/**
 * `sluice codec-server`: serves POST /encode and /decode for the Temporal UI and CLI
 * (`--codec-endpoint`), so operators can read encrypted payloads. Needs SLUICE_CODEC_KEYS (or
 * _FILE) and SLUICE_CODEC_TOKEN; listens on SLUICE_CODEC_HOST:SLUICE_CODEC_PORT until SIGINT/SIGTERM.
 */
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../config';
import { createLogger } from '../../logger';
import { codecFor } from '../../security/codec';
import { startCodecServer } from '../../security/codec-server';
import type { SetExit } from '../context';
import { ExitCode, info, printJson } from '../output';

/** Registers `sluice codec-server`. */
export function registerCodecServerCommands(program: Command, setExit: SetExit): void {
  program
    .command('codec-server')
    .description('serve /encode and /decode for the Temporal UI (bearer token, CORS allow-list)')
    .option('--json', 'print one JSON object with the URL on stdout once listening')
    .action(async (opts: { json?: boolean }) => {
      const config = loadConfig();
      const problems: string[] = [];
      if (!config.codec.keys && !config.codec.keysFile) {
        problems.push('SLUICE_CODEC_KEYS: required by the codec server (or SLUICE_CODEC_KEYS_FILE)');
      }
      if (!config.codec.token) problems.push('SLUICE_CODEC_TOKEN: required by the codec server');
      if (problems.length > 0) throw new ConfigError(problems);
      const codec = codecFor(config.codec);
      if (!codec) throw new ConfigError(['SLUICE_CODEC_KEYS: no keys']);
      const log = createLogger(config.logLevel, 'sluice', config.logFormat);
      const server = await startCodecServer({
        codec,
        token: config.codec.token,
        corsOrigins: config.codec.corsOrigins,
        host: config.codec.host,
        port: config.codec.port,
        log,
      });
      if (opts.json) printJson({ url: server.url, port: server.port, activeKeyId: codec.activeKeyId });
      info(
        `codec server on ${server.url} (active key ${codec.activeKeyId}; CORS: ${config.codec.corsOrigins.join(', ') || 'none'})`,
      );
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      info(`codec server: ${signal}, stopping`);
      await server.close();
      setExit(ExitCode.ok);
    });
}
