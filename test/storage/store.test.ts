/**
 * The storage contract on both backends: the `file` folder and a real S3 server (versitygw),
 * never a mock. Ranged reads, atomic visibility, listing and deleting by prefix, presigned GETs
 * with Range, and the four kinds of failure.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { ObjectNotFoundError, StorageAccessError, StorageUnavailableError } from '../../src/storage';
import { FileStore } from '../../src/storage/file';
import { RangeBridge, WINDOW_BYTES } from '../../src/storage/range-bridge';
import { S3Store, createS3Client } from '../../src/storage/s3';
import type { ObjectStore } from '../../src/storage/store';
import { freePort } from '../../src/devserver/dev-server';
import { createBucket, startS3Server } from '../helpers/s3-server';

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

const s3 = inject('s3');
const credentials = { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey };
const client = createS3Client({ endpoint: s3.endpoint, region: 'us-east-1', credentials });

const backends: [string, () => Promise<ObjectStore>][] = [
  [
    'file',
    () =>
      Promise.resolve(new FileStore(fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-store-')), { read: 0, written: 0 })),
  ],
  ['s3', async () => new S3Store(client, await createBucket(s3, 'contract'), 'tenant/prefix')],
];

describe.each(backends)('the %s store', (kind, make) => {
  let store: ObjectStore;
  beforeAll(async () => {
    store = await make();
  });

  it('puts, heads, reads whole and by range', async () => {
    const info = await store.put('a/b/hello.txt', 'hello, world');
    expect(info).toMatchObject({ bytes: 12, sha256: crypto.createHash('sha256').update('hello, world').digest('hex') });
    expect(await store.head('a/b/hello.txt')).toMatchObject({ key: 'a/b/hello.txt', bytes: 12 });
    expect(await store.head('a/b/missing.txt')).toBeUndefined();
    expect(await text(await store.get('a/b/hello.txt'))).toBe('hello, world');
    expect(await text(await store.get('a/b/hello.txt', { start: 7, end: 11 }))).toBe('world');
    expect(await text(await store.get('a/b/hello.txt', { start: 7 }))).toBe('world');
    expect((await store.getBuffer('a/b/hello.txt')).toString()).toBe('hello, world');
    expect(await store.verify('a/b/hello.txt', 12, info.sha256!)).toBe(true);
    expect(await store.verify('a/b/hello.txt', 12, '0'.repeat(64))).toBe(false);
  });

  it('names objects by URI and refuses keys that escape the root', () => {
    expect(store.uri('x/y.mp4')).toMatch(
      kind === 'file' ? /^file:\/\/\/.*\/x\/y\.mp4$/ : /^s3:\/\/contract-[0-9a-f]+\/tenant\/prefix\/x\/y\.mp4$/,
    );
    expect(() => store.uri('../etc/passwd')).toThrow(/not a safe relative key/);
    expect(() => store.uri('/abs')).toThrow(/not a safe relative key/);
  });

  it('uploads a large file whole (multipart on s3) and downloads it byte for byte', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-big-'));
    const big = path.join(dir, 'big.bin');
    fs.writeFileSync(big, crypto.randomBytes(20 * 1024 * 1024 + 123));
    const info = await store.putFile('big/big.bin', big);
    expect(info.bytes).toBe(20 * 1024 * 1024 + 123);
    const back = path.join(dir, 'back.bin');
    const got = await store.download('big/big.bin', back);
    expect(got.sha256).toBe(info.sha256);
    expect(fs.readFileSync(back).equals(fs.readFileSync(big))).toBe(true);
    expect((await store.head('big/big.bin'))?.bytes).toBe(info.bytes);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists and deletes by prefix, leaving other prefixes alone', async () => {
    await store.put('runs/r1/.work/x', 'x');
    await store.put('runs/r1/out.json', '{}');
    await store.put('runs/r10/out.json', '{}');
    expect((await store.list('runs/r1')).map((o) => o.key)).toEqual(['runs/r1/.work/x', 'runs/r1/out.json']);
    expect(await store.deletePrefix('runs/r1/.work')).toBe(1);
    expect((await store.list('runs/r1')).map((o) => o.key)).toEqual(['runs/r1/out.json']);
    expect(await store.deletePrefix('runs/r1')).toBe(1);
    expect((await store.list('runs')).map((o) => o.key)).toEqual(['runs/r10/out.json']);
  });

  it('a missing object is ObjectNotFoundError naming its URI', async () => {
    const err = await store.get('nope/missing.bin').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectNotFoundError);
    expect((err as Error).message).toContain(store.uri('nope/missing.bin'));
  });

  it('serves an object to HTTP range readers (ffmpeg) through the bridge, counting what it read', async () => {
    const payload = crypto.randomBytes(5 * 1024 * 1024);
    await store.put('bridge/source.bin', payload);
    const bridge = new RangeBridge();
    const served = await bridge.open(
      { store, key: 'bridge/source.bin', uri: store.uri('bridge/source.bin') },
      payload.length,
    );
    try {
      const res = await fetch(served.url, { headers: { range: 'bytes=1000-1999' } });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes 1000-1999/${payload.length}`);
      expect(Buffer.from(await res.arrayBuffer()).equals(payload.subarray(1000, 2000))).toBe(true);
      // Whole aligned windows are fetched, and kept: a second range in the same window costs nothing.
      expect(served.bytesRead()).toBe(WINDOW_BYTES);
      const again = await fetch(served.url, { headers: { range: 'bytes=5000-5009' } });
      expect(Buffer.from(await again.arrayBuffer()).equals(payload.subarray(5000, 5010))).toBe(true);
      expect(served.bytesRead()).toBe(WINDOW_BYTES);
      const whole = await fetch(served.url);
      expect(Buffer.from(await whole.arrayBuffer()).equals(payload)).toBe(true);
      expect((await fetch(served.url, { headers: { range: `bytes=${payload.length + 5}-` } })).status).toBe(416);
    } finally {
      served.close();
      await bridge.close();
    }
  });
});

describe('the file store after a writer was killed mid-write', () => {
  it('removes the temp file the killed writer left once the object is written again, and only that one', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-store-'));
    const store = new FileStore(root);
    fs.mkdirSync(path.join(root, 'run'), { recursive: true });
    // What a writer killed between its temp file and its rename leaves, and another key's temp.
    fs.writeFileSync(path.join(root, 'run', '.report.csv.tmp-0badf00d'), 'half');
    fs.writeFileSync(path.join(root, 'run', '.report.json.tmp-0badf00d'), 'other key');
    await store.put('run/report.csv', 'a,b\n1,2\n');
    expect(fs.readdirSync(path.join(root, 'run')).sort()).toEqual(['.report.json.tmp-0badf00d', 'report.csv']);
    expect(fs.readFileSync(path.join(root, 'run', 'report.csv'), 'utf8')).toBe('a,b\n1,2\n');
  });
});

describe('the range bridge when the store goes away', () => {
  it('cuts the response after its patience, and says so (ffmpeg may take a cut for the end of the file)', async () => {
    const server = await startS3Server({ port: await freePort() });
    const c = createS3Client({
      endpoint: server.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
      maxAttempts: 1,
    });
    const store = new S3Store(c, await createBucket(server, 'cut'));
    const payload = crypto.randomBytes(3 * WINDOW_BYTES);
    await store.put('source.bin', payload);
    const bridge = new RangeBridge(1_000);
    const served = await bridge.open({ store, key: 'source.bin', uri: store.uri('source.bin') }, payload.length);
    try {
      // The first window is fetched and cached; then the store stops.
      const first = await fetch(served.url, { headers: { range: 'bytes=0-99' } });
      expect((await first.arrayBuffer()).byteLength).toBe(100);
      expect(served.wasCut()).toBe(false);
      await server.stop();
      const res = await fetch(served.url, { headers: { range: `bytes=0-` } });
      expect(res.status).toBe(206);
      // The body ends early (an error, or fewer bytes than announced), and the bridge remembers.
      const got = await res.arrayBuffer().then(
        (b) => b.byteLength,
        () => -1,
      );
      expect(got).not.toBe(payload.length);
      expect(served.wasCut()).toBe(true);
    } finally {
      served.close();
      await bridge.close();
      c.destroy();
    }
  });
});

describe('the s3 store against a real server', () => {
  it('presigns a GET that honours Range (206) and expires', async () => {
    const store = new S3Store(client, await createBucket(s3, 'presign'));
    await store.put('clip.bin', Buffer.from('0123456789'));
    const url = await store.presign('clip.bin', 60);
    const res = await fetch(url, { headers: { range: 'bytes=2-5' } });
    expect(res.status).toBe(206);
    expect(await res.text()).toBe('2345');
    expect(new URL(url).searchParams.get('X-Amz-Expires')).toBe('60');
  });

  it('a multipart upload is invisible until it completes', async () => {
    const store = new S3Store(client, await createBucket(s3, 'atomic'));
    const key = 'big/atomic.bin';
    const size = 40 * 1024 * 1024;
    const upload = new Upload({
      client,
      params: { Bucket: store.bucket, Key: key, Body: crypto.randomBytes(size) },
      partSize: 5 * 1024 * 1024,
      queueSize: 1,
    });
    const seen = new Set<number | undefined>();
    let done = false;
    const finished = upload.done().then(() => (done = true));
    while (!done) {
      seen.add((await store.head(key))?.bytes);
      await new Promise((r) => setTimeout(r, 20));
    }
    await finished;
    // Only "absent" or the whole object, never a part of it.
    for (const bytes of seen) expect([undefined, size]).toContain(bytes);
    expect((await store.head(key))?.bytes).toBe(size);
  });

  it('a bucket that does not exist, refused credentials and an unreachable store each get their own error', async () => {
    const missing = new S3Store(client, 'no-such-bucket-' + crypto.randomBytes(3).toString('hex'));
    const e1 = await missing.get('x').catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ObjectNotFoundError);
    expect((e1 as ObjectNotFoundError).what).toBe('bucket');

    const wrongKey = createS3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      credentials: { ...credentials, secretAccessKey: 'wrong' },
    });
    const bucket = await createBucket(s3, 'denied');
    const e2 = await new S3Store(wrongKey, bucket).put('x', 'y').catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(StorageAccessError);

    const nowhere = createS3Client({
      endpoint: `http://127.0.0.1:${await freePort()}`,
      region: 'us-east-1',
      credentials,
      maxAttempts: 1,
    });
    const e3 = await new S3Store(nowhere, bucket).put('x', 'y').catch((e: unknown) => e);
    expect(e3).toBeInstanceOf(StorageUnavailableError);
  });
});

afterAll(() => client.destroy());
