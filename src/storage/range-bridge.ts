/**
 * Lets ffmpeg read an object in the store by byte ranges, as it reads a local file: a small HTTP
 * server on 127.0.0.1 (one per process) serves each opened object under an unguessable path, and
 * turns every range ffmpeg asks for into ranged GETs of aligned {@link WINDOW_BYTES} windows
 * against the store. A chunk encoder that seeks to its start therefore reads only the part of
 * the source it needs (container index plus its own time range), never the whole source, and
 * the bytes it read are counted. Credentials never leave the process: ffmpeg sees only the
 * loopback URL.
 *
 * Each opened object keeps its most recent windows in memory (at most {@link CACHED_WINDOWS}):
 * a connection is written ahead of what ffmpeg has consumed (the loopback socket buffers take up
 * to a few MB while ffmpeg still flushes its encoder after its last needed byte), and the
 * segments of one chunk are consecutive, so what one segment's connection read ahead is what the
 * next one needs, and the container index is fetched once per chunk.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StorageUnavailableError } from './errors';
import type { ObjectRef } from './index';

/** Largest ranged GET: an open-ended range ffmpeg abandons costs at most this much over-read. */
export const WINDOW_BYTES = 256 * 1024;
/** Bytes a connection gets at once; after that, one window per {@link PACE_MS} (about 50 MB/s). */
const BURST_BYTES = 2 * WINDOW_BYTES;
const PACE_MS = 5;
/** Windows kept per opened object: 32 × 256 KiB = 8 MiB. */
export const CACHED_WINDOWS = 32;

/** An object served to ffmpeg until closed. */
export interface BridgedObject {
  /** `http://127.0.0.1:<port>/<token>`: give this to ffmpeg as its input. */
  url: string;
  size: number;
  /** Bytes fetched from the store for this object so far. */
  bytesRead: () => number;
  /**
   * True when a response to ffmpeg was cut off because the store failed for longer than the
   * bridge waits: ffmpeg may take the cut for the end of the file, so its output is suspect.
   */
  wasCut: () => boolean;
  close: () => void;
}

interface Served {
  ref: ObjectRef;
  size: number;
  read: number;
  cut: boolean;
  /** Recently used windows by index, oldest first (a Map keeps insertion order). */
  windows: Map<number, Promise<Buffer>>;
}

/** How long a window fetch waits out a store that is down before the response is cut. */
export const WINDOW_PATIENCE_MS = 120_000;

/**
 * `fetch()`, retried while the store is unavailable (with the SDK's own retries inside each
 * try), backing off from 0.5 s to 5 s, for at most {@link WINDOW_PATIENCE_MS}.
 */
async function fetchPatiently(fetch: () => Promise<Buffer>, patienceMs: number): Promise<Buffer> {
  const deadline = Date.now() + patienceMs;
  for (let delay = 500; ; delay = Math.min(5_000, delay * 2)) {
    try {
      return await fetch();
    } catch (err) {
      if (!(err instanceof StorageUnavailableError) || Date.now() + delay > deadline) throw err;
      await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random() / 2)));
    }
  }
}

/** Window `index` of `entry`, from its cache or one ranged GET. */
function windowOf(entry: Served, index: number, patienceMs: number): Promise<Buffer> {
  let cached = entry.windows.get(index);
  if (cached) {
    // Most recently used goes last.
    entry.windows.delete(index);
  } else {
    const start = index * WINDOW_BYTES;
    const end = Math.min(entry.size, start + WINDOW_BYTES) - 1;
    cached = fetchPatiently(() => entry.ref.store.getBuffer(entry.ref.key, { start, end }), patienceMs).then((buf) => {
      entry.read += buf.length;
      return buf;
    });
    // A failed fetch is not kept: the next read tries again.
    cached.catch(() => entry.windows.delete(index));
  }
  entry.windows.set(index, cached);
  while (entry.windows.size > CACHED_WINDOWS) entry.windows.delete(entry.windows.keys().next().value as number);
  return cached;
}

function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'invalid' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (m[1] === '') {
    // Suffix range: the last N bytes.
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start > end || start >= size ? 'invalid' : { start, end };
}

export class RangeBridge {
  private server: http.Server | undefined;
  private listening: Promise<number> | undefined;
  private readonly served = new Map<string, Served>();

  /** @param patienceMs How long a window fetch waits out a store outage. @default WINDOW_PATIENCE_MS */
  constructor(private readonly patienceMs = WINDOW_PATIENCE_MS) {}

  /** Serves `ref` (whose size is `size`) until the returned handle is closed. */
  async open(ref: ObjectRef, size: number): Promise<BridgedObject> {
    const port = await this.start();
    const token = crypto.randomBytes(12).toString('hex');
    const entry: Served = { ref, size, read: 0, cut: false, windows: new Map() };
    this.served.set(token, entry);
    return {
      url: `http://127.0.0.1:${port}/${token}`,
      size,
      bytesRead: () => entry.read,
      wasCut: () => entry.cut,
      close: () => {
        entry.windows.clear();
        this.served.delete(token);
      },
    };
  }

  /** Stops the server (worker shutdown). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.listening = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private start(): Promise<number> {
    this.listening ??= new Promise<number>((resolve, reject) => {
      const server = http.createServer((req, res) => void this.handle(req, res));
      server.on('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
      // Never keep a worker alive just for this server.
      server.unref();
      this.server = server;
    });
    return this.listening;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const entry = this.served.get((req.url ?? '').slice(1));
    if (!entry || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404).end();
      return;
    }
    const range = parseRange(req.headers.range, entry.size);
    if (range === 'invalid') {
      res.writeHead(416, { 'content-range': `bytes */${entry.size}` }).end();
      return;
    }
    const { start, end } = range ?? { start: 0, end: entry.size - 1 };
    const headers: http.OutgoingHttpHeaders = {
      'accept-ranges': 'bytes',
      'content-length': entry.size === 0 ? 0 : end - start + 1,
      'content-type': 'application/octet-stream',
    };
    if (range) headers['content-range'] = `bytes ${start}-${end}/${entry.size}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || entry.size === 0) {
      res.end();
      return;
    }
    let closed = false;
    res.on('close', () => (closed = true));
    try {
      let sent = 0;
      for (let pos = start; pos <= end && !closed;) {
        // Pace the read-ahead: ffmpeg closes a connection as soon as it has what it needs (the
        // index, or its time range), but the loopback socket buffers megabytes written before.
        if (sent >= BURST_BYTES) await new Promise((r) => setTimeout(r, PACE_MS));
        const index = Math.floor(pos / WINDOW_BYTES);
        const window = await windowOf(entry, index, this.patienceMs);
        const from = pos - index * WINDOW_BYTES;
        const to = Math.min(window.length, end - index * WINDOW_BYTES + 1);
        pos += to - from;
        sent += to - from;
        if (closed) break;
        if (!res.write(window.subarray(from, to))) {
          await new Promise<void>((resolve) => {
            const done = () => {
              res.off('drain', done).off('close', done);
              resolve();
            };
            res.on('drain', done).on('close', done);
          });
        }
      }
      res.end();
    } catch {
      // The store stayed down past the bridge's patience: cut the response, and remember it,
      // since ffmpeg may read the cut as the end of the file (see BridgedObject.wasCut).
      entry.cut = true;
      res.destroy();
    }
  }
}
