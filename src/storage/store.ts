/**
 * The object-store contract every pipeline step uses: keys relative to a store's root, values
 * that become visible under their final key only when complete, and URIs (`file://…`,
 * `s3://bucket/key`) to hand from one activity to another instead of host paths.
 */
import { Transform, pipeline, type Readable } from 'node:stream';

/** What a store knows of one object. */
export interface ObjectInfo {
  key: string;
  bytes: number;
  /** Hex SHA-256 recorded at write time (s3: object metadata), when known. */
  sha256?: string;
}

/** Inclusive byte range; `end` omitted reads to the end. */
export interface ByteRange {
  start: number;
  end?: number;
}

/** Options of a write. */
export interface PutOptions {
  contentType?: string;
  /** Hex SHA-256 of the body when the caller has it (saves hashing twice). */
  sha256?: string;
}

/** Bytes a store moved, for `sluice_storage_bytes_total` and the benchmarks. */
export interface StorageMeter {
  read: number;
  written: number;
}

/** A store rooted at a folder (`file`) or a bucket prefix (`s3`). */
export interface ObjectStore {
  readonly kind: 'file' | 's3';
  /** Bytes read and written through this store and every view of it. */
  readonly meter: StorageMeter;
  /** `file:///abs/path` or `s3://bucket/prefix/key`. */
  uri(key: string): string;
  /** The host path of a key on the `file` backend; undefined on `s3`. */
  localPath(key: string): string | undefined;
  /** A store for `<root>/<prefix>/` sharing this one's connection and meter. */
  view(prefix: string): ObjectStore;
  /** Writes a whole value; visible under `key` only once complete. */
  put(key: string, body: string | Buffer, opts?: PutOptions): Promise<ObjectInfo>;
  /** Uploads a local file (multipart when large); visible under `key` only once complete. */
  putFile(key: string, file: string, opts?: PutOptions): Promise<ObjectInfo>;
  /** Streams an object, or a byte range of it. Rejects with ObjectNotFoundError when missing. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  /** The object (or a byte range of it) in memory: small objects and windows. */
  getBuffer(key: string, range?: ByteRange): Promise<Buffer>;
  /** Copies an object to a local file (written to a temp name, then renamed). */
  download(key: string, file: string): Promise<ObjectInfo>;
  /** Size and recorded checksum, or undefined when the object does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** True when `key` holds exactly `bytes` bytes with this SHA-256. */
  verify(key: string, bytes: number, sha256: string): Promise<boolean>;
  /** Every object under `prefix` (a folder-like prefix), sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Removes one object (no error when it does not exist). */
  delete(key: string): Promise<void>;
  /** Removes every object under `prefix`; resolves to how many were removed. */
  deletePrefix(prefix: string): Promise<number>;
  /** A time-limited HTTPS/HTTP GET URL (s3), or undefined (file). */
  presign(key: string, ttlSeconds: number): Promise<string | undefined>;
}

/** Joins key segments with `/`, dropping empty ones and stray slashes. */
export function joinKey(...parts: string[]): string {
  return parts
    .flatMap((p) => p.split('/'))
    .filter(Boolean)
    .join('/');
}

/**
 * Refuses keys that could escape a store's root or that a store cannot hold: empty, absolute,
 * with `.`/`..` segments, NUL or backslashes.
 */
export function assertSafeKey(key: string): void {
  const segments = key.split('/');
  if (
    !key ||
    key.startsWith('/') ||
    key.includes('\0') ||
    key.includes('\\') ||
    segments.some((s) => s === '.' || s === '..')
  ) {
    throw new Error(`storage key ${JSON.stringify(key)} is not a safe relative key`);
  }
}

/**
 * `source` with every byte counted into `meter.read`. (A 'data' listener would switch the
 * stream to flowing mode and lose chunks for a consumer that iterates later.) Destroying the
 * result destroys the source, and a source error reaches the result's consumer.
 */
export function metered(source: Readable, meter: StorageMeter): Readable {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      meter.read += chunk.length;
      done(null, chunk);
    },
  });
  pipeline(source, counter, () => undefined);
  return counter;
}
