/**
 * The HTTP API apps use to start and inspect pipelines (`sluice api`), on node:http:
 *
 *   POST   /v1/videos          JSON body + `Idempotency-Key` header → 202 {workflowId, runId}
 *   POST   /v1/reports         JSON body + `Idempotency-Key` header → 202 {workflowId, runId}
 *   GET    /v1/pipelines/:id   → 200 status, stage and progress
 *   DELETE /v1/pipelines/:id   → 202 cancellation requested
 *
 * The same key (per tenant) always names the same workflow. Invalid input gets 400 with the
 * issues, each naming its field; a body over the limit gets 413; nothing starts in either case.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WorkflowNotFoundError } from '@temporalio/client';
import {
  InvalidInputError,
  REPORT_OPTION_KEYS,
  VIDEO_OPTION_KEYS,
  type SluiceClient,
  type StartReportOptions,
  type StartVideoOptions,
} from '../client';
import type { Logger } from '../logger';
import { streamPipelineEvents } from './events';
import { IDEMPOTENCY_KEY_PATTERN } from '../shared/constants';
import type { InputIssue } from '../shared/video';

/** Fields each POST body may carry (the idempotency key comes from the header). */
const bodyFields = (keys: readonly string[]) => keys.filter((k) => k !== 'idempotencyKey');
const VIDEO_FIELDS = bodyFields(VIDEO_OPTION_KEYS);
const REPORT_FIELDS = bodyFields(REPORT_OPTION_KEYS);

export interface ApiServerOptions {
  client: SluiceClient;
  /** Largest accepted body in bytes; larger gets 413. */
  bodyLimitBytes: number;
  log?: Logger;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.error));
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const invalid = (issues: InputIssue[]) => new HttpError(400, { error: 'invalid input', issues });

/** Reads the body, refusing more than `limit` bytes (by Content-Length, or while streaming). */
async function readJson(req: http.IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit)
    throw new HttpError(413, { error: 'payload too large', limitBytes: limit });
  const type = req.headers['content-type'];
  if (type && !/^application\/json\b/i.test(type))
    throw new HttpError(415, { error: 'unsupported media type', expected: 'application/json' });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, { error: 'payload too large', limitBytes: limit });
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch (err) {
    throw invalid([{ path: '(body)', message: `not valid JSON: ${(err as Error).message}` }]);
  }
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw invalid([{ path: '(body)', message: 'must be a JSON object' }]);
  return body as Record<string, unknown>;
}

function idempotencyKey(req: http.IncomingMessage): string {
  const key = req.headers['idempotency-key'];
  if (typeof key !== 'string' || key === '')
    throw invalid([{ path: 'Idempotency-Key', message: 'header is required' }]);
  if (!IDEMPOTENCY_KEY_PATTERN.test(key))
    throw invalid([{ path: 'Idempotency-Key', message: 'must be 1-128 characters of A-Z, a-z, 0-9, ., _ or -' }]);
  return key;
}

function onlyFields(body: Record<string, unknown>, allowed: string[]): void {
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length > 0)
    throw invalid(unknown.map((k) => ({ path: k, message: `unknown field; expected some of ${allowed.join(', ')}` })));
}

/** Creates (does not start) the API server. */
export function createApiServer(opts: ApiServerOptions): http.Server {
  const { client } = opts;

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    const start = async (kind: 'videos' | 'reports') => {
      const key = idempotencyKey(req);
      const body = await readJson(req, opts.bodyLimitBytes);
      onlyFields(body, kind === 'videos' ? VIDEO_FIELDS : REPORT_FIELDS);
      const started =
        kind === 'videos'
          ? await client.startVideoPipeline({ ...(body as unknown as StartVideoOptions), idempotencyKey: key })
          : await client.startReportPipeline({ ...(body as unknown as StartReportOptions), idempotencyKey: key });
      send(
        res,
        202,
        { workflowId: started.workflowId, runId: started.runId, status: 'ACCEPTED' },
        { location: `/v1/pipelines/${encodeURIComponent(started.workflowId)}` },
      );
    };
    if (url.pathname === '/v1/videos' || url.pathname === '/v1/reports') {
      if (method !== 'POST') throw new HttpError(405, { error: 'method not allowed', allowed: ['POST'] });
      return start(url.pathname === '/v1/videos' ? 'videos' : 'reports');
    }
    const events = /^\/v1\/pipelines\/([^/]+)\/events$/.exec(url.pathname);
    if (events && method === 'GET')
      return streamPipelineEvents(client, decodeURIComponent(events[1] as string), req, res);
    const m = /^\/v1\/pipelines\/([^/]+)$/.exec(url.pathname);
    if (m) {
      const id = decodeURIComponent(m[1] as string);
      try {
        if (method === 'GET') return send(res, 200, await client.getStatus(id));
        if (method === 'DELETE') {
          await client.cancel(id);
          return send(res, 202, { workflowId: id, cancelRequested: true });
        }
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          throw new HttpError(404, { error: 'no such pipeline', workflowId: id });
        throw err;
      }
      throw new HttpError(405, { error: 'method not allowed', allowed: ['GET', 'DELETE'] });
    }
    throw new HttpError(404, { error: 'not found' });
  }

  return http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) send(res, err.status, err.body, err.status === 413 ? { connection: 'close' } : {});
      else if (err instanceof InvalidInputError) send(res, 400, { error: 'invalid input', issues: err.issues });
      else {
        opts.log?.error({ err, url: req.url }, 'api request failed');
        send(res, 500, { error: 'internal error' });
      }
      // Unread body bytes (413, early 400): drop them instead of reading on.
      if (!req.complete) req.resume();
    });
  });
}

/** Listens on `port` (0 = any free port) on `host`; resolves with the bound port. */
export async function listen(server: http.Server, port: number, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}
