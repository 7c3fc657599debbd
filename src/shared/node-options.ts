/**
 * NODE_OPTIONS for worker processes: {@link WORKER_V8_FLAGS} added to what the environment
 * already sets. A flag the operator set keeps the operator's value.
 */
import { WORKER_MALLOC_ARENA_MAX, WORKER_V8_FLAGS } from './constants';

/** `existing` NODE_OPTIONS with every worker V8 flag it does not set yet appended. */
export function workerNodeOptions(existing: string | undefined): string {
  const given = (existing ?? '').split(/\s+/).filter(Boolean);
  const set = new Set(given.map((opt) => opt.split('=')[0]?.replace(/_/g, '-')));
  const added = Object.entries(WORKER_V8_FLAGS)
    .filter(([flag]) => !set.has(flag))
    .map(([flag, value]) => `${flag}=${value}`);
  return [...given, ...added].join(' ');
}

/**
 * `env` for a worker child process: {@link workerNodeOptions} as NODE_OPTIONS, and glibc held to
 * {@link WORKER_MALLOC_ARENA_MAX} malloc arenas unless the environment says otherwise (a worker
 * has a dozen native threads: Temporal core, libuv, DuckDB; one arena each adds up).
 */
export function workerProcessEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...env,
    NODE_OPTIONS: workerNodeOptions(env.NODE_OPTIONS),
    MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX ?? WORKER_MALLOC_ARENA_MAX,
  };
}
