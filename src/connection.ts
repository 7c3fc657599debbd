/**
 * Temporal connection options from config: address, namespace, TLS (mTLS or server-only) and
 * API key, following Temporal's own environment variables. Shared by the client and workers.
 */
import fs from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import { temporalAddress, type SluiceConfig } from './config';

export interface ConnectionSettings {
  address: string;
  namespace: string;
  tls: TLSConfig | false;
  apiKey: string | undefined;
}

function readFile(file: string, variable: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`${variable}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Builds connection settings, reading certificate files now so a bad path fails at start-up. */
export function connectionSettings(config: SluiceConfig): ConnectionSettings {
  const t = config.temporal.tls;
  let tls: TLSConfig | false = false;
  if (t) {
    tls = {
      serverNameOverride: t.serverName,
      serverRootCACertificate: t.serverCaCertPath
        ? readFile(t.serverCaCertPath, 'TEMPORAL_TLS_SERVER_CA_CERT_PATH')
        : undefined,
      clientCertPair:
        t.clientCertPath && t.clientKeyPath
          ? {
              crt: readFile(t.clientCertPath, 'TEMPORAL_TLS_CLIENT_CERT_PATH'),
              key: readFile(t.clientKeyPath, 'TEMPORAL_TLS_CLIENT_KEY_PATH'),
            }
          : undefined,
    };
  }
  return {
    address: temporalAddress(config),
    namespace: config.temporal.namespace,
    tls,
    apiKey: config.temporal.apiKey,
  };
}
