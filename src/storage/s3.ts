/**
 * The `s3` backend on the AWS SDK for JavaScript v3: any S3-compatible store (AWS S3, MinIO,
 * SeaweedFS, versitygw, Ceph RGW, GCS interoperability). Credentials and region come from the
 * SDK's own chain (environment, profiles, web identity / IRSA); a custom endpoint uses
 * path-style addressing. A PutObject, and a multipart upload on completion, make an object
 * visible whole, so no reader ever sees half an artifact.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { SpanKind, tracingPipeline, withSpan } from '../tracing';
import { ObjectNotFoundError, StorageAccessError, StorageUnavailableError } from './errors';
import { copyAtomic, sha256File } from './file';
import {
  assertSafeKey,
  joinKey,
  metered,
  type ByteRange,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type StorageMeter,
} from './store';

/** Files at least this large go up as multipart uploads (lib-storage), in parts of this size. */
const MULTIPART_BYTES = 16 * 1024 * 1024;

/** Connection settings of {@link createS3Client}. */
export interface S3Settings {
  /** AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; unset: AWS itself. Implies path-style. */
  endpoint?: string;
  /** AWS_REGION. @default the SDK's chain, else 'us-east-1' */
  region?: string;
  /** Seconds to wait for a TCP connection. @default 5 */
  connectTimeoutSec?: number;
  /** Seconds a request may stay silent before it is abandoned (and retried). @default 30 */
  requestTimeoutSec?: number;
  /**
   * SDK attempts per request, with its exponential backoff and jitter (100 ms doubling to 20 s):
   * 10 attempts ride out a store outage of about 45 s inside one activity attempt; the
   * activity's own retry policy comes on top. @default 10
   */
  maxAttempts?: number;
  /** Static credentials. @default the SDK's chain (environment, profiles, web identity, instance role) */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** An S3 client following the SDK's conventions, with timeouts that end hung requests. */
export function createS3Client(s: S3Settings): S3Client {
  const config: S3ClientConfig = {
    region: s.region ?? 'us-east-1',
    maxAttempts: s.maxAttempts ?? 10,
    ...(s.credentials ? { credentials: s.credentials } : {}),
    // The SDK builds its Node HTTP handler from these options.
    requestHandler: {
      connectionTimeout: (s.connectTimeoutSec ?? 5) * 1000,
      requestTimeout: (s.requestTimeoutSec ?? 30) * 1000,
    },
    // Not every S3-compatible store accepts the CRC checksums newer SDKs add to every request.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  if (s.endpoint) {
    config.endpoint = s.endpoint;
    config.forcePathStyle = true;
  }
  const client = new S3Client(config);
  traceS3(client);
  return client;
}

/**
 * With tracing on, one client span per S3 call (`S3.PutObject`, `S3.GetObject`, …, each part of a
 * multipart upload too), its bucket and key as attributes; the SDK's own retries are inside it.
 * Off, the middleware passes straight through.
 */
function traceS3(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => (args) => {
      if (!tracingPipeline()) return next(args);
      const method = (context.commandName ?? 'Command').replace(/Command$/, '');
      const input = args.input as { Bucket?: unknown; Key?: unknown };
      return withSpan(
        `S3.${method}`,
        {
          'rpc.system': 'aws-api',
          'rpc.service': 'S3',
          'rpc.method': method,
          ...(typeof input.Bucket === 'string' ? { 'aws.s3.bucket': input.Bucket } : {}),
          ...(typeof input.Key === 'string' ? { 'aws.s3.key': input.Key } : {}),
        },
        () => next(args),
        SpanKind.CLIENT,
      );
    },
    { step: 'initialize', name: 'sluiceTracing' },
  );
}

interface AwsError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const ACCESS_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'AccountProblem',
  'AllAccessDisabled',
  'CredentialsProviderError',
]);

/** One of the storage errors for an SDK failure. */
export function classifyS3Error(err: unknown, uri: string): Error {
  const e = err as AwsError;
  const code = e.name ?? e.Code ?? e.code ?? '';
  const status = e.$metadata?.httpStatusCode;
  if (code === 'NoSuchBucket') return new ObjectNotFoundError(uri, 'bucket', { cause: err });
  if (code === 'NoSuchKey' || code === 'NotFound' || status === 404)
    return new ObjectNotFoundError(uri, 'object', { cause: err });
  if (ACCESS_CODES.has(code) || status === 403 || status === 401) {
    return new StorageAccessError(`the store refused access to ${uri}: ${code || status}`, { cause: err });
  }
  const why = code || (status ? `HTTP ${status}` : e.message) || 'unknown error';
  return new StorageUnavailableError(`object store unavailable for ${uri}: ${why}`, { cause: err });
}

