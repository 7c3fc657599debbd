/**
 * Payload encryption: an AES-256-GCM {@link PayloadCodec} with keys by ID (see ./keys.ts), and
 * {@link dataConverterFor}, which the client and every worker call so both sides agree.
 *
 * Wire format of an encrypted payload:
 * - metadata `encoding: binary/encrypted`, `encryption-key-id: <id>`, `encryption-cipher: AES-256-GCM`;
 * - data `iv (12 bytes) ‖ ciphertext ‖ GCM tag (16 bytes)` of the serialized original Payload
 *   (metadata and data), with `sluice/v1:<key id>` as additional authenticated data, so the key
 *   ID in the metadata cannot be swapped without failing authentication.
 * Payloads without that encoding pass through `decode` unchanged (history from before encryption).
 */
import crypto from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { type CodecKeyring, loadCodecKeyring } from './keys';

/** `encoding` metadata of an encrypted payload. */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** Metadata key naming the key a payload was encrypted with. */
export const KEY_ID_METADATA = 'encryption-key-id';
/** Metadata key naming the cipher. */
export const CIPHER_METADATA = 'encryption-cipher';
const CIPHER = 'AES-256-GCM';
const IV_BYTES = 12;
const TAG_BYTES = 16;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Raised when a payload cannot be decrypted: unknown key ID, wrong key, or tampered data. */
export class PayloadDecryptionError extends Error {
  constructor(
    message: string,
    /** Key ID named in the payload's metadata. */
    readonly keyId: string | undefined,
  ) {
    super(message);
    this.name = 'PayloadDecryptionError';
  }
}

function aad(keyId: string): Buffer {
  return Buffer.from(`sluice/v1:${keyId}`, 'utf8');
}

/** AES-256-GCM payload codec: encrypts with the keyring's active key, decrypts with any of its keys. */
export class AesGcmCodec implements PayloadCodec {
  constructor(private readonly keyring: CodecKeyring) {}

  /** ID of the key new payloads are encrypted with. */
  get activeKeyId(): string {
    return this.keyring.activeId;
  }

  encode(payloads: Payload[]): Promise<Payload[]> {
    const keyId = this.keyring.activeId;
    const key = this.keyring.key(keyId) as Buffer;
    return Promise.resolve(
      payloads.map((payload) => {
        const plain = temporal.api.common.v1.Payload.encode(payload).finish();
        const iv = crypto.randomBytes(IV_BYTES);
        const cipher = crypto.createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
        cipher.setAAD(aad(keyId));
        const body = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
        return {
          metadata: {
            encoding: utf8.encode(ENCRYPTED_ENCODING),
            [KEY_ID_METADATA]: utf8.encode(keyId),
            [CIPHER_METADATA]: utf8.encode(CIPHER),
          },
          data: new Uint8Array(body),
        };
      }),
    );
  }

  // async: a decoding error becomes a rejection, as callers of a codec expect.
  // eslint-disable-next-line @typescript-eslint/require-await
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.decodeOne(p));
  }

  private decodeOne(payload: Payload): Payload {
    const encoding = payload.metadata?.encoding;
    if (!encoding || fromUtf8.decode(encoding) !== ENCRYPTED_ENCODING) return payload;
    const rawId = payload.metadata?.[KEY_ID_METADATA];
    const keyId = rawId ? fromUtf8.decode(rawId) : undefined;
    if (!keyId) throw new PayloadDecryptionError('encrypted payload has no encryption-key-id metadata', undefined);
    const key = this.keyring.key(keyId);
    if (!key) {
      throw new PayloadDecryptionError(
        `payload was encrypted with key ID ${JSON.stringify(keyId)}, which is not configured (configured: ${this.keyring.ids.join(', ')}); add it to SLUICE_CODEC_KEYS`,
        keyId,
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) {
      throw new PayloadDecryptionError(`encrypted payload (key ${keyId}) is truncated`, keyId);
    }
    const iv = data.subarray(0, IV_BYTES);
    const tag = data.subarray(data.length - TAG_BYTES);
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(keyId));
    decipher.setAuthTag(tag);
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(
        `cannot decrypt payload with key ${keyId}: authentication failed (different key material under that ID, or the payload was altered)`,
        keyId,
      );
    }
    const decoded = temporal.api.common.v1.Payload.decode(plain);
    return { metadata: decoded.metadata, data: decoded.data };
  }
}

/** The codec's own settings (`config.codec`): where its keys come from. */
export interface CodecSettings {
  /** SLUICE_CODEC_KEYS (validated by loadConfig); undefined when unset. */
  keys: { reveal(): string } | undefined;
  /** SLUICE_CODEC_KEYS_FILE; read when the codec is built. */
  keysFile: string | undefined;
}

/** The payload codec (reads SLUICE_CODEC_KEYS_FILE now); undefined when encryption is off. */
export function codecFor(settings: CodecSettings): AesGcmCodec | undefined {
  const ring = loadCodecKeyring({ inline: settings.keys, file: settings.keysFile });
  return ring ? new AesGcmCodec(ring) : undefined;
}

/**
 * Data converter the client and the workers use: the AES-256-GCM codec when keys are configured,
 * else undefined (the SDK's default converter). Both sides must call this with the same keys.
 */
export function dataConverterFor(settings: CodecSettings): DataConverter | undefined {
  const codec = codecFor(settings);
  return codec ? { payloadCodecs: [codec] } : undefined;
}
