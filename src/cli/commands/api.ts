/** `sluice api`: the HTTP API for apps (see `src/api/server.ts`), until SIGINT/SIGTERM. */
import type { Command } from 'commander';
import { createApiServer, listen } from '../../api/server';
import { SluiceClient } from '../../client';
import { loadConfig } from '../../config';
import { createLogger } from '../../logger';
import type { SetExit } from '../context';
import { ExitCode, UsageError, info, printJson } from '../output';

/** Registers `sluice api`. */
export function registerApiCommands(program: Command, setExit: SetExit): void {
  program
    .command('api')
    .description('serve the HTTP API: POST /v1/videos, POST /v1/reports, GET|DELETE /v1/pipelines/:id')
    .option('--port <port>', 'port (default SLUICE_API_PORT; 0 picks a free one)')
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .option('--json', 'print one JSON object with the bound address on stdout')
    .action(async (opts: { port?: string; host: string; json?: boolean }) => {
      const config = loadConfig();
      const port = opts.port === undefined ? config.api.port : Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new UsageError('port', `must be a port number, got ${JSON.stringify(opts.port)}`);
      const client = await SluiceClient.connect({ config });
      const server = createApiServer({
        client,
        bodyLimitBytes: config.api.bodyLimitBytes,
        log: createLogger(config.logLevel, 'sluice', config.logFormat),
      });
      const bound = await listen(server, port, opts.host);
      if (opts.json) printJson({ url: `http://${opts.host}:${bound}`, bodyLimitBytes: config.api.bodyLimitBytes });
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
