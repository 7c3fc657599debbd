/**
 * The HTTP API apps use to start and inspect pipelines (`sluice api`), on node:http:
 *
 *   POST   /v1/videos          JSON body + `Idempotency-Key` header → 202 {workflowId, runId}
 *   POST   /v1/reports         JSON body + `Idempotency-Key` header → 202 {workflowId, runId}
 *          (either with `?rejectWhenFull=true`: 429 with Retry-After when the tenant is at its
 *          `maxRunning` cap, instead of a run that waits in order with Stage="queued")
 *   GET    /v1/pipelines/:id   → 200 status, stage and progress
 *   DELETE /v1/pipelines/:id   → 202 cancellation requested; 409 when the run has already closed
 *
 * The same key (per tenant) always names the same workflow. Invalid input gets 400 with the
 * issues, each naming its field; a body over the limit gets 413; nothing starts in either case.
 *
 * Who may call (docs/security.md): with API keys configured every request needs
 * `Authorization: Bearer <key>` (else 401); a key bound to a tenant starts, reads and cancels only
 * that tenant's pipelines, and any other workflow ID — another tenant's, or not a Sluice pipeline
 * at all — is answered 404, as if it did not exist. Without keys the server answers loopback
 * peers only (`sluice api` refuses another `--host` unless `--insecure-no-auth`).
 *
 * Idempotency follows Stripe: the same key with a different body gets 422; a key whose run was
 * cancelled or failed gets 409 with that status (send the request again with a new key).
 */
import crypto from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { WorkflowNotFoundError } from '@temporalio/client';
import {
  InvalidInputError,
  PipelineClosedError,
  TenantAtCapacityError,
  REPORT_OPTION_KEYS,
  VIDEO_OPTION_KEYS,
  type SluiceClient,
  type StartReportOptions,
  type StartVideoOptions,
} from '../client';
import type { Logger } from '../logger';
import type { ApiKeyring, ApiPrincipal } from '../security/api-keys';
import { IDEMPOTENCY_KEY_PATTERN, PIPELINE_WORKFLOW_TYPE, parsePipelineWorkflowId } from '../shared/constants';
import { streamPipelineEvents } from './events';
import { SpanKind, SpanStatusCode, extractTraceContext, withSpan } from '../tracing';
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
  /** API keys; none (or empty): no authentication, and only loopback peers are answered. */
  keys?: ApiKeyring;
  /** Without keys, answer peers that are not loopback too (`--insecure-no-auth`). @default false */
  insecureNoAuth?: boolean;
}

/** Run statuses a key cannot be used again for: 409 with the status. */
const SPENT_STATUSES = new Set(['FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT']);

/** True for 127.0.0.0/8, ::1, ::ffff:127.x and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (h.startsWith('::ffff:') && net.isIPv4(h.slice(7))) return h.slice(7).startsWith('127.');
  return net.isIPv6(h) && /^(0{0,4}:){2,7}0{0,3}1$|^::1$/.test(h);
}

/**
 * The bind rule of `sluice api`: without API keys only a loopback interface, unless the operator
 * says `--insecure-no-auth`. Returns the problem, or undefined.
 */
export function bindProblem(host: string, keys: ApiKeyring | undefined, insecureNoAuth: boolean): string | undefined {
  if ((keys?.size ?? 0) > 0 || insecureNoAuth || isLoopbackHost(host)) return undefined;
  return `${host} is not a loopback interface and no API keys are configured (SLUICE_API_KEYS or SLUICE_API_KEYS_FILE); pass --insecure-no-auth to serve it without authentication anyway`;
}

