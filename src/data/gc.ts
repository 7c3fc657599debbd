/**
 * DuckDB query results hold native memory that V8 does not see: their small JS wrappers make
 * garbage the collector is in no hurry to reclaim, so a busy worker's RSS climbs by hundreds of
 * MB before a major GC. {@link ResultGarbage} asks for a collection every N results instead.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let gcFn: (() => void) | null | undefined;

/** A full GC, via `global.gc` when exposed, else by exposing it once. False when unavailable. */
export function collectGarbage(): boolean {
  if (gcFn === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) gcFn = exposed;
    else {
      try {
        v8.setFlagsFromString('--expose-gc');
        gcFn = vm.runInNewContext('gc') as () => void;
      } catch {
        gcFn = null;
      }
    }
  }
  gcFn?.();
  return gcFn !== null;
}

/** Counts finished queries and collects garbage every `every` of them. */
export class ResultGarbage {
  private count = 0;
  constructor(private readonly every: number) {}

  /** Call after each query's results are no longer needed. */
  done(): void {
    if (this.every > 0 && ++this.count % this.every === 0) collectGarbage();
  }
}
