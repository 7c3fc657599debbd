/**
 * `sluice serve-artifacts [dir]`: serves a run's output folder (default: SLUICE_OUTPUT_DIR) on
 * 127.0.0.1 with CORS and byte ranges, and a page that plays its master playlist with hls.js.
 * Runs until SIGINT/SIGTERM.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config';
import type { SetExit } from '../context';
import { ExitCode, UsageError, info, printJson } from '../output';
import { hlsJsPath, startArtifactServer } from '../serve-artifacts';

/** Registers `sluice serve-artifacts`. */
export function registerServeArtifactsCommands(program: Command, setExit: SetExit): void {
  program
    .command('serve-artifacts')
    .description(
      'serve a folder of artifacts on 127.0.0.1 (CORS, ranges) with an hls.js page to watch a master playlist',
    )
    .argument('[dir]', 'folder to serve (default: SLUICE_OUTPUT_DIR)')
    .option('--port <n>', 'port (default: any free port)')
    .option('--json', 'print one JSON object with the URLs on stdout once listening')
    .action(async (dir: string | undefined, opts: { port?: string; json?: boolean }) => {
      const root = path.resolve(dir ?? loadConfig().outputDir);
      if (!fs.statSync(root, { throwIfNoEntry: false })?.isDirectory()) {
        throw new UsageError('dir', `${root} is not a directory`);
      }
      const port = opts.port === undefined ? 0 : Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port', 'must be 0-65535');
      const server = await startArtifactServer({ root, port });
      const watch = fs.existsSync(path.join(root, 'master.m3u8'))
        ? `${server.url}/watch?src=master.m3u8`
        : fs.existsSync(path.join(root, 'manifest.mpd'))
          ? `${server.url}/watch-dash?src=manifest.mpd`
          : undefined;
      if (opts.json) printJson({ url: server.url, ...(watch ? { watch } : {}) });
      info(`serving ${root} on ${server.url} (CORS, byte ranges)`);
      if (watch) info(`watch: ${watch}`);
      else info(`watch a run: ${server.url}/watch?src=<workflowId>/<runId>/master.m3u8`);
      if (!hlsJsPath()) info('hls.js is not installed (npm install): the page falls back to native HLS playback');
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      info(`serve-artifacts: ${signal}, stopping`);
      await server.close();
      setExit(ExitCode.ok);
    });
}