/** Canonical JSON (object keys sorted), so the same request in another key order has the same fingerprint. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value) ?? 'null';
}

/** The request fingerprint stored with the run: route and canonical body. */
export function requestFingerprint(kind: string, body: Record<string, unknown>): string {
  return crypto
    .createHash('sha256')
    .update(`${kind}\n${canonical(body)}`)
    .digest('hex');
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

/** `application/json`, with no parameter but an optional `charset=utf-8`. */
function isJsonUtf8(header: string | undefined): boolean {
  if (!header) return false;
  const [type, ...params] = header.split(';').map((p) => p.trim().toLowerCase());
  if (type !== 'application/json') return false;
  return params.every((p) => /^charset="?utf-?8"?$/.test(p));
}

/** Reads the body, refusing more than `limit` bytes (by Content-Length, or while streaming). */
async function readJson(req: http.IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit)
    throw new HttpError(413, { error: 'payload too large', limitBytes: limit });
  if (!isJsonUtf8(req.headers['content-type']))
    throw new HttpError(415, { error: 'unsupported media type', expected: 'application/json; charset=utf-8' });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, { error: 'payload too large', limitBytes: limit });
    chunks.push(chunk as Buffer);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw invalid([{ path: '(body)', message: 'not valid UTF-8' }]);
  }
  let body: unknown;
  try {
    body = JSON.parse(text || 'null');
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

/** A boolean query parameter: absent, `true`/`1` or `false`/`0`; anything else is 400 naming it. */
function flag(url: URL, name: string): boolean {
  const value = url.searchParams.get(name);
  if (value === null || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1' || value === '') return true;
  throw invalid([{ path: name, message: `must be true or false, got ${JSON.stringify(value)}` }]);
}

function onlyFields(body: Record<string, unknown>, allowed: string[]): void {
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length > 0)
    throw invalid(unknown.map((k) => ({ path: k, message: `unknown field; expected some of ${allowed.join(', ')}` })));
}

/** Creates (does not start) the API server. */
export function createApiServer(opts: ApiServerOptions): http.Server {
  const { client } = opts;
  const keys = opts.keys && opts.keys.size > 0 ? opts.keys : undefined;

  /** Who is calling: the key's tenant, or an anonymous admin on a server without keys. */
  function principalOf(req: http.IncomingMessage): ApiPrincipal {
    if (!keys) {
      if (!opts.insecureNoAuth && !isLoopbackHost(req.socket.remoteAddress ?? ''))
        throw new HttpError(403, { error: 'forbidden', message: 'no API keys are configured: loopback only' });
      return { tenant: '*', keyId: 'anonymous' };
    }
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
    const principal = m ? keys.authenticate(m[1] as string) : undefined;
    if (!principal) throw new HttpError(401, { error: 'unauthorized', message: 'a valid API key is required' });
    return principal;
  }

  /**
   * The pipeline `id` names, if `who` may see it: a Sluice pipeline ID of the caller's tenant
   * whose run is of the pipeline's workflow type and was started with that kind and tenant.
   * Anything else is 404 — never 403, which would tell that another tenant's ID exists.
   */
  async function ownedPipeline(who: ApiPrincipal, id: string) {
    const notFound = new HttpError(404, { error: 'no such pipeline', workflowId: id });
    const parsed = parsePipelineWorkflowId(id);
    if (!parsed || (who.tenant !== '*' && parsed.tenant !== who.tenant)) throw notFound;
    const d = await client.describePipeline(id);
    if (
      !d ||
      d.workflowType !== PIPELINE_WORKFLOW_TYPE[parsed.kind] ||
      d.kind !== parsed.kind ||
      d.tenant !== parsed.tenant
    )
      throw notFound;
    return d;
  }

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      throw new HttpError(400, { error: 'malformed path' });
    }
    const method = req.method ?? 'GET';
    const who = principalOf(req);
    const start = async (kind: 'videos' | 'reports') => {
      const key = idempotencyKey(req);
      const rejectWhenFull = flag(url, 'rejectWhenFull');
      const body = await readJson(req, opts.bodyLimitBytes);
      onlyFields(body, kind === 'videos' ? VIDEO_FIELDS : REPORT_FIELDS);
      if (who.tenant !== '*') {
        // A tenant's key starts its own tenant's pipelines; saying so is the default.
        if (body.tenant === undefined) body.tenant = who.tenant;
        else if (body.tenant !== who.tenant)
          throw new HttpError(403, {
            error: 'forbidden',
            issues: [{ path: 'tenant', message: 'this API key may only start pipelines of its own tenant' }],
          });
      }
      const requestHash = requestFingerprint(kind, body);
      const started =
        kind === 'videos'
          ? await client.startVideoPipeline(
              { ...(body as unknown as StartVideoOptions), idempotencyKey: key },
              { requestHash, rejectWhenFull },
            )
          : await client.startReportPipeline(
              { ...(body as unknown as StartReportOptions), idempotencyKey: key },
              { requestHash, rejectWhenFull },
            );
      // Stripe's rules: a key names one request; a spent key says how its run ended.
      const run = await client.describePipeline(started.workflowId);
      if (run?.requestHash !== undefined && run.requestHash !== requestHash)
        throw new HttpError(422, {
          error: 'Idempotency-Key was already used with a different request',
          workflowId: started.workflowId,
        });
      if (run && SPENT_STATUSES.has(run.status))
        throw new HttpError(409, {
          error: `Idempotency-Key was already used by a run that ended ${run.status}`,
          workflowId: started.workflowId,
          status: run.status,
          retry: 'send the request again with a new Idempotency-Key',
        });
      send(
        res,
        202,
        { workflowId: started.workflowId, runId: run?.runId ?? started.runId, status: 'ACCEPTED' },
        { location: `/v1/pipelines/${encodeURIComponent(started.workflowId)}` },
      );
    };
    if (url.pathname === '/v1/videos' || url.pathname === '/v1/reports') {
      if (method !== 'POST') throw new HttpError(405, { error: 'method not allowed', allowed: ['POST'] });
      return start(url.pathname === '/v1/videos' ? 'videos' : 'reports');
    }
    const events = /^\/v1\/pipelines\/([^/]+)\/events$/.exec(url.pathname);
    if (events && method === 'GET') {
      let id: string;
      try {
        id = decodeURIComponent(events[1] as string);
      } catch {
        throw new HttpError(400, { error: 'malformed path', message: 'invalid percent-encoding in the pipeline ID' });
      }
      // The same tenant rules as reading a pipeline: another tenant's run is 404.
      await ownedPipeline(who, id);
      return streamPipelineEvents(client, id, req, res);
    }
    const m = /^\/v1\/pipelines\/([^/]+)$/.exec(url.pathname);
    if (m) {
      let id: string;
      try {
        id = decodeURIComponent(m[1] as string);
      } catch {
        throw new HttpError(400, { error: 'malformed path', message: 'invalid percent-encoding in the pipeline ID' });
      }
      if (method !== 'GET' && method !== 'DELETE')
        throw new HttpError(405, { error: 'method not allowed', allowed: ['GET', 'DELETE'] });
      await ownedPipeline(who, id);
      try {
        if (method === 'GET') return send(res, 200, await client.getStatus(id));
        await client.cancel(id);
        return send(res, 202, { workflowId: id, cancelRequested: true });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          throw new HttpError(404, { error: 'no such pipeline', workflowId: id });
        if (err instanceof PipelineClosedError)
          throw new HttpError(409, { error: err.message, workflowId: id, status: err.status });
        throw err;
      }
    }
    throw new HttpError(404, { error: 'not found' });
  }

  /** The request's handling and its error answers, without the span. */
  const answer = (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> =>
    route(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) {
        const extra: http.OutgoingHttpHeaders = err.status === 413 ? { connection: 'close' } : {};
        if (err.status === 401) extra['www-authenticate'] = 'Bearer realm="sluice"';
        send(res, err.status, err.body, extra);
      } else if (err instanceof InvalidInputError) send(res, 400, { error: 'invalid input', issues: err.issues });
      else if (err instanceof TenantAtCapacityError)
        send(
          res,
          429,
          {
            error: 'tenant at capacity',
            message: err.message,
            tenant: err.tenant,
            maxRunning: err.maxRunning,
            running: err.running,
            queued: err.queued,
            retryAfterSeconds: err.retryAfterSeconds,
          },
          { 'retry-after': String(err.retryAfterSeconds) },
        );
      else {
        opts.log?.error({ err, url: req.url }, 'api request failed');
        send(res, 500, { error: 'internal error' });
      }
      // Unread body bytes (413, early 400): drop them instead of reading on.
      if (!req.complete) req.resume();
    });

  return http.createServer((req, res) => {
    // One server span per request, a child of the caller's W3C `traceparent` when it sends one;
    // the client's start runs inside it, so the pipeline's trace hangs under the request.
    const method = req.method ?? 'GET';
    const template = routeTemplate(req.url ?? '/');
    void withSpan(
      `${method} ${template}`,
      { 'http.request.method': method, 'http.route': template, 'url.path': (req.url ?? '/').split('?')[0] },
      async (span) => {
        await answer(req, res);
        span?.setAttribute('http.response.status_code', res.statusCode);
        if (res.statusCode >= 500) span?.setStatus({ code: SpanStatusCode.ERROR });
      },
      SpanKind.SERVER,
      extractTraceContext(req.headers),
    );
  });
}

/** The route of a request path, as span names use it (`/v1/pipelines/:id`, never the ID itself). */
export function routeTemplate(url: string): string {
  const pathname = url.split('?')[0] ?? '/';
  if (pathname === '/v1/videos' || pathname === '/v1/reports') return pathname;
  if (/^\/v1\/pipelines\/[^/]+\/events$/.test(pathname)) return '/v1/pipelines/:id/events';
  if (/^\/v1\/pipelines\/[^/]+$/.test(pathname)) return '/v1/pipelines/:id';
  return '(other)';
}

/** Listens on `port` (0 = any free port) on `host`; resolves with the bound port. */
export async function listen(server: http.Server, port: number, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}
