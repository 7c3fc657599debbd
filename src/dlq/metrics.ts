/**
 * Dead-letter metrics: the `sluice_dlq_depth` gauge (dead letters not yet replayed, read from the
 * store at scrape time) and `sluice_dlq_write_failures_total` (dead letters lost).
 */
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

/**
 * Registers `sluice_dlq_write_failures_total` on `registry`: dead letters that could not be written
 * within the pipeline's retry budget, by record kind and workflow type. Any increase is an alert.
 */
export function registerDlqWriteFailureCounter(registry: client.Registry): client.Counter<'kind' | 'workflow_type'> {
  return new client.Counter({
    name: 'sluice_dlq_write_failures_total',
    help: 'Dead letters that could not be written after their retries (the record is lost; the run result says so)',
    labelNames: ['kind', 'workflow_type'],
    registers: [registry],
  });
}
