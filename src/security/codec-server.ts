/**
 * Codec server: lets the Temporal UI (and `temporal --codec-endpoint`) show encrypted payloads.
 * Answers `POST …/encode` and `POST …/decode` with Payloads as protobuf JSON
 * (`{"payloads":[{"metadata":{"encoding":"<base64>"},"data":"<base64>"}]}`), only the last path
 * segment counts. Every POST needs `Authorization: Bearer <SLUICE_CODEC_TOKEN>`; browsers may
 * call it only from the origins in the CORS allow-list (preflight `OPTIONS` answered for them
 * alone). The token and the key material are never logged.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { Logger } from '../logger';
import { codecFor, type CodecSettings } from './codec';
import type { Secret } from './secret';

/** Options of {@link startCodecServer}. */
export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Bearer token every POST must carry. Undefined: only {@link pathSecret} requests are served. */
  token: Secret | undefined;
  /**
   * A random per-run path prefix that authorizes on its own (`/<secret>/decode`). For the dev
   * server's UI, which cannot send a bearer token; never a configured secret.
   */
  pathSecret?: string;
  /** Origins allowed by CORS (exact match). */
  corsOrigins: readonly string[];
  /** @default '127.0.0.1' */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** Largest request body in bytes. @default 16 MiB */
  bodyLimitBytes?: number;
  log?: Logger;
}

/** A running codec server. */
export interface CodecServerHandle {
  /** `http://host:port` (plus the path secret when one is set). */
  url: string;
  port: number;
  close(): Promise<void>;
}

interface PayloadJson {
  metadata?: Record<string, string>;
  data?: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const digest = (text: string) => crypto.createHash('sha256').update(text, 'utf8').digest();

/** Constant-time comparison of two strings (through their hashes, so lengths do not leak). */
function sameSecret(given: string, expected: string): boolean {
  return crypto.timingSafeEqual(digest(given), digest(expected));
}

function toPayload(json: unknown, index: number): Payload {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new HttpError(400, `payloads[${index}]: must be an object`);
  }
  const { metadata, data } = json as { metadata?: unknown; data?: unknown };
  const b64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
  const out: Payload = { metadata: {} };
  if (metadata !== undefined && metadata !== null) {
    if (typeof metadata !== 'object' || Array.isArray(metadata)) {
      throw new HttpError(400, `payloads[${index}].metadata: must be an object of base64 strings`);
    }
    for (const [key, value] of Object.entries(metadata as Record<string, unknown>)) {
      if (typeof value !== 'string' || !b64.test(value)) {
        throw new HttpError(400, `payloads[${index}].metadata.${key}: must be base64`);
      }
      out.metadata![key] = new Uint8Array(Buffer.from(value, 'base64'));
    }
  }
  if (data !== undefined && data !== null) {
    if (typeof data !== 'string' || !b64.test(data))
      throw new HttpError(400, `payloads[${index}].data: must be base64`);
    out.data = new Uint8Array(Buffer.from(data, 'base64'));
  }
  return out;
}

function fromPayload(p: Payload): PayloadJson {
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(p.metadata ?? {})) {
    if (value) metadata[key] = Buffer.from(value).toString('base64');
  }
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}

function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, `request body over ${limit} bytes`));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Starts the codec server; resolves once it listens. */
export async function startCodecServer(opts: CodecServerOptions): Promise<CodecServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const limit = opts.bodyLimitBytes ?? 16 * 1024 * 1024;
  const origins = new Set(opts.corsOrigins);

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const origin = req.headers.origin;
    const corsAllowed = typeof origin === 'string' && origins.has(origin);
    const headers: Record<string, string> = { vary: 'Origin' };
    if (corsAllowed) {
      headers['access-control-allow-origin'] = origin;
      headers['access-control-allow-credentials'] = 'true';
    }
    const send = (status: number, body?: unknown, extra: Record<string, string> = {}) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, {
        ...headers,
        ...extra,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      });
      res.end(text);
    };
    const segments = (req.url ?? '/').split('?')[0]!.split('/').filter(Boolean);
    const action = segments[segments.length - 1];
    if (req.method === 'OPTIONS') {
      // Preflight: answered with CORS headers for allowed origins only; the browser blocks the rest.
      if (!corsAllowed) return send(403, { error: 'origin not allowed' });
      return send(204, undefined, {
        'access-control-allow-methods': 'POST, OPTIONS',
        'access-control-allow-headers': 'Authorization, Content-Type, X-Namespace',
        'access-control-max-age': '600',
      });
    }
    if (action !== 'encode' && action !== 'decode') return send(404, { error: 'not found: POST …/encode or …/decode' });
    if (req.method !== 'POST') return send(405, { error: 'use POST' }, { allow: 'POST, OPTIONS' });
    const auth = req.headers.authorization ?? '';
    const bearer = /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
    const byToken = bearer !== undefined && opts.token !== undefined && sameSecret(bearer, opts.token.reveal());
    const byPath =
      opts.pathSecret !== undefined &&
      segments.length === 2 &&
      segments[0] !== undefined &&
      sameSecret(segments[0], opts.pathSecret);
    if (!byToken && !byPath) {
      return send(401, { error: 'a valid bearer token is required' }, { 'www-authenticate': 'Bearer' });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readBody(req, limit));
    } catch (err) {
      if (err instanceof HttpError) return send(err.status, { error: err.message });
      return send(400, { error: 'body is not JSON' });
    }
    const list = (parsed as { payloads?: unknown } | null)?.payloads;
    if (!Array.isArray(list)) return send(400, { error: 'payloads: must be an array' });
    let payloads: Payload[];
    try {
      payloads = list.map(toPayload);
    } catch (err) {
      return send(400, { error: (err as Error).message });
    }
    try {
      const out = action === 'encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
      return send(200, { payloads: out.map(fromPayload) });
    } catch (err) {
      opts.log?.warn({ action, err: (err as Error).message }, 'codec server: codec error');
      return send(400, { error: (err as Error).message });
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      opts.log?.error({ err: (err as Error).message }, 'codec server: request failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url: opts.pathSecret ? `${base}/${opts.pathSecret}` : base,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The codec server's own settings (`config.codec`): keys, token, CORS origins, port. */
export type LocalCodecServerSettings = CodecSettings & Pick<CodecServerOptions, 'token' | 'corsOrigins' | 'port'>;

/**
 * The codec server `sluice up` runs next to its dev server when encryption is on: on 127.0.0.1
 * (SLUICE_CODEC_PORT), CORS for the dev UI's origin plus SLUICE_CODEC_CORS_ORIGINS, and a random
 * per-run path secret in the endpoint handed to the UI (which cannot send a bearer token).
 * `uiPort` is the dev UI's port (SLUICE_DEV_UI_PORT). Returns the `start-dev` flags to pass;
 * undefined when encryption is off.
 */
export async function startLocalCodecServer(
  settings: LocalCodecServerSettings,
  uiPort: number,
  log?: Logger,
): Promise<{ server: CodecServerHandle; devServerArgs: string[] } | undefined> {
  const codec = codecFor(settings);
  if (!codec) return undefined;
  const server = await startCodecServer({
    codec,
    token: settings.token,
    pathSecret: crypto.randomBytes(24).toString('base64url'),
    corsOrigins: [...settings.corsOrigins, `http://127.0.0.1:${uiPort}`, `http://localhost:${uiPort}`],
    host: '127.0.0.1',
    port: settings.port,
    log,
  });
  return { server, devServerArgs: ['--ui-codec-endpoint', server.url] };
}
