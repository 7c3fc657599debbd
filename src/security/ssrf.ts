/**
 * SSRF guard of outgoing webhooks. A webhook URL comes from a caller, so a worker inside a
 * private network must not become a proxy into it: only http(s), and every address the host
 * resolves to (checked after DNS resolution) must be public — no loopback, link-local, cloud
 * metadata, private, CGNAT, unspecified, multicast or reserved ranges, IPv4-mapped IPv6 included —
 * unless the host name, the address or a CIDR around it is allow-listed (SLUICE_WEBHOOK_ALLOW).
 *
 * The request then goes to the very address that was checked ({@link fetchPinned}): the host
 * name is not resolved a second time, so a DNS answer that changes between check and connect
 * (DNS rebinding) cannot redirect it. TLS still verifies the certificate against the host name.
 * Redirects are not followed (a 3xx is the answer).
 */
import dns from 'node:dns';
import net from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { Agent, request, type Dispatcher } from 'undici';
import { FailureType } from '../shared/constants';

/** A parsed IP address: family and value as a 32- or 128-bit integer. */
interface Ip {
  family: 4 | 6;
  value: bigint;
}

interface Cidr extends Ip {
  prefix: number;
}

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    value = (value << 8n) | BigInt(Number(p));
  }
  return value;
}

function parseIpv6(text: string): bigint | undefined {
  let s = text;
  // A trailing dotted IPv4 part (`::ffff:1.2.3.4`) becomes two hex groups.
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    const v4 = parseIpv4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...(Array(halves.length === 2 ? missing : 0).fill('0') as string[]), ...tail];
  let value = 0n;
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  return value;
}

/** Parses an IPv4 or IPv6 address (brackets and a zone index are accepted); undefined otherwise. */
export function parseIp(text: string): Ip | undefined {
  const bare = text.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const family = net.isIP(bare);
  if (family === 4) {
    const value = parseIpv4(bare);
    return value === undefined ? undefined : { family: 4, value };
  }
  if (family === 6) {
    const value = parseIpv6(bare.toLowerCase());
    return value === undefined ? undefined : { family: 6, value };
  }
  return undefined;
}

function parseCidr(text: string): Cidr | undefined {
  const [addr, prefixText] = text.split('/');
  const ip = addr === undefined ? undefined : parseIp(addr);
  if (!ip) return undefined;
  const bits = ip.family === 4 ? 32 : 128;
  if (prefixText === undefined) return { ...ip, prefix: bits };
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return undefined;
  return { ...ip, prefix: Number(prefixText) };
}

function inCidr(ip: Ip, cidr: Cidr): boolean {
  if (ip.family !== cidr.family) return false;
  const shift = BigInt((ip.family === 4 ? 32 : 128) - cidr.prefix);
  return ip.value >> shift === cidr.value >> shift;
}

const range = (text: string, reason: string) => ({ cidr: parseCidr(text) as Cidr, reason });

/** Refused IPv4 ranges, most specific first. */
const V4_BLOCKED = [
  range('169.254.169.254/32', 'cloud metadata'),
  range('0.0.0.0/8', 'unspecified ("this network")'),
  range('10.0.0.0/8', 'private'),
  range('100.64.0.0/10', 'carrier-grade NAT (shared)'),
  range('127.0.0.0/8', 'loopback'),
  range('169.254.0.0/16', 'link-local'),
  range('172.16.0.0/12', 'private'),
  range('192.0.0.0/24', 'IETF protocol assignment'),
  range('192.0.2.0/24', 'documentation'),
  range('192.168.0.0/16', 'private'),
  range('198.18.0.0/15', 'benchmarking'),
  range('198.51.100.0/24', 'documentation'),
  range('203.0.113.0/24', 'documentation'),
  range('224.0.0.0/4', 'multicast'),
  range('240.0.0.0/4', 'reserved (or broadcast)'),
];

