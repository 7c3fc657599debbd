/**
 * Per-process scratch on a host: each worker host works in `<SLUICE_SCRATCH_DIR>/w-<pid>-<n>/`
 * (`n` counts the hosts one process starts).
 * At start a worker removes the folders of processes on this host that are gone (a SIGKILLed or
 * OOM-killed worker's partial downloads, ffmpeg outputs and report copies) and stops the ffmpeg
 * children such a worker left running (their command lines name its folder). Nothing of a live
 * process is touched: a folder is swept only when no process has its pid. Killed work therefore
 * never fills a host's disk, and a clean shutdown removes its own folder.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';

/** A worker host's scratch folder: its process's pid, then the host's number in that process. */
const FOLDER = /^w-(\d+)-\d+$/;
let claims = 0;
/** Folders claimed by this process: the only ones with its pid that are not stale. */
const claimedHere = new Set<string>();

/** What {@link claimScratch} found and made. */
export interface ScratchClaim {
  /** This host's folder: `<root>/w-<pid>-<n>`. */
  dir: string;
  /** Folders of processes that were gone, removed. */
  swept: string[];
  /** Pids of processes left running by a gone worker (they named its folder), sent SIGKILL. */
  killed: number[];
  /** Removes this host's folder (on a clean shutdown). */
  release(): Promise<void>;
}

/** True while a process with this pid exists (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Pids whose command line names a path inside `dir` (Linux `/proc`; none elsewhere). */
async function processesUsing(dir: string): Promise<number[]> {
  let entries: string[];
  try {
    entries = await fsp.readdir('/proc');
  } catch {
    return [];
  }
  const inside = dir + path.sep;
  const found: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const args = (await fsp.readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0');
      if (args.some((a) => a.startsWith(inside) || a.includes(`=${inside}`) || a.includes(`file:${inside}`))) {
        found.push(Number(name));
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/**
 * Claims `<root>/w-<pid>-<n>` for a worker host of this process and sweeps the folders of processes that are gone,
 * first stopping what still runs inside them.
 */
export async function claimScratch(root: string, pid: number = process.pid): Promise<ScratchClaim> {
  await fsp.mkdir(root, { recursive: true });
  const swept: string[] = [];
  const killed: number[] = [];
  for (const name of await fsp.readdir(root)) {
    const owner = FOLDER.exec(name)?.[1];
    const dir = path.join(root, name);
    // Our own pid on a folder we did not claim: an earlier process with the same pid (a restarted
    // container's worker is pid 1 again, and its emptyDir survives the restart).
    if (!owner || claimedHere.has(dir) || (Number(owner) !== pid && processAlive(Number(owner)))) continue;
    for (const orphan of await processesUsing(dir)) {
      try {
        process.kill(orphan, 'SIGKILL');
        killed.push(orphan);
      } catch {
        // already gone
      }
    }
    await fsp.rm(dir, { recursive: true, force: true });
    swept.push(dir);
  }
  const dir = path.join(root, `w-${pid}-${++claims}`);
  await fsp.mkdir(dir, { recursive: true });
  claimedHere.add(dir);
  return {
    dir,
    swept,
    killed,
    release: async () => {
      await fsp.rm(dir, { recursive: true, force: true });
      claimedHere.delete(dir);
    },
  };
}
