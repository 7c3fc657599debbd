/**
 * The storage layer: one configured backend (`file` or `s3`, SLUICE_STORAGE_URL) seen through
 * three stores, and source URIs resolved to a store and a key.
 *
 * Layout under the root (`<dir>` or `s3://bucket/prefix`):
 *   `outputs/<workflowId>/<runId>/…`        — a run's artifacts (SLUICE_OUTPUT_DIR on `file`)
 *   `outputs/<workflowId>/<runId>/.work/…`  — its intermediates, removed after success
 *   `orders/<YYYY-MM>.parquet`              — report partitions (`sluice data generate`)
 *   `uploads/<sha256>/<name>`               — local sources uploaded for workers on other hosts
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import type { StorageConfig } from '../config';
import { FileStore } from './file';
import { S3Store, createS3Client } from './s3';
import type { ObjectStore, StorageMeter } from './store';

export { ObjectNotFoundError, StorageAccessError, StorageUnavailableError, storageFailure } from './errors';
export { sha256File } from './file';
export { joinKey, type ObjectInfo, type ObjectStore } from './store';

/** An object named by a URI: the store that holds it and its key there. */
export interface ObjectRef {
  store: ObjectStore;
  key: string;
  uri: string;
}

export interface Storage {
  readonly kind: 'file' | 's3';
  /** Run outputs: `<workflowId>/<runId>/…`. */
  readonly artifacts: ObjectStore;
  /** Report partitions: `<YYYY-MM>.parquet`. */
  readonly datasets: ObjectStore;
  /** Sources uploaded from a local path, for workers on other hosts. */
  readonly uploads: ObjectStore;
  /** This host's scratch folder. */
  readonly scratchDir: string;
  readonly presignTtlSec: number;
  /** Bytes moved through every store of this process. */
  readonly meter: StorageMeter;
  /**
   * The store and key of an `s3://bucket/key` URI (any bucket these credentials reach) or a
   * `file:///abs/path` URI; undefined for anything else.
   */
  objectAt(uri: string): ObjectRef | undefined;
}

/** Splits `s3://bucket/key`; undefined when it is not one. */
export function parseS3Uri(uri: string): { bucket: string; key: string } | undefined {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  return m ? { bucket: m[1]!, key: m[2]! } : undefined;
}

/** True when `source` names an object by URI rather than a path under the media root. */
export function isObjectUri(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source);
}

/** Opens the configured storage. The S3 client is created once, on first use. */
export function openStorage(config: StorageConfig, dirs: { outputDir: string; partitionsDir: string }): Storage {
  const meter: StorageMeter = { read: 0, written: 0 };
  let client: S3Client | undefined;
  const s3Client = () =>
    (client ??= createS3Client({
      endpoint: config.s3.endpoint,
      region: config.s3.region,
      requestTimeoutSec: config.s3.requestTimeoutSec,
      credentials: config.s3.credentials && {
        accessKeyId: config.s3.credentials.accessKeyId,
        secretAccessKey: config.s3.credentials.secretAccessKey.reveal(),
        sessionToken: config.s3.credentials.sessionToken?.reveal(),
      },
    }));
  const buckets = new Map<string, S3Store>();
  const bucket = (name: string) => {
    let store = buckets.get(name);
    if (!store) buckets.set(name, (store = new S3Store(s3Client(), name, '', meter)));
    return store;
  };
  let root: ObjectStore;
  let artifacts: ObjectStore;
  let datasets: ObjectStore;
  if (config.kind === 'file') {
    root = new FileStore(config.root, meter);
    artifacts = new FileStore(dirs.outputDir, meter);
    datasets = new FileStore(dirs.partitionsDir, meter);
  } else {
    root = bucket(config.bucket).view(config.prefix);
    artifacts = root.view('outputs');
    datasets = root.view('orders');
  }
  return {
    kind: config.kind,
    artifacts,
    datasets,
    uploads: root.view('uploads'),
    scratchDir: config.scratchDir,
    presignTtlSec: config.presignTtlSec,
    meter,
    objectAt(uri) {
      const s3 = parseS3Uri(uri);
      if (s3) return { store: bucket(s3.bucket), key: s3.key, uri };
      if (uri.startsWith('file://')) {
        let file: string;
        try {
          file = fileURLToPath(uri);
        } catch {
          return undefined;
        }
        return { store: new FileStore(path.dirname(file), meter), key: path.basename(file), uri };
      }
      return undefined;
    },
  };
}
