/**
 * The AES-256-GCM payload codec and its keys: round trip, rotation (old key IDs still decrypt),
 * unknown key IDs and tampering refused with clear errors, key parsing that never echoes keys.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config';
import { AesGcmCodec, PayloadDecryptionError, codecFor, dataConverterFor } from '../../src/security/codec';
import { CodecKeyError, loadCodecKeyring, parseCodecKeys, type CodecKeyring } from '../../src/security/keys';

const key = () => crypto.randomBytes(32).toString('base64');
const K1 = key();
const K2 = key();

function ring(text: string): CodecKeyring {
  const problems: string[] = [];
  const r = parseCodecKeys('SLUICE_CODEC_KEYS', text, problems);
  expect(problems).toEqual([]);
  return r!;
}

const text = (p: Payload | undefined) => new TextDecoder().decode(p?.data);
const meta = (p: Payload | undefined, k: string) => new TextDecoder().decode(p?.metadata?.[k]);

describe('AesGcmCodec', () => {
  const value = { card: '4111-1111-1111-1111', note: 'plaintext marker ✓' };
  const plain = defaultPayloadConverter.toPayload(value);

  it('encrypts: metadata says encrypted with the active key, data is not the plaintext', async () => {
    const codec = new AesGcmCodec(ring(`k2:${K2},k1:${K1}`));
    const [enc] = await codec.encode([plain]);
    expect(meta(enc, 'encoding')).toBe('binary/encrypted');
    expect(meta(enc, 'encryption-key-id')).toBe('k2');
    expect(meta(enc, 'encryption-cipher')).toBe('AES-256-GCM');
    expect(Buffer.from(enc!.data!).includes(Buffer.from('4111-1111'))).toBe(false);
    expect(text(enc)).not.toContain('json/plain');
    const [dec] = await codec.decode([enc!]);
    expect(defaultPayloadConverter.fromPayload(dec!)).toEqual(value);
    expect(meta(dec, 'encoding')).toBe('json/plain');
  });

  it('uses a fresh IV per payload: the same value encrypts differently', async () => {
    const codec = new AesGcmCodec(ring(`k1:${K1}`));
    const [a, b] = await codec.encode([plain, plain]);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
  });

  it('rotation: payloads written with an older key still decrypt; new ones use the new key', async () => {
    const before = new AesGcmCodec(ring(`k1:${K1}`));
    const [old] = await before.encode([plain]);
    const after = new AesGcmCodec(ring(`k2:${K2},k1:${K1}`));
    const [fresh] = await after.encode([plain]);
    expect(meta(fresh, 'encryption-key-id')).toBe('k2');
    const decoded = await after.decode([old!, fresh!]);
    expect(decoded.map((p) => defaultPayloadConverter.fromPayload(p))).toEqual([value, value]);
  });

  it('an unknown key ID fails with a message naming it and the variable', async () => {
    const [enc] = await new AesGcmCodec(ring(`k0:${K1}`)).encode([plain]);
    const err = await new AesGcmCodec(ring(`k2:${K2},k1:${K1}`)).decode([enc!]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadDecryptionError);
    expect((err as Error).message).toMatch(/key ID "k0", which is not configured \(configured: k2, k1\)/);
    expect((err as Error).message).toMatch(/SLUICE_CODEC_KEYS/);
  });

  it('different key material under the same ID, altered data or a swapped key ID fail authentication', async () => {
    const codec = new AesGcmCodec(ring(`k2:${K2},k1:${K1}`));
    const [enc] = await codec.encode([plain]);
    const impostor = new AesGcmCodec(ring(`k2:${key()}`));
    await expect(impostor.decode([enc!])).rejects.toThrow(/cannot decrypt payload with key k2: authentication failed/);
    const flipped = Buffer.from(enc!.data!);
    flipped[20] = (flipped[20] as number) ^ 1;
    await expect(codec.decode([{ ...enc!, data: flipped }])).rejects.toThrow(/authentication failed/);
    const swapped = { ...enc!, metadata: { ...enc!.metadata, 'encryption-key-id': new TextEncoder().encode('k1') } };
    await expect(codec.decode([swapped])).rejects.toThrow(/key k1: authentication failed/);
    await expect(codec.decode([{ ...enc!, data: flipped.subarray(0, 10) }])).rejects.toThrow(/truncated/);
  });

  it('passes unencrypted payloads through decode (history from before encryption)', async () => {
    const [dec] = await new AesGcmCodec(ring(`k1:${K1}`)).decode([plain]);
    expect(defaultPayloadConverter.fromPayload(dec!)).toEqual(value);
  });
});

describe('codec keys', () => {
  it('parses id:base64 lists; the first key is active; url-safe base64 works', () => {
    const urlSafe = crypto.randomBytes(32).toString('base64url');
    const r = ring(` k2:${K2} , k1:${K1},k0:${urlSafe} `);
    expect(r.activeId).toBe('k2');
    expect(r.ids).toEqual(['k2', 'k1', 'k0']);
    expect(r.key('k0')?.length).toBe(32);
  });

  it('reports every problem naming the variable and key ID, never key material', () => {
    const short = crypto.randomBytes(16).toString('base64');
    const problems: string[] = [];
    parseCodecKeys('SLUICE_CODEC_KEYS', `k1:${short},${K1},bad id:${K2},k1:${K2},k3:!!notbase64!!`, problems);
    expect(problems).toEqual([
      'SLUICE_CODEC_KEYS: key k1 must be 32 bytes (AES-256), got 16',
      'SLUICE_CODEC_KEYS: entry 2 is not id:base64key',
      'SLUICE_CODEC_KEYS: entry 3: key ID must be 1-64 characters of A-Z, a-z, 0-9, ., _ or -',
      'SLUICE_CODEC_KEYS: key k3 is not base64',
    ]);
    for (const p of problems) for (const secret of [short, K1, K2]) expect(p).not.toContain(secret);
  });

  it('reads a keys file: lines with comments, or JSON with an explicit active key', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-keys-'));
    try {
      const lines = path.join(dir, 'keys.txt');
      fs.writeFileSync(lines, `# rotated 2026-11\nk2:${K2}\nk1:${K1}\n`, { mode: 0o600 });
      expect(loadCodecKeyring({ file: lines })?.ids).toEqual(['k2', 'k1']);
      const json = path.join(dir, 'keys.json');
      fs.writeFileSync(json, JSON.stringify({ active: 'k1', keys: { k2: K2, k1: K1 } }), { mode: 0o600 });
      expect(loadCodecKeyring({ file: json })?.activeId).toBe('k1');
      fs.writeFileSync(json, JSON.stringify({ active: 'k9', keys: { k1: K1 } }));
      expect(() => loadCodecKeyring({ file: json })).toThrow(
        /SLUICE_CODEC_KEYS_FILE: active must be one of the key IDs/,
      );
      expect(() => loadCodecKeyring({ file: path.join(dir, 'missing.txt') })).toThrow(
        /SLUICE_CODEC_KEYS_FILE: cannot read .*missing\.txt: ENOENT/,
      );
      expect(() => loadCodecKeyring({ file: path.join(dir, 'missing.txt') })).toThrow(CodecKeyError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loadConfig validates the keys and refuses SLUICE_CODEC_KEYS with SLUICE_CODEC_KEYS_FILE', () => {
    const bad = crypto.randomBytes(31).toString('base64');
    const err = (() => {
      try {
        loadConfig({ SLUICE_CODEC_KEYS: `k1:${bad}`, SLUICE_CODEC_TOKEN: 'short' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual(['SLUICE_CODEC_TOKEN: must be at least 16 characters']);
    expect(() => loadConfig({ SLUICE_CODEC_KEYS: `k1:${bad}` })).toThrow(/SLUICE_CODEC_KEYS: key k1 must be 32 bytes/);
    expect(() => loadConfig({ SLUICE_CODEC_KEYS: `k1:${K1}`, SLUICE_CODEC_KEYS_FILE: 'keys.txt' })).toThrow(
      /SLUICE_CODEC_KEYS_FILE: set either/,
    );
    expect(String((err as Error).message)).not.toContain(bad);
  });

  it('encryption is off without keys, on with them; config and keyring print no secrets', () => {
    expect(dataConverterFor(loadConfig({}).codec)).toBeUndefined();
    const token = crypto.randomBytes(24).toString('hex');
    const config = loadConfig({ SLUICE_CODEC_KEYS: `k2:${K2},k1:${K1}`, SLUICE_CODEC_TOKEN: token });
    expect(dataConverterFor(config.codec)?.payloadCodecs).toHaveLength(1);
    expect(codecFor(config.codec)?.activeKeyId).toBe('k2');
    const printed = [
      JSON.stringify(config),
      util.inspect(config, { depth: 10 }),
      `${String(config.codec.token)} ${String(config.codec.keys)}`,
      util.inspect(ring(`k2:${K2}`)),
      JSON.stringify(ring(`k2:${K2}`)),
    ].join('\n');
    for (const secret of [K1, K2, token, Buffer.from(K2, 'base64').toString('hex')]) {
      expect(printed).not.toContain(secret);
    }
    expect(config.codec.token?.reveal()).toBe(token);
  });
});
