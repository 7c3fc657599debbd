/**
 * `GET /v1/pipelines/:id/events`: the pipeline's progress as Server-Sent Events. Each event has
 * `id:` (its number in the run), `event: stage|progress` and the JSON progress; the stream ends
 * with `event: end` (the final status) once the run closes. A client reconnecting with
 * `Last-Event-ID: n` (or `?after=n`) gets the events after n, without gaps or repeats.
 */
import type http from 'node:http';
import { WorkflowNotFoundError } from '@temporalio/client';
import { InvalidInputError, type SluiceClient } from '../client';
import { NoProgressEventsError, followProgress } from '../client/follow';

/** Keep-alive comment interval, under common proxy idle timeouts. */
const PING_MS = 15_000;

/** Streams the events of `workflowId`; answers 400 / 404 before the stream starts. */
export async function streamPipelineEvents(
  client: SluiceClient,
  workflowId: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const raw = req.headers['last-event-id'] ?? url.searchParams.get('after') ?? '0';
  const field = req.headers['last-event-id'] !== undefined ? 'Last-Event-ID' : 'after';
  const after = Number(raw);
  if (typeof raw !== 'string' || !/^\d{1,9}$/.test(raw.trim()) || !Number.isSafeInteger(after))
    throw new InvalidInputError([{ path: field, message: `must be a whole number ≥ 0, got ${JSON.stringify(raw)}` }]);
  try {
    await client.temporal.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'no such pipeline', workflowId }));
      return;
    }
    throw err;
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
  const stop = new AbortController();
  req.on('close', () => stop.abort());
  const ping = setInterval(() => res.write(': ping\n\n'), PING_MS);
  try {
    const end = await followProgress(client, workflowId, {
      after,
      signal: stop.signal,
      onEvent: (e) => res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`),
    });
    if (!stop.signal.aborted) res.write(`event: end\ndata: ${JSON.stringify(end)}\n\n`);
  } catch (err) {
    // Headers are out: the failure can only travel as an event (the client may reconnect and resume).
    const message =
      err instanceof NoProgressEventsError ? err.message : `event stream failed: ${(err as Error).message}`;
    if (!stop.signal.aborted) res.write(`event: error\ndata: ${JSON.stringify({ error: message })}\n\n`);
  } finally {
    clearInterval(ping);
    res.end();
  }
}
