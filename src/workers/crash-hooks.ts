/**
 * Where a worker with test crash hooks on (SLUICE_TEST_CRASH_HOOKS=1) reaches its crash points
 * (src/crash-point.ts): at the start and end of every activity (an interceptor), and right after
 * every write or delete in the artifacts store (a wrapper around it). The activities themselves
 * carry no hooks, so a new activity or a new write gets its points without anyone adding them,
 * and the crash-point test fails until CRASH_POINTS lists them. Installed only when the hooks are on.
 */
import { Context } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import { crashPoint, inCrashScope } from '../crash-point';
import { RENDITION_NAMES } from '../shared/constants';
import type { ObjectStore, Storage } from '../storage';

/** Reaches `<activity>:start` before the activity runs and `<activity>:end` after it returned. */
export class CrashPointInterceptor implements ActivityInboundCallsInterceptor {
  constructor(private readonly ctx: Context) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const type = this.ctx.info.activityType;
    crashPoint(`${type}:start`);
    const result = await next(input);
    crashPoint(`${type}:end`);
    return result;
  }
}

const RENDITION = new RegExp(`\\b(${RENDITION_NAMES.join('|')})\\b`, 'g');

/**
 * A store key as a crash point names it: the run's `<workflowId>/<runId>/` dropped, renditions
 * as `{rendition}`, runs of two or more digits (chunk, segment, thumbnail, month) as `#`.
 */
export function keyPattern(key: string): string {
  return key
    .split('/')
    .slice(2)
    .join('/')
    .replace(RENDITION, '{rendition}')
    .replace(/\d{2,}/g, '#');
}

function activityType(): string {
  try {
    return Context.current().info.activityType;
  } catch {
    return 'outside-activity';
  }
}

/**
 * `store` with a crash point after each write and delete: `<activity>:<op> <key pattern>`; a write
 * of an artifact (not under `.work/`) on the `file` backend also reaches `… (before rename)`,
 * between its temp file and its rename.
 */
function hookedStore(store: ObjectStore): ObjectStore {
  const after = async <T>(op: string, key: string, done: () => Promise<T>): Promise<T> => {
    const point = `${activityType()}:${op} ${keyPattern(key)}`;
    const value = await (keyPattern(key).startsWith('.work') ? done() : inCrashScope(point, done));
    crashPoint(point);
    return value;
  };
  return {
    kind: store.kind,
    meter: store.meter,
    uri: (key) => store.uri(key),
    localPath: (key) => store.localPath(key),
    view: (prefix) => hookedStore(store.view(prefix)),
    put: (key, body, opts) => after('put', key, () => store.put(key, body, opts)),
    putFile: (key, file, opts) => after('putFile', key, () => store.putFile(key, file, opts)),
    get: (key, range) => store.get(key, range),
    getBuffer: (key, range) => store.getBuffer(key, range),
    download: (key, file) => store.download(key, file),
    head: (key) => store.head(key),
    verify: (key, bytes, sha256) => store.verify(key, bytes, sha256),
    list: (prefix) => store.list(prefix),
    delete: (key) => after('delete', key, () => store.delete(key)),
    deletePrefix: (prefix) => after('deletePrefix', prefix, () => store.deletePrefix(prefix)),
    presign: (key, ttl) => store.presign(key, ttl),
  };
}

/** `storage` whose artifacts store reaches a crash point after each write and delete. */
export function withCrashPoints(storage: Storage): Storage {
  return { ...storage, artifacts: hookedStore(storage.artifacts), objectAt: (uri) => storage.objectAt(uri) };
}
