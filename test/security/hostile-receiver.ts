/**
 * A webhook receiver on 127.0.0.1 that misbehaves on purpose: a raw TCP server (not node:http,
 * which refuses to send most of these answers) whose behaviour is chosen by the request path.
 * Every behaviour ends by itself: endless bodies stop when the client closes or after a bounded
 * number of bytes, slow ones after a bounded time.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** What a behaviour should end in: delivered, or the failure `type` of the delivery. */
export type Expected =
  | 'delivered'
  | 'BadResponse'
  | 'Timeout'
  | 'DownstreamError'
  | 'DownstreamRejected'
  | 'RateLimited'
  | 'NotFound'
  | 'DownstreamUnavailable';

interface Behaviour {
  name: string;
  expected: Expected;
  /** Runs on the socket once the request head has arrived. */
  run(socket: net.Socket): void;
}

const MB = 1024 * 1024;
/** Longest any slow behaviour keeps a socket (the client's timeouts are shorter). */
const SLOW_CAP_MS = 20_000;

function head(status: string, headers: string[] = []): string {
  return `HTTP/1.1 ${status}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
}

/** Writes `total` bytes of filler as fast as the socket takes them, or until it closes. */
function pour(socket: net.Socket, total: number, chunked: boolean): void {
  const block = Buffer.alloc(64 * 1024, 0x61);
  const frame = chunked
    ? Buffer.concat([Buffer.from(`${block.length.toString(16)}\r\n`), block, Buffer.from('\r\n')])
    : block;
  let sent = 0;
  const write = () => {
    while (!socket.destroyed && sent < total) {
      sent += block.length;
      if (!socket.write(frame)) {
        socket.once('drain', write);
        return;
      }
    }
    if (!socket.destroyed) socket.end(chunked ? '0\r\n\r\n' : '');
  };
  write();
}

/** Sends `text` one byte every `everyMs`, for at most SLOW_CAP_MS. */
function trickle(socket: net.Socket, text: string, everyMs: number): void {
  let i = 0;
  const started = Date.now();
  const timer = setInterval(() => {
    if (socket.destroyed || Date.now() - started > SLOW_CAP_MS) {
      clearInterval(timer);
      socket.destroy();
      return;
    }
    socket.write(text[i % text.length] ?? 'x');
    i++;
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

/** Keeps the socket open, silent, for at most SLOW_CAP_MS. */
function hold(socket: net.Socket): void {
  const timer = setTimeout(() => socket.destroy(), SLOW_CAP_MS);
  socket.once('close', () => clearTimeout(timer));
}

export const BEHAVIOURS: readonly Behaviour[] = [
  { name: 'ok', expected: 'delivered', run: (s) => s.end(head('200 OK', ['Content-Length: 2']) + 'ok') },
  { name: 'status-999', expected: 'BadResponse', run: (s) => s.end(head('999 Weird', ['Content-Length: 4']) + 'body') },
  {
    name: 'status-600',
    expected: 'BadResponse',
    run: (s) => s.end(head('600 Beyond', ['Content-Length: 4']) + 'body'),
  },
  {
    name: 'status-205-with-body',
    expected: 'delivered',
    run: (s) => s.end(head('205 Reset Content', ['Content-Length: 4']) + 'body'),
  },
  {
    name: 'switching-protocols-101',
    expected: 'BadResponse',
    run: (s) => {
      s.write(head('101 Switching Protocols', ['Upgrade: websocket', 'Connection: Upgrade']));
      hold(s);
    },
  },
  {
    name: 'continue-100-then-silence',
    expected: 'BadResponse',
    run: (s) => {
      s.write(head('100 Continue'));
      hold(s);
    },
  },
  {
    name: 'early-hints-103-then-200',
    expected: 'delivered',
    run: (s) => s.end(head('103 Early Hints', ['Link: </x>; rel=preload']) + head('200 OK', ['Content-Length: 0'])),
  },
  {
    name: 'huge-body-1000MB',
    expected: 'delivered',
    run: (s) => {
      s.write(head('200 OK', [`Content-Length: ${1000 * MB}`]));
      pour(s, 1000 * MB, false);
    },
  },
  {
    name: 'endless-chunked-body',
    expected: 'delivered',
    run: (s) => {
      s.write(head('200 OK', ['Transfer-Encoding: chunked']));
      pour(s, 4096 * MB, true);
    },
  },
  {
    name: 'huge-error-body-500',
    expected: 'DownstreamError',
    run: (s) => {
      s.write(head('500 Internal Server Error', ['Transfer-Encoding: chunked']));
      pour(s, 4096 * MB, true);
    },
  },
  { name: 'slow-headers', expected: 'Timeout', run: (s) => trickle(s, 'HTTP/1.1 200 OK\r\nX-Slow: ', 500) },
  { name: 'no-answer', expected: 'Timeout', run: (s) => hold(s) },
  {
    name: 'slow-body',
    expected: 'Timeout',
    run: (s) => {
      s.write(head('200 OK', ['Content-Length: 1000000']));
      trickle(s, 'slow', 2500);
    },
  },
  {
    name: 'reset-mid-body',
    expected: 'DownstreamError',
    run: (s) => {
      s.write(head('200 OK', ['Content-Length: 100000']) + 'partial');
      setTimeout(() => s.resetAndDestroy(), 50);
    },
  },
  { name: 'close-before-answer', expected: 'DownstreamError', run: (s) => s.destroy() },
  {
    name: 'short-body-then-close',
    expected: 'DownstreamError',
    run: (s) => s.end(head('200 OK', ['Content-Length: 100']) + 'only ten b'),
  },
  {
    name: 'redirect-loop',
    expected: 'DownstreamRejected',
    run: (s) => s.end(head('302 Found', ['Location: /redirect-loop', 'Content-Length: 0'])),
  },
  {
    name: 'malformed-header',
    expected: 'BadResponse',
    run: (s) => s.end('HTTP/1.1 200 OK\r\nthis header has no colon\r\nContent-Length: 0\r\n\r\n'),
  },
  {
    name: 'chunked-garbage',
    expected: 'BadResponse',
    run: (s) => s.end(head('200 OK', ['Transfer-Encoding: chunked']) + 'zz-not-hex\r\nhello\r\n0\r\n\r\n'),
  },
  { name: 'garbage-status-line', expected: 'BadResponse', run: (s) => s.end('HELLO THERE\r\n\r\n') },
  { name: 'binary-noise', expected: 'BadResponse', run: (s) => s.end(Buffer.from([0, 255, 1, 254, 13, 10, 13, 10])) },
  {
    name: 'header-flood',
    expected: 'BadResponse',
    run: (s) => s.end(`HTTP/1.1 200 OK\r\nX-Flood: ${'f'.repeat(2 * MB)}\r\nContent-Length: 0\r\n\r\n`),
  },
  {
    name: 'conflicting-content-length',
    expected: 'BadResponse',
    run: (s) => s.end(head('200 OK', ['Content-Length: 4', 'Content-Length: 9']) + 'body'),
  },
  {
    name: 'rate-limited-429',
    expected: 'RateLimited',
    run: (s) => s.end(head('429 Too Many Requests', ['Retry-After: 1', 'Content-Length: 0'])),
  },
  { name: 'not-found-404', expected: 'NotFound', run: (s) => s.end(head('404 Not Found', ['Content-Length: 0'])) },
  {
    name: 'unavailable-503',
    expected: 'DownstreamUnavailable',
    run: (s) => s.end(head('503 Service Unavailable', ['Content-Length: 0'])),
  },
];

export interface HostileReceiver {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  close(): Promise<void>;
}

/** Starts the receiver; a request to `/<behaviour name>` gets that behaviour. */
export async function startHostileReceiver(): Promise<HostileReceiver> {
  const byName = new Map(BEHAVIOURS.map((b) => [b.name, b]));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    const onData = (d: Buffer) => {
      buffered += d.toString('latin1');
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buffered.length > 64 * 1024) socket.destroy();
        return;
      }
      socket.off('data', onData);
      // Keep reading (and dropping) the request body so the client is never blocked on writing it.
      socket.on('data', () => undefined);
      const path = /^[A-Z]+ \/([^ ?]*)/.exec(buffered)?.[1] ?? '';
      const behaviour = byName.get(path);
      if (!behaviour) socket.end(head('400 Bad Request', ['Content-Length: 0']));
      else behaviour.run(socket);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
