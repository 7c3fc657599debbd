/**
 * The CPUs this process may use: its cgroup's CPU quota when it has one (a Kubernetes CPU limit,
 * `docker --cpus`, a systemd CPUQuota), else the cores it may run on. Node's
 * `os.availableParallelism()` sees only the cores, so a worker limited to 1 CPU on a 16-core node
 * would otherwise start 16 ffmpeg processes and thrash.
 *
 * Reads cgroup v2 (`cpu.max`) and v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`) at the process's
 * own cgroup path from `/proc/self/cgroup` (a container sees its own cgroup as `/`), and takes
 * the smallest quota on the way up to the root, as the kernel does.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Folders from `dir` up to `root`, innermost first. */
function upTo(root: string, dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; d.startsWith(root); d = path.dirname(d)) {
    out.push(d);
    if (d === root) break;
  }
  return out;
}

/** Quota in CPUs of the cgroup hierarchy at `root` for the process's `relative` path; undefined when unlimited. */
function quotaOf(root: string, relative: string, v2: boolean): number | undefined {
  let smallest: number | undefined;
  for (const dir of upTo(root, path.join(root, relative))) {
    let cpus: number | undefined;
    if (v2) {
      const [quota, period] = (read(path.join(dir, 'cpu.max')) ?? 'max').split(/\s+/);
      if (quota && quota !== 'max' && Number(period) > 0) cpus = Number(quota) / Number(period);
    } else {
      const quota = Number(read(path.join(dir, 'cpu.cfs_quota_us')) ?? -1);
      const period = Number(read(path.join(dir, 'cpu.cfs_period_us')) ?? 0);
      if (quota > 0 && period > 0) cpus = quota / period;
    }
    if (cpus !== undefined && cpus > 0 && (smallest === undefined || cpus < smallest)) smallest = cpus;
  }
  return smallest;
}

/**
 * The cgroup CPU quota of this process in CPUs (0.4 for `cfs_quota_us` 40000 per 100000), or
 * undefined when there is none (or no cgroup file system is readable).
 * @param procCgroup the text of `/proc/self/cgroup` (a parameter for tests)
 * @param fsRoot where the cgroup file systems are mounted
 */
export function cgroupCpuQuota(
  procCgroup = read('/proc/self/cgroup') ?? '',
  fsRoot = '/sys/fs/cgroup',
): number | undefined {
  const quotas: number[] = [];
  for (const line of procCgroup.split('\n')) {
    const [, controllers, relative] = /^\d+:([^:]*):(.*)$/.exec(line.trim()) ?? [];
    if (relative === undefined) continue;
    if (controllers === '') {
      const q = quotaOf(fsRoot, relative, true);
      if (q !== undefined) quotas.push(q);
    } else if (controllers?.split(',').includes('cpu')) {
      for (const mount of [path.join(fsRoot, controllers), path.join(fsRoot, 'cpu')]) {
        if (!fs.existsSync(path.join(mount, 'cpu.cfs_quota_us'))) continue;
        const q = quotaOf(mount, relative, false);
        if (q !== undefined) quotas.push(q);
        break;
      }
    }
  }
  return quotas.length ? Math.min(...quotas) : undefined;
}

/** Whole CPUs this process may keep busy: at least 1, at most its cores, no more than its quota. */
export function usableCpus(): number {
  const cores = os.availableParallelism();
  const quota = cgroupCpuQuota();
  return Math.max(1, Math.min(cores, quota === undefined ? cores : Math.floor(quota)));
}
