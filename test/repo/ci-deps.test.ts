/**
 * `npm test` sets itself up: pretest runs scripts/ci-deps.sh, which installs what is missing as
 * root and, without root, fails at once naming the package and the command that installs it.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/env';

describe('scripts/ci-deps.sh', () => {
  it('is what pretest and the fault suite run before anything else', () => {
    const scripts = (
      JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    expect(scripts.pretest?.startsWith('bash scripts/ci-deps.sh && ')).toBe(true);
    expect(scripts['test:faults']?.startsWith('bash scripts/ci-deps.sh && ')).toBe(true);
  });

  it('without root and without promtool, exits 1 naming the package and the command to install it', () => {
    // A PATH with only the few commands the script needs before it looks for promtool.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'ci-deps-path-'));
    const which = (tool: string) => spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    for (const tool of ['bash', 'dirname', 'id']) fs.symlinkSync(which(tool), path.join(bin, tool));
    fs.chmodSync(bin, 0o755);
    const asNobody =
      process.getuid?.() === 0 ? [which('setpriv'), '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
    const [cmd, ...args] = [...asNobody, path.join(bin, 'bash'), path.join(REPO_ROOT, 'scripts', 'ci-deps.sh')];
    const run = spawnSync(cmd, args, { env: { PATH: bin }, encoding: 'utf8', timeout: 30_000 });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('the Debian package(s) prometheus, which only root can install');
    expect(run.stderr).toContain('sudo apt-get update && sudo apt-get install -y prometheus');
  });
});
