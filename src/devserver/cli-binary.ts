/**
 * Finding (or building) the `temporal` CLI that runs the embedded dev server.
 *
 * Order: TEMPORAL_CLI_PATH → `temporal` on PATH → `<repo>/.tools/temporal` → `go install` of the
 * pinned CLI into `<repo>/.tools` when Go is on PATH → none (the caller then falls back to the
 * SDK's cached download, which needs internet).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The pinned CLI release: v1.6.0 and later cannot be `go install`ed (their go.mod has a replace directive). */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';
export const TEMPORAL_CLI_VERSION = 'v1.5.1';

/** Repository root: two levels above this file in both `src/` and `dist/` layouts. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const TOOLS_DIR = path.join(REPO_ROOT, '.tools');

export type CliSource = 'TEMPORAL_CLI_PATH' | 'PATH' | '.tools' | 'go install';
export interface FoundCli {
  path: string;
  source: CliSource;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** First executable named `name` on PATH, or undefined. */
export function whichSync(name: string, envPath: string | undefined = process.env.PATH): string | undefined {
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Looks for an existing CLI without building anything. */
export function findTemporalCli(explicitPath?: string): FoundCli | undefined {
  if (explicitPath) {
    if (!isExecutable(explicitPath)) {
      throw new Error(`TEMPORAL_CLI_PATH=${explicitPath} is not an executable file`);
    }
    return { path: explicitPath, source: 'TEMPORAL_CLI_PATH' };
  }
  const onPath = whichSync('temporal');
  if (onPath) return { path: onPath, source: 'PATH' };
  const local = path.join(TOOLS_DIR, 'temporal');
  if (isExecutable(local)) return { path: local, source: '.tools' };
  return undefined;
}

/**
 * Builds the pinned CLI with `go install` into `.tools/`. Prints progress to `log` because the
 * first build takes minutes. Resolves to the binary path, or rejects with the Go output.
 */
export async function buildTemporalCli(log: (line: string) => void): Promise<string> {
  const go = whichSync('go');
  if (!go) throw new Error('Go is not on PATH');
  fs.mkdirSync(TOOLS_DIR, { recursive: true });
  const target = `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`;
  log(`building the Temporal CLI: GOBIN=${TOOLS_DIR} go install ${target} (the first build takes a few minutes)`);
  const started = Date.now();
  const child = spawn(go, ['install', target], {
    env: { ...process.env, GOBIN: TOOLS_DIR },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const ticker = setInterval(() => log(`  still building… ${Math.round((Date.now() - started) / 1000)} s`), 30_000);
  const collect = (chunk: Buffer) => output.push(chunk.toString());
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  }).finally(() => clearInterval(ticker));
  const binary = path.join(TOOLS_DIR, 'temporal');
  if (code !== 0 || !isExecutable(binary)) {
    throw new Error(
      `go install ${target} failed (exit ${code}):\n${output.join('').trim().split('\n').slice(-20).join('\n')}`,
    );
  }
  log(`built ${binary} in ${Math.round((Date.now() - started) / 1000)} s`);
  return binary;
}

/** Version line printed by a CLI binary, for logs. */
export function cliVersion(binary: string): string {
  const out = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return (out.stdout || out.stderr || '').trim();
}

/**
 * Finds the CLI, building it when Go is available. Returns undefined only when no local route
 * works (no CLI and no Go); the caller then tries the SDK's download.
 */
export async function ensureTemporalCli(
  explicitPath: string | undefined,
  log: (line: string) => void,
): Promise<FoundCli | undefined> {
  const found = findTemporalCli(explicitPath);
  if (found) return found;
  if (!whichSync('go')) return undefined;
  return { path: await buildTemporalCli(log), source: 'go install' };
}