export class S3Store implements ObjectStore {
  readonly kind = 's3' as const;

  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    /** Key prefix of this store inside the bucket, without slashes at either end ('' for the bucket). */
    readonly prefix: string = '',
    readonly meter: StorageMeter = { read: 0, written: 0 },
  ) {}

  private keyOf(key: string): string {
    assertSafeKey(key);
    return joinKey(this.prefix, key);
  }

  uri(key: string): string {
    return `s3://${this.bucket}/${key ? this.keyOf(key) : this.prefix}`;
  }

  localPath(): undefined {
    return undefined;
  }

  view(prefix: string): ObjectStore {
    return new S3Store(this.client, this.bucket, joinKey(this.prefix, prefix), this.meter);
  }

  private async send<T>(key: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw classifyS3Error(err, this.uri(key));
    }
  }

  async put(key: string, body: string | Buffer, opts: PutOptions = {}): Promise<ObjectInfo> {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    const sha256 = opts.sha256 ?? crypto.createHash('sha256').update(buf).digest('hex');
    await this.send(key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.keyOf(key),
          Body: buf,
          ContentLength: buf.length,
          ContentType: opts.contentType,
          Metadata: { sha256 },
        }),
      ),
    );
    this.meter.written += buf.length;
    return { key, bytes: buf.length, sha256 };
  }

  async putFile(key: string, file: string, opts: PutOptions = {}): Promise<ObjectInfo> {
    const bytes = (await fs.promises.stat(file)).size;
    const sha256 = opts.sha256 ?? (await sha256File(file));
    const params = {
      Bucket: this.bucket,
      Key: this.keyOf(key),
      ContentType: opts.contentType,
      Metadata: { sha256 },
    };
    await this.send(key, async () => {
      if (bytes < MULTIPART_BYTES) {
        // A fresh stream per SDK attempt: a retried request must send the body again from the start.
        const body = await fs.promises.readFile(file);
        await this.client.send(new PutObjectCommand({ ...params, Body: body, ContentLength: bytes }));
      } else {
        // Multipart: the object appears only when CompleteMultipartUpload succeeds; a failed upload is aborted.
        await new Upload({
          client: this.client,
          params: { ...params, Body: fs.createReadStream(file) },
          partSize: MULTIPART_BYTES,
          queueSize: 4,
          leavePartsOnError: false,
        }).done();
      }
    });
    this.meter.written += bytes;
    return { key, bytes, sha256 };
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const res = await this.send(key, () =>
      this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.keyOf(key),
          Range: range ? `bytes=${range.start}-${range.end ?? ''}` : undefined,
        }),
      ),
    );
    return metered(res.Body as Readable, this.meter);
  }

  async getBuffer(key: string, range?: ByteRange): Promise<Buffer> {
    const body = await this.get(key, range);
    const chunks: Buffer[] = [];
    try {
      for await (const c of body) chunks.push(c as Buffer);
    } catch (err) {
      throw classifyS3Error(err, this.uri(key));
    }
    return Buffer.concat(chunks);
  }

  async download(key: string, file: string): Promise<ObjectInfo> {
    try {
      const { bytes, sha256 } = await copyAtomic(await this.get(key), file);
      return { key, bytes, sha256 };
    } catch (err) {
      if (err instanceof ObjectNotFoundError || err instanceof StorageAccessError) throw err;
      // A body cut off mid-stream (store restarted, link down) is worth a retry.
      if ((err as { code?: string }).code === 'ENOSPC') throw err;
      throw err instanceof StorageUnavailableError ? err : classifyS3Error(err, this.uri(key));
    }
  }

  /** True when the bucket exists (HEAD answers 404 without saying whether the key or the bucket is missing). */
  async bucketExists(): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch (err) {
      const classified = classifyS3Error(err, `s3://${this.bucket}`);
      if (classified instanceof ObjectNotFoundError) return false;
      throw classified;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }));
      return { key, bytes: res.ContentLength ?? 0, sha256: res.Metadata?.sha256 };
    } catch (err) {
      const classified = classifyS3Error(err, this.uri(key));
      if (classified instanceof ObjectNotFoundError && classified.what === 'object') return undefined;
      throw classified;
    }
  }

  async verify(key: string, bytes: number, sha256: string): Promise<boolean> {
    const info = await this.head(key);
    return info?.bytes === bytes && info.sha256 === sha256;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const full = joinKey(this.prefix, prefix);
    const out: ObjectInfo[] = [];
    await this.send(prefix, async () => {
      const pages = paginateListObjectsV2(
        { client: this.client },
        { Bucket: this.bucket, Prefix: full ? `${full}/` : undefined },
      );
      for await (const page of pages) {
        for (const o of page.Contents ?? []) {
          if (!o.Key) continue;
          const rel = this.prefix ? o.Key.slice(this.prefix.length + 1) : o.Key;
          out.push({ key: rel, bytes: o.Size ?? 0 });
        }
      }
    });
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    await this.send(key, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) })),
    );
  }

  async deletePrefix(prefix: string): Promise<number> {
    const objects = await this.list(prefix);
    for (let i = 0; i < objects.length; i += 1000) {
      const batch = objects.slice(i, i + 1000);
      const res = await this.send(prefix, () =>
        this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((o) => ({ Key: this.keyOf(o.key) })), Quiet: true },
          }),
        ),
      );
      const failed = res.Errors ?? [];
      if (failed.length > 0) {
        throw new StorageUnavailableError(
          `could not delete ${failed.length} object(s) under ${this.uri(prefix)}: ${failed[0]?.Code ?? ''} ${failed[0]?.Message ?? ''}`,
        );
      }
    }
    return objects.length;
  }

  presign(key: string, ttlSeconds: number): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }), {
      expiresIn: ttlSeconds,
    });
  }
}
