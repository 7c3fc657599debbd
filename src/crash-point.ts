/**
 * Test-only crash hooks: a worker started with SLUICE_TEST_CRASH_HOOKS=1 and SLUICE_CRASH_AT=<point>
 * SIGKILLs itself the first time it reaches that point (a named place listed in CRASH_POINTS,
 * src/shared/constants.ts), so a fault test can kill it at an exact activity boundary or store
 * write instead of guessing with timers. A marker file under the hooks' folder (in the worker's
 * data dir) makes it happen once: a worker restarted with the same environment runs on. Every
 * point reached is appended to `reached.log` there, so a test can check that its list is complete.
 *
 * Without {@link armCrashHooks} (SLUICE_TEST_CRASH_HOOKS unset), {@link crashPoint} does nothing.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs';
import path from 'node:path';

/** Settings of the crash hooks (config.testCrashHooks). */
export interface CrashHooks {
  /** Folder of the marker files and `reached.log` (`<SLUICE_DATA_DIR>/crash-hooks`). */
  dir: string;
  /** The point to crash at; unset records the points reached and never crashes. */
  at?: string;
}

let armed: CrashHooks | undefined;

/** Turns the hooks on in this process (the worker host does, when config asks for it). */
export function armCrashHooks(hooks: CrashHooks): void {
  fs.mkdirSync(hooks.dir, { recursive: true });
  armed = hooks;
}

/** File that records that this process (or an earlier one) already crashed at `point`. */
export function crashMarker(dir: string, point: string): string {
  return path.join(dir, `crashed-${encodeURIComponent(point)}`);
}

/** Kills this process with SIGKILL if it is armed for `point` and has not crashed there yet. */
export function crashPoint(point: string): void {
  if (!armed) return;
  fs.appendFileSync(path.join(armed.dir, 'reached.log'), `${point}\n`);
  if (point !== armed.at) return;
  let fd: number;
  try {
    fd = fs.openSync(crashMarker(armed.dir, point), 'wx');
  } catch {
    return; // crashed here once already: the restarted worker runs on
  }
  fs.writeSync(fd, `${process.pid}\n`);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  process.kill(process.pid, 'SIGKILL');
}

/** The write in progress, for {@link midWriteCrashPoint}. */
const writing = new AsyncLocalStorage<string>();

/** Runs `write` as the write named `point` (when armed): a store reaching its mid-write point inside it crashes as `<point> (before rename)`. */
export function inCrashScope<T>(point: string, write: () => T): T {
  return armed ? writing.run(point, write) : write();
}

/** Reached by the `file` store between writing an object's temp file and renaming it into place. */
export function midWriteCrashPoint(): void {
  const point = armed && writing.getStore();
  if (point) crashPoint(`${point} (before rename)`);
}
