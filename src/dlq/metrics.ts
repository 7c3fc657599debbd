/** The `sluice_dlq_depth` gauge: dead letters not yet replayed, read from the store at scrape time. */
import client from 'prom-client';
import type { DlqStore } from './store';

/** Registers `sluice_dlq_depth` on `registry`, asking `store` on every scrape. */
export function registerDlqDepthGauge(registry: client.Registry, store: DlqStore): client.Gauge {
  return new client.Gauge({
    name: 'sluice_dlq_depth',
    help: 'Dead-lettered pipelines and sub-jobs not yet replayed',
    labelNames: ['store'],
    registers: [registry],
    async collect() {
      try {
        this.set({ store: store.kind }, await store.depth());
      } catch {
        // An unreachable store leaves the last value; the scrape itself must not fail.
      }
    },
  });
}