/** Refused IPv6 ranges, most specific first (NAT64 and 6to4 are checked by their IPv4 part). */
const V6_BLOCKED = [
  range('fd00:ec2::254/128', 'cloud metadata'),
  range('::/128', 'unspecified'),
  range('::1/128', 'loopback'),
  range('::ffff:0:0/96', 'IPv4-mapped'),
  range('::/96', 'IPv4-compatible (deprecated)'),
  range('64:ff9b:1::/48', 'local-use NAT64'),
  range('100::/64', 'discard-only'),
  range('2001:db8::/32', 'documentation'),
  range('fc00::/7', 'unique local (private)'),
  range('fe80::/10', 'link-local'),
  range('fec0::/10', 'site-local (deprecated)'),
  range('ff00::/8', 'multicast'),
];
const NAT64 = parseCidr('64:ff9b::/96') as Cidr;
const SIX_TO_FOUR = parseCidr('2002::/16') as Cidr;

/** Why an address is refused, or undefined when it is a public address. */
export function blockedReason(address: string): string | undefined {
  const ip = parseIp(address);
  if (!ip) return 'not an IP address';
  if (ip.family === 4) return V4_BLOCKED.find((r) => inCidr(ip, r.cidr))?.reason;
  const hit = V6_BLOCKED.find((r) => inCidr(ip, r.cidr))?.reason;
  if (hit) return hit;
  // Translated forms carry an IPv4 address: judge them by it.
  const embedded = inCidr(ip, NAT64)
    ? ip.value & 0xffffffffn
    : inCidr(ip, SIX_TO_FOUR)
      ? (ip.value >> 80n) & 0xffffffffn
      : undefined;
  if (embedded !== undefined) {
    const v4 = { family: 4 as const, value: embedded };
    const inner = V4_BLOCKED.find((r) => inCidr(v4, r.cidr))?.reason;
    if (inner) return `${inCidr(ip, NAT64) ? 'NAT64' : '6to4'} of a ${inner}`;
  }
  return undefined;
}

/** Parsed SLUICE_WEBHOOK_ALLOW: exact host names, and addresses or CIDRs. */
export interface AllowList {
  hosts: ReadonlySet<string>;
  cidrs: readonly Cidr[];
}

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

/**
 * Parses allow-list entries (host names, IPs, CIDRs; a comma-separated string or an array).
 * Problems are pushed naming `variable`.
 */
export function parseAllowList(
  entries: string | readonly string[] | undefined,
  problems: string[] = [],
  variable = 'SLUICE_WEBHOOK_ALLOW',
): AllowList {
  const list = typeof entries === 'string' ? entries.split(',') : (entries ?? []);
  const hosts = new Set<string>();
  const cidrs: Cidr[] = [];
  for (const raw of list.map((e) => e.trim()).filter(Boolean)) {
    const cidr = parseCidr(raw);
    if (cidr) cidrs.push(cidr);
    else if (!raw.includes('/') && HOSTNAME.test(normalizeHost(raw))) hosts.add(normalizeHost(raw));
    else problems.push(`${variable}: ${JSON.stringify(raw)} is not a host name, IP address or CIDR`);
  }
  return { hosts, cidrs };
}

/** A resolver like `dns.lookup(host, { all: true })`. */
export type Resolver = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (host) => dns.promises.lookup(host, { all: true, verbatim: true });

/** A URL that passed the guard and the address its request must go to. */
export interface SafeTarget {
  url: URL;
  /** Host name as in the URL (without IPv6 brackets). */
  host: string;
  /** The checked address the request is pinned to. */
  address: string;
  family: 4 | 6;
}

/** Options of {@link assertSafeWebhookUrl}. */
export interface SsrfOptions {
  /** Exempt hosts, IPs, CIDRs (SLUICE_WEBHOOK_ALLOW). @default none */
  allow?: AllowList | string | readonly string[];
  /** Resolver of host names. @default node:dns lookup with `all: true` */
  resolve?: Resolver;
}

