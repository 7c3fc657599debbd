/**
 * SSRF guard: which addresses a webhook may reach, in every spelling a URL allows, with the
 * check after DNS resolution and the request pinned to the checked address.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { FailureType } from '../../src/shared/constants';
import {
  assertSafeWebhookUrl,
  blockedReason,
  fetchPinned,
  parseAllowList,
  parseIp,
  type Resolver,
} from '../../src/security/ssrf';

/** Expects a non-retryable Forbidden failure whose message matches. */
async function expectForbidden(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  const failure = err as ApplicationFailure;
  expect(failure.type).toBe(FailureType.Forbidden);
  expect(failure.nonRetryable).toBe(true);
  expect(failure.message).toMatch(message);
}

describe('blockedReason classifies addresses', () => {
  const refused: [string, RegExp][] = [
    ['127.0.0.1', /loopback/],
    ['127.255.255.254', /loopback/],
    ['10.0.0.1', /private/],
    ['10.255.255.255', /private/],
    ['172.16.0.1', /private/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /private/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['100.127.255.255', /carrier-grade NAT/],
    ['100.100.100.200', /carrier-grade NAT/],
    ['169.254.169.254', /cloud metadata/],
    ['169.254.1.1', /link-local/],
    ['0.0.0.0', /unspecified/],
    ['0.1.2.3', /unspecified/],
    ['224.0.0.1', /multicast/],
    ['255.255.255.255', /reserved/],
    ['192.0.2.10', /documentation/],
    ['198.18.0.1', /benchmarking/],
    ['::', /unspecified/],
    ['::1', /loopback/],
    ['0:0:0:0:0:0:0:1', /loopback/],
    ['::ffff:127.0.0.1', /IPv4-mapped/],
    ['::ffff:7f00:1', /IPv4-mapped/],
    ['::ffff:8.8.8.8', /IPv4-mapped/],
    ['::127.0.0.1', /IPv4-compatible/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    ['febf:ffff::1', /link-local/],
    ['fc00::1', /unique local/],
    ['fd12:3456::1', /unique local/],
    ['fd00:ec2::254', /cloud metadata/],
    ['ff02::1', /multicast/],
    ['fec0::1', /site-local/],
    ['2001:db8::1', /documentation/],
    ['64:ff9b::a00:1', /NAT64 of a private/],
    ['64:ff9b::7f00:1', /NAT64 of a loopback/],
    ['2002:a9fe:a9fe::1', /6to4 of a cloud metadata/],
    ['2002:c0a8:101::1', /6to4 of a private/],
  ];
  it.each(refused)('%s is refused (%s)', (address, reason) => {
    expect(blockedReason(address)).toMatch(reason);
  });

  const allowed = [
    '8.8.8.8',
    '1.1.1.1',
    '93.184.216.34',
    '172.15.255.255',
    '172.32.0.1',
    '100.63.255.255',
    '100.128.0.1',
    '169.253.255.255',
    '11.0.0.1',
    '2606:4700:4700::1111',
    '2a00:1450:4001:80b::200e',
    '64:ff9b::808:808',
    '2002:808:808::1',
    'fe7f::1',
  ];
  it.each(allowed)('%s is public', (address) => {
    expect(blockedReason(address)).toBeUndefined();
  });

  it('parses IPv6 spellings to the same value', () => {
    expect(parseIp('::ffff:127.0.0.1')).toEqual(parseIp('0:0:0:0:0:ffff:7f00:0001'));
    expect(parseIp('[::1]')).toEqual(parseIp('0::1'));
    expect(parseIp('1::2::3')).toBeUndefined();
    expect(parseIp('999.1.1.1')).toBeUndefined();
  });
});

describe('assertSafeWebhookUrl', () => {
  // URL spellings of internal addresses: the WHATWG parser canonicalizes them, the guard sees the result.
  const urls: [string, RegExp][] = [
    ['http://127.0.0.1/hook', /127\.0\.0\.1 is loopback/],
    ['http://127.1/hook', /127\.0\.0\.1 is loopback/],
    ['http://2130706433/hook', /127\.0\.0\.1 is loopback/],
    ['http://0x7f000001/hook', /127\.0\.0\.1 is loopback/],
    ['http://0177.0.0.1/hook', /127\.0\.0\.1 is loopback/],
    ['http://0x7f.0.0.1/hook', /127\.0\.0\.1 is loopback/],
    ['http://[::1]:8080/hook', /::1 is loopback/],
    ['http://[::ffff:127.0.0.1]/hook', /IPv4-mapped/],
    ['http://[::ffff:a9fe:a9fe]/latest/meta-data', /IPv4-mapped/],
    ['http://169.254.169.254/latest/meta-data/', /cloud metadata/],
    ['http://[fd00:ec2::254]/latest/meta-data/', /cloud metadata/],
    ['https://10.1.2.3/hook', /private/],
    ['http://0.0.0.0:9000/', /unspecified/],
    ['http://[::]/', /unspecified/],
    ['http://user:pass@192.168.0.10/', /private/],
  ];
  it.each(urls)('%s is Forbidden', async (url, message) => {
    await expectForbidden(assertSafeWebhookUrl(url), message);
  });

  it.each(['file:///etc/passwd', 'ftp://example.com/x', 'gopher://127.0.0.1:6379/_x', 'data:text/plain,x'])(
    '%s is Forbidden: only http and https',
    async (url) => {
      await expectForbidden(assertSafeWebhookUrl(url), /only http and https/);
    },
  );

  it('checks names after DNS resolution: localhost is refused through the real resolver', async () => {
    await expectForbidden(assertSafeWebhookUrl('http://localhost:1/hook'), /resolved from localhost/);
  });

  it('refuses a name when any one of its addresses is internal', async () => {
    const resolve: Resolver = () =>
      Promise.resolve([
        { address: '93.184.216.34', family: 4 },
        { address: '10.0.0.5', family: 4 },
      ]);
    await expectForbidden(
      assertSafeWebhookUrl('https://hooks.example.test/x', { resolve }),
      /10\.0\.0\.5 \(resolved from hooks\.example\.test\) is private/,
    );
  });

  it('accepts a name whose addresses are public and pins the first', async () => {
    const resolve: Resolver = () => Promise.resolve([{ address: '2606:4700:4700::1111', family: 6 }]);
    const target = await assertSafeWebhookUrl('https://hooks.example.test/x', { resolve });
    expect(target).toMatchObject({ host: 'hooks.example.test', address: '2606:4700:4700::1111', family: 6 });
  });

  it('fails retryably (DownstreamError) when the name does not resolve', async () => {
    const err = await assertSafeWebhookUrl('http://no-such-host.invalid/x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe(FailureType.DownstreamError);
    expect((err as ApplicationFailure).nonRetryable).toBe(false);
  });

  it('honours the allow-list by host, by address and by CIDR', async () => {
    await expect(assertSafeWebhookUrl('http://localhost:1/', { allow: 'localhost' })).resolves.toMatchObject({
      host: 'localhost',
    });
    // A listed name is trusted whatever it resolves to; case and a trailing dot do not matter.
    const internal: Resolver = () => Promise.resolve([{ address: '10.0.0.7', family: 4 }]);
    await expect(
      assertSafeWebhookUrl('http://Hooks.Internal.:1/', { allow: 'hooks.internal', resolve: internal }),
    ).resolves.toMatchObject({ address: '10.0.0.7' });
    await expectForbidden(
      assertSafeWebhookUrl('http://other.internal/', { allow: 'hooks.internal', resolve: internal }),
      /private/,
    );
    await expect(assertSafeWebhookUrl('http://127.0.0.1:1/', { allow: '127.0.0.1' })).resolves.toMatchObject({
      address: '127.0.0.1',
    });
    await expect(assertSafeWebhookUrl('http://10.1.2.3/', { allow: ['10.1.0.0/16'] })).resolves.toBeTruthy();
    await expectForbidden(assertSafeWebhookUrl('http://10.2.0.1/', { allow: ['10.1.0.0/16'] }), /private/);
    // Listing an address does not list its neighbours or other spellings.
    await expectForbidden(assertSafeWebhookUrl('http://127.0.0.2/', { allow: '127.0.0.1' }), /loopback/);
    await expectForbidden(assertSafeWebhookUrl('http://[::ffff:127.0.0.1]/', { allow: '127.0.0.1' }), /mapped/);
    await expect(assertSafeWebhookUrl('http://[fd00::1]/', { allow: 'fd00::/8' })).resolves.toBeTruthy();
  });

  it('rejects malformed allow-list entries, naming the variable', () => {
    const problems: string[] = [];
    parseAllowList('127.0.0.1, 10.0.0.0/33, bad host, ::1/129, ok.example.com', problems);
    expect(problems).toEqual([
      'SLUICE_WEBHOOK_ALLOW: "10.0.0.0/33" is not a host name, IP address or CIDR (with an optional :port)',
      'SLUICE_WEBHOOK_ALLOW: "bad host" is not a host name, IP address or CIDR (with an optional :port)',
      'SLUICE_WEBHOOK_ALLOW: "::1/129" is not a host name, IP address or CIDR (with an optional :port)',
    ]);
    const ports: string[] = [];
    parseAllowList('hooks.internal:, hooks.internal:http, 127.0.0.1:0, 127.0.0.1:65536, [::1]:99999', ports);
    expect(ports).toHaveLength(5);
  });

  it('an allow-list entry with a port allows that port only (host:port, [v6]:port, 1.2.3.4:port)', async () => {
    const internal: Resolver = () => Promise.resolve([{ address: '10.0.0.7', family: 4 }]);
    const allow = parseAllowList('hooks.internal:8443, 127.0.0.1:8080, [::1]:9000, 10.9.0.0/16:7000');
    await expect(
      assertSafeWebhookUrl('https://hooks.internal:8443/x', { allow, resolve: internal }),
    ).resolves.toBeTruthy();
    await expectForbidden(assertSafeWebhookUrl('https://hooks.internal/x', { allow, resolve: internal }), /private/);
    await expectForbidden(assertSafeWebhookUrl('http://hooks.internal:8080/', { allow, resolve: internal }), /private/);
    await expect(assertSafeWebhookUrl('http://127.0.0.1:8080/', { allow })).resolves.toBeTruthy();
    await expectForbidden(assertSafeWebhookUrl('http://127.0.0.1:8081/', { allow }), /loopback/);
    await expectForbidden(assertSafeWebhookUrl('http://127.0.0.1/', { allow }), /loopback/);
    await expect(assertSafeWebhookUrl('http://[::1]:9000/', { allow })).resolves.toBeTruthy();
    await expectForbidden(assertSafeWebhookUrl('http://[::1]:9001/', { allow }), /loopback/);
    await expect(assertSafeWebhookUrl('http://10.9.1.1:7000/', { allow })).resolves.toBeTruthy();
    await expectForbidden(assertSafeWebhookUrl('http://10.9.1.1:80/', { allow }), /private/);
    // The default port counts as the port: http → 80, https → 443.
    const web = parseAllowList('127.0.0.1:80');
    await expect(assertSafeWebhookUrl('http://127.0.0.1/', { allow: web })).resolves.toBeTruthy();
    await expectForbidden(assertSafeWebhookUrl('https://127.0.0.1/', { allow: web }), /loopback/);
    // An entry without a port still allows every port; the config rejects a bad entry by name.
    await expect(assertSafeWebhookUrl('http://127.0.0.1:1234/', { allow: '127.0.0.1' })).resolves.toBeTruthy();
    expect(() => loadConfig({ SLUICE_WEBHOOK_ALLOW: '127.0.0.1:notaport' }, os.tmpdir())).toThrow(
      /SLUICE_WEBHOOK_ALLOW: "127.0.0.1:notaport"/,
    );
  });

  it.each([
    ['::ffff:0:0/96 (IPv4-mapped)', '::ffff:8.8.8.8', /mapped/],
    ['::ffff:0:0:0/96 (IPv4-translated)', '::ffff:0:8.8.8.8', /translated/],
    ['2001::/32 (Teredo)', '2001:0:4136:e378:8000:63bf:3fff:fdd2', /Teredo/],
    ['192.88.99.0/24 (6to4 relay anycast)', '192.88.99.1', /6to4 relay/],
  ])('refuses %s', async (_name, address, reason) => {
    expect(blockedReason(address)).toMatch(reason);
    const literal = address.includes(':') ? `[${address}]` : address;
    await expectForbidden(assertSafeWebhookUrl(`http://${literal}/`), reason);
  });
});

describe('fetchPinned sends to the checked address, not to a second DNS answer', () => {
  let server: http.Server;
  let port: number;
  const seen: { host?: string; body: string }[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ host: req.headers.host, body: Buffer.concat(chunks).toString() });
        res.writeHead(202, { 'x-reply': 'yes', 'content-type': 'text/plain' }).end('accepted');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('a name that resolves once to an allowed address is fetched from that address', async () => {
    let lookups = 0;
    // The first answer is the checked one; a rebinding resolver would answer differently later.
    const resolve: Resolver = () => {
      lookups++;
      return Promise.resolve([{ address: lookups === 1 ? '127.0.0.1' : '10.9.9.9', family: 4 }]);
    };
    const target = await assertSafeWebhookUrl(`http://hooks.example.test:${port}/in`, {
      resolve,
      allow: '127.0.0.1',
    });
    const res = await fetchPinned(target, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
    expect(res.status).toBe(202);
    expect(res.headers['x-reply']).toBe('yes');
    expect(res.body.toString()).toBe('accepted');
    expect(lookups).toBe(1);
    expect(seen.at(-1)).toEqual({ host: `hooks.example.test:${port}`, body: 'hi' });
  });

  it('rejects with the signal reason when the timeout passes', async () => {
    const slow = http.createServer(() => undefined);
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
    try {
      const target = await assertSafeWebhookUrl(`http://127.0.0.1:${(slow.address() as AddressInfo).port}/`, {
        allow: '127.0.0.1',
      });
      const err = await fetchPinned(target, { method: 'POST', signal: AbortSignal.timeout(200) }).catch(
        (e: unknown) => e,
      );
      expect((err as Error).name).toBe('TimeoutError');
    } finally {
      slow.closeAllConnections();
      await new Promise<void>((r) => slow.close(() => r()));
    }
  });
});
