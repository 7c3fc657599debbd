/**
 * The worker sizes its ffmpeg concurrency from its cgroup CPU quota (a Kubernetes CPU limit), not
 * from the node's cores: parsing of cgroup v1 and v2 layouts, and a process placed in a real
 * cgroup v1 with a quota on this machine.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cgroupCpuQuota } from '../../src/shared/cpu-quota';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cgroup-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

describe('cgroupCpuQuota', () => {
  it('reads a cgroup v2 cpu.max at the process path and takes the smallest quota up to the root', () => {
    const root = path.join(tmp, 'v2');
    write(path.join(root, 'cpu.max'), 'max 100000\n');
    write(path.join(root, 'kubepods', 'cpu.max'), '800000 100000\n');
    write(path.join(root, 'kubepods', 'pod1', 'cpu.max'), '150000 100000\n');
    write(path.join(root, 'kubepods', 'pod1', 'ctr', 'cpu.max'), 'max 100000\n');
    expect(cgroupCpuQuota('0::/kubepods/pod1/ctr\n', root)).toBe(1.5);
    // A container with its own cgroup namespace sees itself at '/'.
    write(path.join(tmp, 'v2ns', 'cpu.max'), '50000 100000\n');
    expect(cgroupCpuQuota('0::/\n', path.join(tmp, 'v2ns'))).toBe(0.5);
  });

  it('reads cgroup v1 cfs quota and period, on a combined cpu,cpuacct mount too', () => {
    const root = path.join(tmp, 'v1');
    write(path.join(root, 'cpu,cpuacct', 'cpu.cfs_quota_us'), '-1\n');
    write(path.join(root, 'cpu,cpuacct', 'cpu.cfs_period_us'), '100000\n');
    write(path.join(root, 'cpu,cpuacct', 'docker', 'abc', 'cpu.cfs_quota_us'), '40000\n');
    write(path.join(root, 'cpu,cpuacct', 'docker', 'abc', 'cpu.cfs_period_us'), '100000\n');
    const proc = '12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n';
    expect(cgroupCpuQuota(proc, root)).toBe(0.4);
  });

  it('is undefined without a quota, or without a readable cgroup file system', () => {
    const root = path.join(tmp, 'none');
    write(path.join(root, 'cpu.max'), 'max 100000\n');
    expect(cgroupCpuQuota('0::/\n', root)).toBeUndefined();
    expect(cgroupCpuQuota('0::/\n', path.join(tmp, 'absent'))).toBeUndefined();
    expect(cgroupCpuQuota('', root)).toBeUndefined();
  });

  const cgroupV1 = '/sys/fs/cgroup/cpu';
  const canMakeCgroups = process.getuid?.() === 0 && fs.existsSync(path.join(cgroupV1, 'cpu.cfs_quota_us'));
  it.skipIf(!canMakeCgroups)(
    'a process in a real cgroup v1 with a 1.5 CPU quota sees 1.5 (root, cgroup v1 cpu controller)',
    () => {
      const dir = path.join(cgroupV1, `sluice-test-quota-${process.pid}`);
      fs.mkdirSync(dir);
      try {
        fs.writeFileSync(path.join(dir, 'cpu.cfs_period_us'), '100000');
        fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), '150000');
        const module = path.resolve(__dirname, '../../src/shared/cpu-quota.ts');
        const tsx = path.resolve(__dirname, '../../node_modules/.bin/tsx');
        const out = execFileSync(
          'sh',
          [
            '-c',
            `echo $$ > ${dir}/cgroup.procs && exec "$0" -e "console.log(JSON.stringify(require(process.argv[1]).cgroupCpuQuota()))" "$1"`,
            tsx,
            module,
          ],
          { encoding: 'utf8', timeout: 30_000 },
        );
        expect(JSON.parse(out.trim())).toBe(1.5);
      } finally {
        fs.rmdirSync(dir);
      }
    },
  );
});
