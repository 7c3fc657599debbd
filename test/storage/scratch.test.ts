/**
 * Per-process scratch folders: a worker host claims `w-<pid>-<n>` and sweeps the folders of
 * processes that are gone, stopping what a gone worker left running inside its folder (an ffmpeg
 * child outlives a SIGKILLed worker). Real processes stand in for the workers: one killed, one alive.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { claimScratch, processAlive } from '../../src/storage/scratch';

const children: ChildProcess[] = [];

/** A process that sleeps; its command line names `arg` (as ffmpeg's names its output file). */
function sleeper(arg: string): ChildProcess {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)', arg], { stdio: 'ignore' });
  children.push(child);
  return child;
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((resolve) => child.once('exit', resolve));
}

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

describe('scratch folders of worker processes', () => {
  it('sweeps a gone worker’s folder and stops what it left running; keeps a live one’s', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-scratch-'));
    try {
      // A "worker" that is SIGKILLed, leaving a partial file and an orphan writing in its folder.
      const gone = sleeper('worker');
      const goneDir = path.join(root, `w-${gone.pid}-1`);
      fs.mkdirSync(path.join(goneDir, 'act-x'), { recursive: true });
      fs.writeFileSync(path.join(goneDir, 'act-x', 'seg-00001.ts'), Buffer.alloc(1024));
      const orphan = sleeper(path.join(goneDir, 'act-x', 'seg-00002.ts'));
      gone.kill('SIGKILL');
      await exited(gone);
      expect(processAlive(gone.pid!)).toBe(false);

      // A live worker's folder, and its child working inside it.
      const live = sleeper('worker');
      const liveDir = path.join(root, `w-${live.pid}-1`);
      fs.mkdirSync(liveDir);
      fs.writeFileSync(path.join(liveDir, 'in-use'), 'x');
      const liveChild = sleeper(path.join(liveDir, 'out.ts'));
      // A folder with this process's own pid that it never claimed: an earlier process with the
      // same pid (a restarted container's worker is pid 1 again).
      const stale = path.join(root, `w-${process.pid}-99`);
      fs.mkdirSync(stale);
      fs.writeFileSync(path.join(stale, 'old.ts'), 'x');
      // Something else in the root that is not a worker's folder.
      fs.writeFileSync(path.join(root, 'README'), 'not ours');

      const claim = await claimScratch(root);
      expect([...claim.swept].sort()).toEqual([goneDir, stale].sort());
      expect(claim.killed).toEqual([orphan.pid]);
      await exited(orphan);
      expect(orphan.signalCode).toBe('SIGKILL');
      expect(fs.existsSync(goneDir)).toBe(false);
      expect(fs.existsSync(stale)).toBe(false);
      expect(fs.readFileSync(path.join(liveDir, 'in-use'), 'utf8')).toBe('x');
      expect(liveChild.exitCode === null && liveChild.signalCode === null).toBe(true);
      expect(fs.existsSync(path.join(root, 'README'))).toBe(true);

      // Its own folder, distinct for a second host in the same process, removed on release.
      expect(path.basename(claim.dir)).toMatch(new RegExp(`^w-${process.pid}-\\d+$`));
      const second = await claimScratch(root);
      expect(second.dir).not.toBe(claim.dir);
      expect(second.swept).toEqual([]);
      await claim.release();
      expect(fs.existsSync(claim.dir)).toBe(false);
      expect(fs.existsSync(second.dir)).toBe(true);
      await second.release();
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
