/**
 * API keys of `sluice api`: each bound to one tenant or to `*` (admin, every tenant). Only their
 * SHA-256 digests are kept in memory; a key is compared digest to digest in constant time.
 *
 * Spelling (SLUICE_API_KEYS, comma- or newline-separated; SLUICE_API_KEYS_FILE, one a line, `#`
 * comments): `tenant:key` or `*:key`, where `key` is the key itself (16+ characters) or
 * `sha256:<64 hex digits>`, its digest, so that a file need not hold a usable key.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { TENANT_PATTERN } from '../shared/constants';

/** Who a request is: the tenant its key is bound to, or `*` for an admin key. */
export interface ApiPrincipal {
  tenant: string;
  /** A short, non-secret label for logs: the first 8 hex digits of the key's digest. */
  keyId: string;
}

/** One configured key: its tenant and SHA-256 digest (never the key itself). */
export interface ApiKeyEntry {
  tenant: string;
  digest: Buffer;
}

/** Smallest accepted key length in characters (a key must not be guessable). */
export const MIN_API_KEY_LENGTH = 16;

const DIGEST = /^sha256:([0-9a-f]{64})$/i;

/** SHA-256 of `key`. */
export function apiKeyDigest(key: string): Buffer {
  return crypto.createHash('sha256').update(key, 'utf8').digest();
}

/**
 * Parses key entries from `text`; problems are pushed as `VARIABLE: message` (the key itself is
 * never echoed, only the entry's position).
 */
export function parseApiKeys(variable: string, text: string, problems: string[]): ApiKeyEntry[] {
  const out: ApiKeyEntry[] = [];
  const entries = text
    .split(/[\n,]/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  entries.forEach((entry, i) => {
    const colon = entry.indexOf(':');
    const tenant = colon > 0 ? entry.slice(0, colon).trim() : '';
    const key = colon > 0 ? entry.slice(colon + 1).trim() : '';
    const where = `${variable}: entry ${i + 1}`;
    if (!tenant || !key) {
      problems.push(`${where}: expected tenant:key or *:key`);
      return;
    }
    if (tenant !== '*' && !TENANT_PATTERN.test(tenant)) {
      problems.push(`${where}: tenant must be * or 1-63 characters of a-z, 0-9, _ or -`);
      return;
    }
    const hashed = DIGEST.exec(key);
    if (hashed) {
      out.push({ tenant, digest: Buffer.from(hashed[1] as string, 'hex') });
      return;
    }
    if (key.length < MIN_API_KEY_LENGTH) {
      problems.push(`${where}: key must be at least ${MIN_API_KEY_LENGTH} characters (or sha256:<hex digest>)`);
      return;
    }
    out.push({ tenant, digest: apiKeyDigest(key) });
  });
  const seen = new Set<string>();
  for (const e of out) {
    const hex = e.digest.toString('hex');
    if (seen.has(hex)) problems.push(`${variable}: the same key is listed twice`);
    seen.add(hex);
  }
  return out;
}

/** The configured keys, by digest. Empty: the API runs without authentication (loopback only). */
export class ApiKeyring {
  private constructor(private readonly entries: readonly ApiKeyEntry[]) {}

  /** From the inline list and/or the file (read now); problems, naming the variable, go to `problems`. */
  static load(opts: { keys?: string; keysFile?: string }, problems: string[]): ApiKeyring {
    const entries: ApiKeyEntry[] = [];
    if (opts.keys) entries.push(...parseApiKeys('SLUICE_API_KEYS', opts.keys, problems));
    if (opts.keysFile) {
      let text: string | undefined;
      try {
        text = fs.readFileSync(opts.keysFile, 'utf8');
      } catch (err) {
        problems.push(`SLUICE_API_KEYS_FILE: cannot read ${opts.keysFile} (${(err as NodeJS.ErrnoException).code})`);
      }
      if (text !== undefined) entries.push(...parseApiKeys('SLUICE_API_KEYS_FILE', text, problems));
    }
    return new ApiKeyring(entries);
  }

  /** A keyring of these entries (tests, embedding). */
  static of(entries: readonly { tenant: string; key: string }[]): ApiKeyring {
    return new ApiKeyring(entries.map((e) => ({ tenant: e.tenant, digest: apiKeyDigest(e.key) })));
  }

  /** How many keys are configured. */
  get size(): number {
    return this.entries.length;
  }

  /** The principal of `key`, or undefined. Every entry is compared (constant time per entry). */
  authenticate(key: string): ApiPrincipal | undefined {
    const digest = apiKeyDigest(key);
    let found: ApiKeyEntry | undefined;
    for (const e of this.entries) if (crypto.timingSafeEqual(e.digest, digest)) found ??= e;
    return found ? { tenant: found.tenant, keyId: found.digest.toString('hex').slice(0, 8) } : undefined;
  }
}
