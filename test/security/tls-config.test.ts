/**
 * TLS and API-key settings to Temporal: parsing and validation in src/config.ts, certificate
 * loading in src/connection.ts (with a throwaway self-signed certificate made by openssl, never
 * committed), and real connections to the run's (plaintext) dev server honouring TEMPORAL_TLS.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBurstActivities } from '../../src/activities/burst';
import { SluiceClient } from '../../src/client';
import { ConfigError, loadConfig } from '../../src/config';
import { connectionSettings } from '../../src/connection';
import { makeTestEnv } from '../helpers/env';
import { startFlowHost } from '../flow/helpers';

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('TLS and API key: parsing and validation', () => {
  let dir: string;
  let cert: string;
  let key: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-tls-'));
    cert = path.join(dir, 'client.pem');
    key = path.join(dir, 'client.key');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'].concat([
        '-subj',
        '/CN=sluice-test-client',
        '-keyout',
        key,
        '-out',
        cert,
      ]),
      { stdio: 'ignore' },
    );
  });

  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const address = 'temporal.example.test:7233';

  it('a client certificate without its key is rejected, naming the missing variable (and vice versa)', () => {
    expect(problemsOf({ TEMPORAL_ADDRESS: address, TEMPORAL_TLS_CLIENT_CERT_PATH: cert })).toContain(
      'TEMPORAL_TLS_CLIENT_KEY_PATH: required when TEMPORAL_TLS_CLIENT_CERT_PATH is set',
    );
    expect(problemsOf({ TEMPORAL_ADDRESS: address, TEMPORAL_TLS_CLIENT_KEY_PATH: key })).toContain(
      'TEMPORAL_TLS_CLIENT_CERT_PATH: required when TEMPORAL_TLS_CLIENT_KEY_PATH is set',
    );
  });

  it('an API key or client certificate needs TEMPORAL_ADDRESS (not the embedded dev server)', () => {
    expect(problemsOf({ TEMPORAL_API_KEY: 'k' })).toContain(
      'TEMPORAL_ADDRESS: required when an API key or client certificate is configured',
    );
    expect(
      problemsOf({ TEMPORAL_TLS_CLIENT_CERT_PATH: cert, TEMPORAL_TLS_CLIENT_KEY_PATH: key }).some((p) =>
        p.startsWith('TEMPORAL_ADDRESS:'),
      ),
    ).toBe(true);
  });

  it('TEMPORAL_TLS accepts only boolean spellings, naming the variable', () => {
    expect(problemsOf({ TEMPORAL_TLS: 'maybe' }).join('\n')).toMatch(/^TEMPORAL_TLS: /);
    for (const v of ['1', 'true', 'yes'])
      expect(loadConfig({ TEMPORAL_TLS: v }).temporal.tls).toEqual(expect.any(Object));
    for (const v of ['0', 'false', 'no']) expect(loadConfig({ TEMPORAL_TLS: v }).temporal.tls).toBe(false);
  });

  it('an API key implies TLS; TEMPORAL_TLS=false turns it off explicitly', () => {
    const cloud = loadConfig({
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: 'acme.a1b2c',
      TEMPORAL_API_KEY: 'key-1',
    });
    const s = connectionSettings(cloud);
    expect(s).toMatchObject({ address, namespace: 'acme.a1b2c', apiKey: 'key-1' });
    expect(s.tls).toEqual({
      serverNameOverride: undefined,
      serverRootCACertificate: undefined,
      clientCertPair: undefined,
    });
    const plain = connectionSettings(
      loadConfig({ TEMPORAL_ADDRESS: address, TEMPORAL_API_KEY: 'key-1', TEMPORAL_TLS: 'false' }),
    );
    expect(plain.tls).toBe(false);
    expect(plain.apiKey).toBe('key-1');
    expect(connectionSettings(loadConfig({ TEMPORAL_ADDRESS: address })).tls).toBe(false);
  });

  it('mTLS: certificate, key, CA and server name are read from their files', () => {
    const s = connectionSettings(
      loadConfig({
        TEMPORAL_ADDRESS: address,
        TEMPORAL_TLS_CLIENT_CERT_PATH: cert,
        TEMPORAL_TLS_CLIENT_KEY_PATH: key,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: cert,
        TEMPORAL_TLS_SERVER_NAME: 'frontend.internal',
      }),
    );
    expect(s.tls).not.toBe(false);
    const tls = s.tls as Exclude<typeof s.tls, false>;
    expect(tls.serverNameOverride).toBe('frontend.internal');
    expect(tls.clientCertPair?.crt.toString()).toContain('BEGIN CERTIFICATE');
    expect(tls.clientCertPair?.key.toString()).toContain('PRIVATE KEY');
    expect(Buffer.compare(tls.serverRootCACertificate!, fs.readFileSync(cert))).toBe(0);
  });

  it('an unreadable certificate file fails at start-up naming the variable and the path', () => {
    const missing = path.join(dir, 'missing.pem');
    const env = {
      TEMPORAL_ADDRESS: address,
      TEMPORAL_TLS_CLIENT_CERT_PATH: missing,
      TEMPORAL_TLS_CLIENT_KEY_PATH: key,
    };
    expect(() => connectionSettings(loadConfig(env))).toThrow(
      `TEMPORAL_TLS_CLIENT_CERT_PATH: cannot read ${missing}: ENOENT`,
    );
    expect(() =>
      connectionSettings(
        loadConfig({ ...env, TEMPORAL_TLS_CLIENT_CERT_PATH: cert, TEMPORAL_TLS_CLIENT_KEY_PATH: dir }),
      ),
    ).toThrow(`TEMPORAL_TLS_CLIENT_KEY_PATH: cannot read ${dir}: EISDIR`);
    expect(() =>
      connectionSettings(
        loadConfig({ TEMPORAL_ADDRESS: address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: missing, TEMPORAL_TLS: '1' }),
      ),
    ).toThrow(/^TEMPORAL_TLS_SERVER_CA_CERT_PATH: cannot read .*missing\.pem: ENOENT$/);
  });
});

describe('TLS settings against the real (plaintext) dev server', () => {
  it('TEMPORAL_TLS=false with an API key: client and worker connect in plaintext and run a pipeline', async () => {
    const t = makeTestEnv('sec-tls', { TEMPORAL_API_KEY: 'local-proxy-key', TEMPORAL_TLS: 'false' });
    const host = await startFlowHost(t, ['default'], createBurstActivities());
    const client = await SluiceClient.connect({ config: t.config });
    try {
      const { workflowId } = await client.startJobsPipeline({
        idempotencyKey: `tls-off-${t.suffix}`,
        jobs: [{ activity: 'burstSleep', input: { index: 0, ms: 1 } }],
      });
      await expect(client.getResult(workflowId)).resolves.toMatchObject({ succeeded: 1 });
    } finally {
      await client.close();
      await host.shutdown();
    }
  });

  it('an API key alone turns TLS on: the handshake with a plaintext server fails with the address named', async () => {
    const config = loadConfig({ TEMPORAL_ADDRESS: inject('temporalAddress'), TEMPORAL_API_KEY: 'k' });
    await expect(SluiceClient.connect({ config })).rejects.toThrow(
      new RegExp(`cannot connect to Temporal at ${inject('temporalAddress').replace(/\./g, '\\.')}`),
    );
  });
});
