/**
 * `GET /v1/pipelines/:id/events` on a real port against the real dev server and a worker with the
 * real report activities: events arrive in order with contiguous IDs, a reconnect with
 * Last-Event-ID resumes without gaps or repeats, the stream ends when the run closes, and
 * `sluice status --follow` prints the same. Prints the p95 delay from a sub-job completing to its
 * event reaching the client.
 */
import type http from 'node:http';
import { activityInfo } from '@temporalio/activity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer, listen } from '../../src/api/server';
import type { SluiceClient } from '../../src/client';
import type { DuckDbSource } from '../../src/data/duckdb';
import type { ProgressEvent } from '../../src/shared/progress-events';
import type { WorkerHost } from '../../src/workers/host';
import { oneJson, runSluice } from '../helpers/cli';
import { connectClient, makeTestEnv, startHost, type TestEnv, duckDbSource, storageOf } from '../helpers/env';
import { FaultPlan, reportActivities, smallPartitions } from '../report/helpers';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let source: DuckDbSource;
let server: http.Server;
let base: string;
const plan = new FaultPlan();
/** Wall time each aggregatePartition finished, by pipeline. */
const finishedAt = new Map<string, number[]>();

interface SseEvent {
  id?: string;
  event: string;
  data: Record<string, unknown>;
  at: number;
}

/** Reads an SSE stream until it ends or `stopAfter` events; returns the events with their arrival times. */
async function readEvents(
  workflowId: string,
  opts: { lastEventId?: string; stopAfter?: number } = {},
): Promise<{ status: number; events: SseEvent[] }> {
  const ac = new AbortController();
  const res = await fetch(`${base}/v1/pipelines/${encodeURIComponent(workflowId)}/events`, {
    headers: opts.lastEventId !== undefined ? { 'last-event-id': opts.lastEventId } : {},
    signal: ac.signal,
  });
  const events: SseEvent[] = [];
  if (res.status !== 200 || !res.body) return { status: res.status, events };
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk as Uint8Array, { stream: true });
      let sep: number;
      while ((sep = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, sep);
        buf = buf.slice(sep + 2);
        const fields: Record<string, string> = {};
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const i = line.indexOf(':');
          fields[line.slice(0, i)] = line.slice(i + 1).trimStart();
        }
        if (!fields.event) continue;
        events.push({
          ...(fields.id !== undefined ? { id: fields.id } : {}),
          event: fields.event,
          data: JSON.parse(fields.data ?? '{}') as Record<string, unknown>,
          at: Date.now(),
        });
        if (opts.stopAfter !== undefined && events.length >= opts.stopAfter) {
          ac.abort();
          return { status: res.status, events };
        }
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  }
  return { status: res.status, events };
}

async function startReport(key: string): Promise<string> {
  const { workflowId } = await client.startReportPipeline({
    from: '2024-01',
    to: '2024-06',
    measures: ['orders'],
    groupBy: ['region'],
    tenant: 'events',
    window: 2,
    idempotencyKey: key,
  });
  return workflowId;
}

