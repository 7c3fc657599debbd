/**
 * The `file` backend: a folder on this host, for the embedded default and single-host use.
 * Writes go to a temp name in the same folder, are fsync'd, then renamed: a reader sees the
 * whole object or none of it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { midWriteCrashPoint } from '../crash-point';
import { ObjectNotFoundError, StorageUnwritableError } from './errors';
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

/** Temp files of an unfinished write: hidden from list(). */
const TEMP_NAME = /^\..*\.tmp-[0-9a-f]{8}$/;

const UNWRITABLE = new Set(['ENOSPC', 'EROFS', 'EDQUOT', 'EACCES', 'EPERM']);

function unwritable(err: unknown, where: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return code && UNWRITABLE.has(code)
    ? new StorageUnwritableError(`cannot write ${where}: ${code}`, { cause: err })
    : err;
}

/** Hex SHA-256 of a local file. */
export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Copies `from` to `to` through a temp name, hashing on the way; resolves to bytes and SHA-256. */
export async function copyAtomic(from: Readable, to: string): Promise<{ bytes: number; sha256: string }> {
  await fsp.mkdir(path.dirname(to), { recursive: true });
  const tmp = path.join(path.dirname(to), `.${path.basename(to)}.tmp-${crypto.randomBytes(4).toString('hex')}`);
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  try {
    const out = fs.createWriteStream(tmp);
    await pipeline(from, tap, out);
    const fh = await fsp.open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    midWriteCrashPoint(); // test builds only (SLUICE_TEST_CRASH_HOOKS): a crash that leaves the temp file
    await fsp.rename(tmp, to);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw unwritable(err, to);
  }
  await removeStaleTemps(to);
  return { bytes, sha256: hash.digest('hex') };
}

/**
 * Removes the temp files of earlier writes of `to` (`.<name>.tmp-*`) once it is complete: a
 * writer killed between its temp file and the rename (SIGKILL, OOM, power) leaves one, which no
 * cleanup of the run's `.work/` would reach when `to` is an artifact. A late writer of the same
 * key whose temp file goes fails its rename, as a superseded attempt should.
 */
async function removeStaleTemps(to: string): Promise<void> {
  const dir = path.dirname(to);
  const prefix = `.${path.basename(to)}.tmp-`;
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  await Promise.all(
    names
      .filter((n) => n.startsWith(prefix) && TEMP_NAME.test(n))
      .map((n) => fsp.rm(path.join(dir, n), { force: true }).catch(() => undefined)),
  );
}

export class FileStore implements ObjectStore {
  readonly kind = 'file' as const;

  constructor(
    /** Absolute folder of this store. */
    readonly root: string,
    readonly meter: StorageMeter = { read: 0, written: 0 },
  ) {}

  private pathOf(key: string): string {
    assertSafeKey(key);
    return path.join(this.root, key);
  }

  uri(key: string): string {
    return pathToFileURL(key ? this.pathOf(key) : this.root).href;
  }

  localPath(key: string): string {
    return this.pathOf(key);
  }

  view(prefix: string): ObjectStore {
    return new FileStore(path.join(this.root, joinKey(prefix)), this.meter);
  }

  async put(key: string, body: string | Buffer, opts: PutOptions = {}): Promise<ObjectInfo> {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    const file = this.pathOf(key);
    const { sha256 } = await copyAtomic(bufferStream(buf), file);
    this.meter.written += buf.length;
    return { key, bytes: buf.length, sha256: opts.sha256 ?? sha256 };
  }

  async putFile(key: string, file: string): Promise<ObjectInfo> {
    const target = this.pathOf(key);
    const { bytes, sha256 } = await copyAtomic(fs.createReadStream(file), target);
    this.meter.written += bytes;
    return { key, bytes, sha256 };
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const file = this.pathOf(key);
    const fh = await fsp.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' || err.code === 'ENOTDIR' ? new ObjectNotFoundError(this.uri(key)) : err;
    });
    return metered(fh.createReadStream({ start: range?.start, end: range?.end, autoClose: true }), this.meter);
  }

  async getBuffer(key: string, range?: ByteRange): Promise<Buffer> {
    if (range) {
      const chunks: Buffer[] = [];
      for await (const c of await this.get(key, range)) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    }
    const buf = await fsp.readFile(this.pathOf(key)).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' || err.code === 'ENOTDIR' ? new ObjectNotFoundError(this.uri(key)) : err;
    });
    this.meter.read += buf.length;
    return buf;
  }

  async download(key: string, file: string): Promise<ObjectInfo> {
    const { bytes, sha256 } = await copyAtomic(await this.get(key), file);
    return { key, bytes, sha256 };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const stat = await fsp.stat(this.pathOf(key)).catch(() => undefined);
    return stat?.isFile() ? { key, bytes: stat.size } : undefined;
  }

  async verify(key: string, bytes: number, sha256: string): Promise<boolean> {
    const info = await this.head(key);
    if (info?.bytes !== bytes) return false;
    return (await sha256File(this.pathOf(key)).catch(() => undefined)) === sha256;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const dir = prefix ? this.pathOf(joinKey(prefix)) : this.root;
    const entries = await fsp.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
    const out: ObjectInfo[] = [];
    for (const e of entries) {
      if (!e.isFile() || TEMP_NAME.test(e.name)) continue;
      const full = path.join(e.parentPath, e.name);
      const stat = await fsp.stat(full).catch(() => undefined);
      if (stat) out.push({ key: path.relative(this.root, full).split(path.sep).join('/'), bytes: stat.size });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    await fsp.rm(this.pathOf(key), { force: true });
  }

  async deletePrefix(prefix: string): Promise<number> {
    const dir = this.pathOf(joinKey(prefix));
    const count = (await this.list(prefix)).length;
    await fsp.rm(dir, { recursive: true, force: true });
    return count;
  }

  presign(): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }
}

function bufferStream(buf: Buffer): Readable {
  return Readable.from([buf]);
}
