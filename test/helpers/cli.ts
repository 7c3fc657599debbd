/** The real CLI as a child process, for the CLI-contract tests (exit codes, one JSON object). */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect } from 'vitest';
import { REPO_ROOT, type TestEnv } from './env';

/** How a CLI run ended. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `bin/sluice …args` (compiled code: `npm test` builds first) in the test env's directory,
 * with only PATH, HOME and the env's variables; killed after `timeoutMs`.
 */
export function runSluice(
  t: TestEnv,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'sluice'), ...args], {
      cwd: t.dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...t.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** stdout must be exactly one JSON object (the `--json` contract); returns it. */
export function oneJson(run: CliRun): Record<string, unknown> {
  const lines = run.stdout.split('\n').filter((l) => l.trim() !== '');
  expect(lines, run.stderr).toHaveLength(1);
  const value = JSON.parse(lines[0] as string) as unknown;
  expect(typeof value).toBe('object');
  return value as Record<string, unknown>;
}