beforeAll(async () => {
  t = makeTestEnv('events');
  await smallPartitions(t.config.reports.partitionsDir, '2024-01', 6, 200);
  source = duckDbSource(t);
  const acts = reportActivities(source, storageOf(t), plan);
  const aggregate = acts.aggregatePartition;
  host = await startHost(t, ['default'], {
    ...acts,
    aggregatePartition: async (input: Parameters<typeof aggregate>[0]) => {
      // Spread the sub-jobs out so events arrive one by one, not all at once.
      await new Promise((r) => setTimeout(r, 400));
      const out = await aggregate(input);
      const workflowId = activityInfo().workflowExecution?.workflowId ?? '?';
      const list = finishedAt.get(workflowId) ?? [];
      list.push(Date.now());
      finishedAt.set(workflowId, list);
      return out;
    },
  });
  client = await connectClient(t);
  server = createApiServer({ client, bodyLimitBytes: t.config.api.bodyLimitBytes });
  base = `http://127.0.0.1:${await listen(server, 0)}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await client?.close();
  await host?.shutdown();
  await source?.close();
});

describe('GET /v1/pipelines/:id/events', () => {
  it('streams every event in order, ends with the final status, and sub-job events arrive promptly', async () => {
    const id = await startReport('sse-order');
    const { status, events } = await readEvents(id);
    expect(status).toBe(200);
    const last = events[events.length - 1];
    expect(last).toMatchObject({ event: 'end', data: { status: 'COMPLETED' } });
    const progress = events.slice(0, -1);
    expect(progress.map((e) => Number(e.id))).toEqual(progress.map((_, i) => i + 1));
    expect(progress.every((e) => e.event === 'stage' || e.event === 'progress')).toBe(true);
    expect(progress[0]?.data).toMatchObject({ id: 1, type: 'stage', stage: 'planning' });
    const stages = progress.filter((e) => e.event === 'stage').map((e) => e.data.stage);
    expect(new Set(stages).size).toBeGreaterThanOrEqual(3);
    const final = progress[progress.length - 1]?.data as unknown as ProgressEvent;
    expect(final.done).toBe(final.total);
    expect(final.total).toBeGreaterThanOrEqual(6);

    // Delay from each aggregatePartition finishing to the event counting it reaching the client.
    const finished = [...(finishedAt.get(id) ?? [])].sort((a, b) => a - b);
    expect(finished).toHaveLength(6);
    const arrivals: number[] = [];
    let done = 0;
    for (const e of progress) {
      const d = Number(e.data.done);
      while (done < d && arrivals.length < finished.length) {
        arrivals.push(e.at);
        done++;
      }
    }
    const delays = finished.map((f, i) => (arrivals[i] ?? Infinity) - f).sort((a, b) => a - b);
    const p95 = delays[Math.min(delays.length - 1, Math.ceil(delays.length * 0.95) - 1)]!;
    process.stderr.write(
      `[figure] SSE delay sub-job completed → event at client: p95 ${p95} ms, max ${delays[delays.length - 1]} ms (n=${delays.length})\n`,
    );
    expect(delays.every((d) => d >= 0 && Number.isFinite(d))).toBe(true);
  });

  it('a reconnect with Last-Event-ID resumes after it, without gaps or repeats', async () => {
    const id = await startReport('sse-resume');
    const first = await readEvents(id, { stopAfter: 3 });
    expect(first.events.map((e) => e.id)).toEqual(['1', '2', '3']);
    const rest = await readEvents(id, { lastEventId: '3' });
    expect(rest.events[rest.events.length - 1]).toMatchObject({ event: 'end', data: { status: 'COMPLETED' } });
    const ids = [...first.events, ...rest.events.slice(0, -1)].map((e) => Number(e.id));
    expect(ids).toEqual(ids.map((_, i) => i + 1));

    // The same run, closed, replays from any point; `sluice status --follow` prints it and exits 0.
    const again = await readEvents(id, { lastEventId: String(ids.length - 2) });
    expect(again.events.map((e) => e.id)).toEqual([String(ids.length - 1), String(ids.length), undefined]);
    const follow = await runSluice(t, ['status', id, '--follow', '--json']);
    expect(follow.code, follow.stderr).toBe(0);
    expect(oneJson(follow)).toMatchObject({ workflowId: id, status: 'COMPLETED', events: ids.length });
    expect(follow.stderr).toMatch(/^\s+1\s+stage\s+stage=planning/m);
  });

  it('a bad Last-Event-ID is 400 naming it; an unknown pipeline is 404', async () => {
    const id = await startReport('sse-bad');
    const res = await fetch(`${base}/v1/pipelines/${encodeURIComponent(id)}/events`, {
      headers: { 'last-event-id': '-4' },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ issues: [{ path: 'Last-Event-ID' }] });
    const missing = await fetch(`${base}/v1/pipelines/report%3Anobody%3Anothing/events`);
    expect(missing.status).toBe(404);
    await client.getResult(id);
  });

  it('a run that records no progress events gets an error event naming it, then the stream ends', async () => {
    const { workflowId } = await client.startJobsPipeline({
      tenant: 'events',
      tier: 'default',
      idempotencyKey: 'sse-no-events',
      jobs: [{ activity: 'noSuchActivity', input: {} }],
    });
    try {
      const { status, events } = await readEvents(workflowId);
      expect(status).toBe(200);
      expect(events).toEqual([
        expect.objectContaining({ event: 'error', data: { error: `${workflowId} does not record progress events` } }),
      ]);
    } finally {
      await client.cancel(workflowId);
    }
  });
});
