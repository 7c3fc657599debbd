/**
 * Payload encryption keys by ID, from SLUICE_CODEC_KEYS (`id:base64key,…`) or the file named by
 * SLUICE_CODEC_KEYS_FILE. The first key is the active one (new payloads are encrypted with it);
 * every listed key decrypts, so rotating means putting a new key first and keeping the old ones
 * until no stored history needs them. Error messages name key IDs, never key material.
 */
import fs from 'node:fs';
import util from 'node:util';

/** AES-256 needs 32-byte keys. */
export const CODEC_KEY_BYTES = 32;
/** Key IDs travel in payload metadata: short and plain. */
export const CODEC_KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** Keys by ID with the active one first. Printing it shows only the IDs. */
export class CodecKeyring {
  readonly #keys: ReadonlyMap<string, Buffer>;

  constructor(
    /** ID of the key new payloads are encrypted with. */
    readonly activeId: string,
    keys: ReadonlyMap<string, Buffer>,
  ) {
    if (!keys.has(activeId)) throw new Error(`active key ${activeId} is not among the keys`);
    this.#keys = keys;
  }

  /** Every configured key ID, the active one first. */
  get ids(): string[] {
    return [this.activeId, ...[...this.#keys.keys()].filter((id) => id !== this.activeId)];
  }

  /** Key material of `id`; undefined when that ID is not configured. */
  key(id: string): Buffer | undefined {
    return this.#keys.get(id);
  }

  toJSON(): { activeId: string; ids: string[] } {
    return { activeId: this.activeId, ids: this.ids };
  }

  [util.inspect.custom](): string {
    return `CodecKeyring(active ${this.activeId}; ${this.ids.join(', ')})`;
  }
}

/** Decodes standard or URL-safe base64 strictly; undefined when the text is not base64. */
function decodeBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) return undefined;
  return Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/** Adds one `id` + base64 key to `out`, or pushes a problem (naming the ID or position only). */
function addKey(
  variable: string,
  where: string,
  id: string,
  b64: string,
  out: Map<string, Buffer>,
  problems: string[],
): void {
  if (!CODEC_KEY_ID_PATTERN.test(id)) {
    problems.push(`${variable}: ${where}: key ID must be 1-64 characters of A-Z, a-z, 0-9, ., _ or -`);
    return;
  }
  if (out.has(id)) {
    problems.push(`${variable}: key ID ${id} is listed twice`);
    return;
  }
  const key = decodeBase64(b64);
  if (!key) {
    problems.push(`${variable}: key ${id} is not base64`);
    return;
  }
  if (key.length !== CODEC_KEY_BYTES) {
    problems.push(`${variable}: key ${id} must be ${CODEC_KEY_BYTES} bytes (AES-256), got ${key.length}`);
    return;
  }
  out.set(id, key);
}

/** Parses `id:base64key` entries separated by commas or newlines (`#` starts a comment line). */
function parseList(variable: string, text: string, problems: string[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const entries = text
    .split(/[,\n]/)
    .map((e) => e.trim())
    .filter((e) => e !== '' && !e.startsWith('#'));
  entries.forEach((entry, i) => {
    const colon = entry.indexOf(':');
    // The entry itself may be key material: name its position, never its text.
    if (colon <= 0) problems.push(`${variable}: entry ${i + 1} is not id:base64key`);
    else addKey(variable, `entry ${i + 1}`, entry.slice(0, colon).trim(), entry.slice(colon + 1).trim(), out, problems);
  });
  if (entries.length === 0) problems.push(`${variable}: no keys`);
  return out;
}

/**
 * Parses a key list. `text` is either `id:base64key` entries (commas or lines; the first is
 * active) or JSON `{"active": "k2", "keys": {"k2": "<base64>", "k1": "<base64>"}}` (without
 * `active`, the first key is active). Problems are pushed naming `variable`; returns undefined then.
 */
export function parseCodecKeys(variable: string, text: string, problems: string[]): CodecKeyring | undefined {
  const before = problems.length;
  let keys: Map<string, Buffer>;
  let active: string | undefined;
  if (text.trim().startsWith('{')) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      problems.push(`${variable}: not valid JSON`);
      return undefined;
    }
    const obj = raw as { active?: unknown; keys?: unknown };
    if (typeof obj.keys !== 'object' || obj.keys === null || Array.isArray(obj.keys)) {
      problems.push(`${variable}: JSON must be {"active"?: "<id>", "keys": {"<id>": "<base64 key>"}}`);
      return undefined;
    }
    keys = new Map();
    for (const [id, b64] of Object.entries(obj.keys as Record<string, unknown>)) {
      if (typeof b64 !== 'string') problems.push(`${variable}: key ${id} must be a base64 string`);
      else addKey(variable, `key ${JSON.stringify(id.slice(0, 64))}`, id, b64.trim(), keys, problems);
    }
    if (Object.keys(obj.keys).length === 0) problems.push(`${variable}: no keys`);
    if (obj.active !== undefined) {
      if (typeof obj.active !== 'string' || !keys.has(obj.active)) {
        problems.push(`${variable}: active must be one of the key IDs`);
      } else active = obj.active;
    }
  } else {
    keys = parseList(variable, text, problems);
  }
  if (problems.length > before) return undefined;
  const first = [...keys.keys()][0];
  return first === undefined ? undefined : new CodecKeyring(active ?? first, keys);
}

/** Where keys come from, as configured. */
export interface CodecKeySource {
  /** SLUICE_CODEC_KEYS text (already validated by loadConfig). */
  inline?: { reveal(): string };
  /** SLUICE_CODEC_KEYS_FILE path. */
  file?: string;
}

/** Raised when keys cannot be loaded; lists every problem (IDs and variables, never keys). */
export class CodecKeyError extends Error {
  constructor(readonly problems: string[]) {
    super(`payload encryption keys: ${problems.join('; ')}`);
    this.name = 'CodecKeyError';
  }
}

/** Loads the keyring from its configured source (reads the file now); undefined when encryption is off. */
export function loadCodecKeyring(source: CodecKeySource): CodecKeyring | undefined {
  const problems: string[] = [];
  let ring: CodecKeyring | undefined;
  if (source.inline) {
    ring = parseCodecKeys('SLUICE_CODEC_KEYS', source.inline.reveal(), problems);
  } else if (source.file) {
    let text: string;
    try {
      text = fs.readFileSync(source.file, 'utf8');
    } catch (err) {
      throw new CodecKeyError([
        `SLUICE_CODEC_KEYS_FILE: cannot read ${source.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      ]);
    }
    ring = parseCodecKeys('SLUICE_CODEC_KEYS_FILE', text, problems);
  } else {
    return undefined;
  }
  if (problems.length > 0 || !ring) throw new CodecKeyError(problems);
  return ring;
}
