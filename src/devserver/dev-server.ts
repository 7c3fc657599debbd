/**
 * The embedded Temporal dev server (`temporal server start-dev`): SQLite state under `.data/`,
 * UI on 8233, Sluice's search attributes registered, priority and fairness enabled.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_TYPES } from '../shared/constants';
import { ensureTemporalCli, type FoundCli } from './cli-binary';

/** Dynamic config the dev server starts with: server 1.29 needs these for priority and fairness. */
export const DEV_SERVER_DYNAMIC_CONFIG: Readonly<Record<string, unknown>> = {
  'matching.useNewMatcher': true,
  'matching.enableFairness': true,
  // One partition per queue: priority order holds only within a partition, and one machine
  // needs no more throughput than a single partition gives.
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
  // Worker Versioning: a version no longer current is checked for open pinned runs every few
  // seconds rather than minutes, so `sluice deploy drain-status` says "drained" soon after.
  'matching.wv.VersionDrainageStatusRefreshInterval': '5s',
  'matching.wv.VersionDrainageStatusVisibilityGracePeriod': '5s',
  // Each tier on each task-queue suffix is its own Worker Deployment. The default cap of 100 per
  // namespace was reached by the fault suite (the crash-point matrix runs 94 lanes, each on its
  // own suffix), after which a new deployment never registers and its workers exit.
  'matching.maxDeployments': 1000,
};

export interface DevServerOptions {
  port: number;
  uiPort: number;
  /** SQLite file; undefined keeps state in memory (tests). */
  dbFile: string | undefined;
  namespace: string;
  /** Explicit CLI path (TEMPORAL_CLI_PATH). */
  cliPath: string | undefined;
  /** Where the server's own log goes; default: `<dbFile dir>/temporal-server.log` or ignored. */
  logFile?: string;
  /** Extra `start-dev` flags (for example `--ui-codec-endpoint`). */
  extraArgs?: string[];
  log: (line: string) => void;
}

export interface DevServerHandle {
  address: string;
  uiUrl: string | undefined;
  /** How the server binary was found. */
  source: FoundCli['source'] | 'sdk download';
  /** Process ID of the server (undefined when the SDK runs it). */
  pid: number | undefined;
  /** Resolves when the server process exits, for whatever reason (undefined when the SDK runs it). */
  exited?: Promise<void>;
  stop(): Promise<void>;
}

/** `start-dev` arguments for these options. */
export function devServerArgs(
  opts: Pick<DevServerOptions, 'port' | 'uiPort' | 'dbFile' | 'namespace' | 'extraArgs'>,
): string[] {
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.port), '--namespace', opts.namespace];
  args.push('--ui-port', String(opts.uiPort));
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  for (const [key, type] of Object.entries(SEARCH_ATTRIBUTE_TYPES)) args.push('--search-attribute', `${key}=${type}`);
  for (const [key, value] of Object.entries(DEV_SERVER_DYNAMIC_CONFIG)) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  args.push('--log-level', 'warn', ...(opts.extraArgs ?? []));
  return args;
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function isPortOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A free TCP port on 127.0.0.1, chosen by the kernel. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Waits until the frontend answers a health check (the namespace exists and search attributes are registered). */
export async function waitForFrontend(
  address: string,
  timeoutMs: number,
  isAlive: () => boolean = () => true,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error('the Temporal dev server exited during start-up');
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2_000 });
      try {
        await connection.healthService.check({});
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(
    `the Temporal dev server at ${address} did not become healthy within ${timeoutMs} ms: ${String(lastError)}`,
  );
}

/**
 * Starts the dev server and resolves once it is healthy. With no local CLI and no Go, falls back
 * to the SDK's cached download (works only with internet) and fails with every route named.
 */
export async function startDevServer(opts: DevServerOptions): Promise<DevServerHandle> {
  const address = `127.0.0.1:${opts.port}`;
  if (await isPortOpen(opts.port)) {
    throw new Error(
      `port ${opts.port} is already in use: is another Temporal server running? Set TEMPORAL_ADDRESS to use it, or SLUICE_DEV_SERVER_PORT to pick another port`,
    );
  }
  const cli = await ensureTemporalCli(opts.cliPath, opts.log);
  if (!cli) return startWithSdkDownload(opts);

  if (opts.dbFile) fs.mkdirSync(path.dirname(opts.dbFile), { recursive: true });
  const logFile =
    opts.logFile ?? (opts.dbFile ? path.join(path.dirname(opts.dbFile), 'temporal-server.log') : undefined);
  const out = logFile ? fs.openSync(logFile, 'a') : 'ignore';
  const child: ChildProcess = spawn(cli.path, devServerArgs(opts), { stdio: ['ignore', out, out], detached: false });
  if (typeof out === 'number') fs.closeSync(out);
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  try {
    await waitForFrontend(address, 60_000, () => !exited);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}${logFile ? ` (server log: ${logFile})` : ''}`);
  }
  return {
    address,
    uiUrl: `http://127.0.0.1:${opts.uiPort}`,
    source: cli.source,
    pid: child.pid,
    exited: exitedPromise,
    stop: () => stopChild(child, () => exited),
  };
}

async function stopChild(child: ChildProcess, hasExited: () => boolean): Promise<void> {
  if (hasExited()) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(timer);
}

async function startWithSdkDownload(opts: DevServerOptions): Promise<DevServerHandle> {
  opts.log('no temporal CLI found and Go is not on PATH: trying the SDK download of the dev server (needs internet)');
  // Loaded lazily: only this last-resort route needs the testing package.
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  try {
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'cached-download' },
        ip: '127.0.0.1',
        port: opts.port,
        ui: true,
        uiPort: opts.uiPort,
        dbFilename: opts.dbFile,
        namespace: opts.namespace,
        extraArgs: devServerArgs(opts)
          .slice(2)
          .filter((_, i, all) => isExtraFlag(all, i)),
      },
    });
    return {
      address: `127.0.0.1:${opts.port}`,
      uiUrl: `http://127.0.0.1:${opts.uiPort}`,
      source: 'sdk download',
      pid: undefined,
      stop: () => env.teardown(),
    };
  } catch (err) {
    throw new Error(
      'no route to a Temporal server worked:\n' +
        '  1. TEMPORAL_CLI_PATH is unset\n  2. no `temporal` on PATH\n  3. no .tools/temporal\n' +
        '  4. Go is not on PATH (install Go to build the pinned CLI)\n' +
        `  5. the SDK download failed: ${(err as Error).message}\n` +
        'Set TEMPORAL_ADDRESS to use an existing server, or TEMPORAL_CLI_PATH to a CLI binary.',
    );
  }
}

/** The SDK sets ip/port/ui/db/namespace itself; pass only the search-attribute and dynamic-config flags. */
function isExtraFlag(args: string[], index: number): boolean {
  const flag = args[index]?.startsWith('--') ? args[index] : args[index - 1];
  return flag === '--search-attribute' || flag === '--dynamic-config-value';
}
