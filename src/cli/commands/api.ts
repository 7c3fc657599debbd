/** `sluice api`: the HTTP API for apps (see `src/api/server.ts`), until SIGINT/SIGTERM. */
import type { Command } from 'commander';
import { bindProblem, createApiServer, listen } from '../../api/server';
import { SluiceClient } from '../../client';
import { ConfigError, loadConfig } from '../../config';
import { ApiKeyring } from '../../security/api-keys';
import { createLogger } from '../../logger';
import type { SetExit } from '../context';
import { ExitCode, UsageError, info, printJson } from '../output';

/** Registers `sluice api`. */
export function registerApiCommands(program: Command, setExit: SetExit): void {
  program
    .command('api')
    .description('serve the HTTP API: POST /v1/videos, POST /v1/reports, GET|DELETE /v1/pipelines/:id')
    .option('--port <port>', 'port (default SLUICE_API_PORT; 0 picks a free one)')
    .option('--host <host>', 'interface to bind (not loopback: needs API keys or --insecure-no-auth)', '127.0.0.1')
    .option('--insecure-no-auth', 'serve a non-loopback interface without API keys (anyone who reaches it is admin)')
    .option('--json', 'print one JSON object with the bound address on stdout')
    .action(async (opts: { port?: string; host: string; json?: boolean; insecureNoAuth?: boolean }) => {
      const config = loadConfig();
      const port = opts.port === undefined ? config.api.port : Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new UsageError('port', `must be a port number, got ${JSON.stringify(opts.port)}`);
      const problems: string[] = [];
      // Only digests are kept: the key text is not held past this call.
      const keys = ApiKeyring.load({ keys: config.api.keys?.reveal(), keysFile: config.api.keysFile }, problems);
      if (problems.length > 0) throw new ConfigError(problems);
      const refused = bindProblem(opts.host, keys, opts.insecureNoAuth === true);
      if (refused) throw new UsageError('--host', refused);
      const log = createLogger(config.logLevel);
      if (keys.size === 0 && opts.insecureNoAuth)
        log.warn({ host: opts.host }, 'sluice api serves without authentication (--insecure-no-auth)');
      const client = await SluiceClient.connect({ config, tracingService: 'sluice-api' });
      const server = createApiServer({
        client,
        bodyLimitBytes: config.api.bodyLimitBytes,
        log: createLogger(config.logLevel, 'sluice', config.logFormat),
        keys,
        insecureNoAuth: opts.insecureNoAuth === true,
      });
      const bound = await listen(server, port, opts.host);
      if (opts.json)
        printJson({
          url: `http://${opts.host}:${bound}`,
          bodyLimitBytes: config.api.bodyLimitBytes,
          auth: keys.size > 0 ? 'api-keys' : 'none',
        });
      else info(`sluice api listening on http://${opts.host}:${bound}`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await client.close();
      setExit(ExitCode.ok);
    });
}
