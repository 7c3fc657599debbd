/**
 * What every benchmark (and the history recorder) starts with: a private temp directory, a
 * Temporal dev server on free ports (in-memory), an environment pointing Sluice at both, and
 * `--name value` arguments. `close()` stops the server and removes the directory.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type SluiceConfig } from '../src/config';
import { freePort, startDevServer, type DevServerHandle } from '../src/devserver/dev-server';

export const REPO = path.resolve(__dirname, '..');

/** The number after `--name` on the command line, or `fallback`. */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export interface BenchEnv {
  dir: string;
  /** Inputs go here (SLUICE_MEDIA_ROOT). */
  media: string;
  server: DevServerHandle;
  /** Environment for in-process config and for `sluice worker` child processes. */
  env: Record<string, string>;
  config: SluiceConfig;
  close(): Promise<void>;
}

/** Starts the dev server and returns the environment around it. `extraEnv` overrides the defaults. */
export async function startBenchEnv(name: string, extraEnv: Record<string, string> = {}): Promise<BenchEnv> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sluice-${name}-`));
  const media = path.join(dir, 'media');
  fs.mkdirSync(media, { recursive: true });
  const server = await startDevServer({
    port: await freePort(),
    uiPort: await freePort(),
    dbFile: undefined,
    namespace: 'default',
    cliPath: process.env.TEMPORAL_CLI_PATH,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: server.address,
    SLUICE_MEDIA_ROOT: media,
    SLUICE_OUTPUT_DIR: path.join(dir, 'out'),
    SLUICE_DATA_DIR: path.join(dir, 'data'),
    SLUICE_METRICS_PORT: '0',
    SLUICE_LOG_LEVEL: 'warn',
    SLUICE_TASK_QUEUE_SUFFIX: name,
    ...extraEnv,
  };
  return {
    dir,
    media,
    server,
    env,
    config: loadConfig(env, dir),
    close: async () => {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes a benchmark's figures to `.data/bench/<name>.json`. */
export function saveFigures(name: string, figures: object): void {
  fs.mkdirSync(path.join(REPO, '.data', 'bench'), { recursive: true });
  fs.writeFileSync(path.join(REPO, '.data', 'bench', `${name}.json`), JSON.stringify(figures, null, 2) + '\n');
}
