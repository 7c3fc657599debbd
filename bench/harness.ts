/**
 * What every benchmark (and the history recorder) starts with: a private temp directory, a
 * Temporal dev server on free ports (in-memory), an environment pointing Sluice at both, and
 * `--name value` arguments. `close()` stops the server and removes the directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SluiceClient } from '../src/client';
import { loadConfig, type SluiceConfig } from '../src/config';
import { freePort, startDevServer, type DevServerHandle } from '../src/devserver/dev-server';
import { workerProcessEnv } from '../src/shared/node-options';

export const REPO = path.resolve(__dirname, '..');

/** The number after `--name` on the command line, or `fallback`. */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** The comma-separated numbers after `--name` (empty or non-positive entries dropped), or `fallback`. */
export function listArg(name: string, fallback: number[]): number[] {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0
    ? (process.argv[i + 1] ?? '')
        .split(',')
        .map(Number)
        .filter((n) => n > 0)
    : fallback;
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

/** Peak and current RSS of a process, from /proc (VmHWM is the kernel's high-water mark). */
export function rssOf(pid: number): { peakMB: number; currentMB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakMB: +(kb('VmHWM') / 1024).toFixed(1), currentMB: +(kb('VmRSS') / 1024).toFixed(1) };
}

/**
 * The worker under test is the real `sluice worker --tiers default` (compiled: `npm run build`
 * first, which also writes the prebuilt workflow bundle), in its own process, so that its RSS is
 * the worker's alone. Resolves once it polls the tier's workflow queue.
 */
export async function spawnWorker(
  env: Record<string, string>,
  client: SluiceClient,
  taskQueue: string,
): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const bin = path.join(__dirname, '..', 'bin', 'sluice');
  if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'cli', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm run bench:fanout does)');
  const child = spawn(process.execPath, [bin, 'worker', '--tiers', 'default'], {
    // As the Kubernetes manifests launch it: with the worker V8 flags and malloc arena limit.
    env: workerProcessEnv({
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX,
      NODE_OPTIONS: process.env.NODE_OPTIONS,
      ...env,
    }),
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sluice worker exited with ${child.exitCode} before it polled`);
    if (Date.now() > deadline) throw new Error('sluice worker did not poll within 120 s');
    const d = await client.temporal.workflowService.describeTaskQueue({
      namespace: client.config.temporal.namespace,
      taskQueue: { name: taskQueue },
      taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
    });
    if ((d.pollers ?? []).length > 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}