function isAllowList(value: SsrfOptions['allow']): value is AllowList {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && 'hosts' in value;
}

function forbidden(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.Forbidden, message, nonRetryable: true });
}

/**
 * Checks a webhook URL: http(s) only; resolves the host (all addresses) and refuses when any of
 * them is not public, unless allow-listed. Returns the address to pin the request to. Throws a
 * non-retryable `ApplicationFailure` of type `Forbidden` on a violation, and a retryable
 * `DownstreamError` when the name does not resolve.
 */
export async function assertSafeWebhookUrl(input: string | URL, opts: SsrfOptions = {}): Promise<SafeTarget> {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw forbidden('url: not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw forbidden(`url: only http and https webhooks are allowed, got ${url.protocol}`);
  }
  const allow = isAllowList(opts.allow) ? opts.allow : parseAllowList(opts.allow);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const hostAllowed = allow.hosts.has(normalizeHost(host));
  const literal = parseIp(host);
  let addresses: { address: string; family: number }[];
  if (literal) {
    addresses = [{ address: host, family: literal.family }];
  } else {
    try {
      addresses = await (opts.resolve ?? systemResolver)(host);
    } catch (err) {
      throw ApplicationFailure.create({
        type: FailureType.DownstreamError,
        message: `url: cannot resolve webhook host ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      });
    }
    if (addresses.length === 0) {
      throw ApplicationFailure.create({
        type: FailureType.DownstreamError,
        message: `url: webhook host ${host} resolves to no address`,
      });
    }
  }
  // Every address must pass, not just the first: the connection could otherwise land on any.
  for (const { address } of addresses) {
    if (hostAllowed) break;
    const ip = parseIp(address);
    if (ip && allow.cidrs.some((c) => inCidr(ip, c))) continue;
    const reason = blockedReason(address);
    if (reason) {
      const via = literal ? '' : ` (resolved from ${host})`;
      throw forbidden(
        `url: webhook address ${address}${via} is ${reason}; list the host or address in SLUICE_WEBHOOK_ALLOW to permit it`,
      );
    }
  }
  const first = addresses[0] as { address: string; family: number };
  return { url, host, address: first.address, family: first.family === 6 ? 6 : 4 };
}

/** Request options of {@link fetchPinned} (the subset that webhooks use). */
export interface PinnedRequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Ends the request (connect, headers or body) with the signal's reason. */
  signal?: AbortSignal;
  /** Longest wait for the response headers after the request is sent. @default 10000 */
  headersTimeoutMs?: number;
  /** Longest silence between two chunks of the response body. @default 10000 */
  bodyTimeoutMs?: number;
  /** Bytes of the response body kept; the rest is discarded and the connection closed. @default 65536 */
  maxBodyBytes?: number;
}

/** A response of {@link fetchPinned}: status, headers and at most `maxBodyBytes` of body. */
export interface PinnedResponse {
  status: number;
  /** Response headers, names lower-cased. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The first `maxBodyBytes` of the body. */
  body: Buffer;
  /** True when the body was longer than `maxBodyBytes` and the rest was discarded. */
  truncated: boolean;
}

/** Raised by {@link fetchPinned} when the peer's answer is not a usable HTTP response. */
export class BadResponseError extends Error {
  override readonly name = 'BadResponseError';
}

/** Body bytes a webhook response may occupy in memory. */
export const MAX_RESPONSE_BODY_BYTES = 64 * 1024;

/**
 * Sends a request to a {@link SafeTarget}'s checked address (the host name is not resolved
 * again) with undici, Node's own HTTP engine: the URL's host goes in `Host` and, for https, in
 * SNI and the certificate check. Redirects are not followed.
 *
 * Nothing a peer sends can take the process down or fill its memory: at most `maxBodyBytes` of
 * the body is kept (the rest is discarded by closing the connection), headers and body have
 * their own timeouts, and a status outside 200–599, a 1xx or upgrade as the final answer, or a
 * garbled response rejects with {@link BadResponseError}. Rejects with the signal's reason when
 * aborted, and with undici's error for a network failure or a timeout.
 */
export async function fetchPinned(target: SafeTarget, init: PinnedRequestInit = {}): Promise<PinnedResponse> {
  const { url, address, family } = target;
  const maxBody = init.maxBodyBytes ?? MAX_RESPONSE_BODY_BYTES;
  const lookup: net.LookupFunction = (_host, options, callback) => {
    // Node asks for all addresses when it may race IPv4 and IPv6 (autoSelectFamily).
    if ((options as dns.LookupAllOptions).all) {
      (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, [{ address, family }]);
    } else callback(null, address, family);
  };
  // One agent per request: it is pinned to this target's address, and closing it frees the socket.
  const agent = new Agent({
    connect: { lookup, timeout: init.headersTimeoutMs ?? 10_000 },
    headersTimeout: init.headersTimeoutMs ?? 10_000,
    bodyTimeout: init.bodyTimeoutMs ?? 10_000,
    connections: 1,
    pipelining: 0,
  });
  try {
    init.signal?.throwIfAborted();
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        dispatcher: agent,
        method: init.method ?? 'GET',
        headers: init.headers,
        body: init.body,
        signal: init.signal,
      });
    } catch (err) {
      throw classifyTransportError(err, init.signal);
    }
    // Destroying the body stream below emits 'error' (RequestAbortedError): without a listener,
    // that is an uncaught exception that takes the whole worker down.
    res.body.on('error', () => undefined);
    const status = res.statusCode;
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      res.body.destroy();
      throw new BadResponseError(`answered with status ${status}, outside 200-599`);
    }
    const chunks: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        const room = maxBody - kept;
        if (chunk.length > room) {
          if (room > 0) chunks.push(chunk.subarray(0, room));
          kept = maxBody;
          truncated = true;
          break;
        }
        chunks.push(chunk);
        kept += chunk.length;
      }
    } catch (err) {
      throw classifyTransportError(err, init.signal);
    } finally {
      // Leaving the loop early (or on an error) must not leave the rest of the body streaming in.
      if (!res.body.destroyed) res.body.destroy();
    }
    return { status, headers: res.headers, body: Buffer.concat(chunks), truncated };
  } finally {
    agent.destroy().catch(() => undefined);
  }
}

/** undici error codes of answers that are not usable HTTP. */
const BAD_RESPONSE_CODES: Readonly<Record<string, string>> = {
  UND_ERR_HEADERS_OVERFLOW: 'sent headers larger than 16 KiB',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'sent a body that does not match its Content-Length',
  UND_ERR_RES_EXCEEDED_MAX_SIZE: 'sent a body over the size limit',
};

/** Maps an undici failure: garbled answers and unexpected 1xx or upgrades become {@link BadResponseError}. */
function classifyTransportError(err: unknown, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted) return signal.reason ?? err;
  const e = err as { name?: string; code?: string; message?: string };
  if (e.name === 'HTTPParserError')
    return new BadResponseError(`sent a malformed HTTP response: ${e.message}`, { cause: err });
  const known = e.code ? BAD_RESPONSE_CODES[e.code] : undefined;
  if (known) return new BadResponseError(known, { cause: err });
  // undici's words for a 101 nobody asked for, and for a 1xx that is not followed by an answer.
  if (e.code === 'UND_ERR_SOCKET' && e.message === 'bad upgrade') {
    return new BadResponseError('answered with a protocol upgrade (101) that was not asked for', { cause: err });
  }
  if (e.code === 'UND_ERR_SOCKET' && e.message === 'bad response') {
    return new BadResponseError('answered with an informational (1xx) status as its answer', { cause: err });
  }
  return err;
}
