/**
 * `sluice serve-artifacts [dir]`: serves a folder of artifacts (a run's output on the `file`
 * backend) on 127.0.0.1 with CORS and byte ranges, the way a CDN serves HLS, plus a tiny page
 * that plays a master playlist with hls.js (`/watch?src=master.m3u8`) and one that plays an MPD
 * with shaka-player (`/watch-dash?src=manifest.mpd`). For watching a run on one
 * machine, and for the player tests; not a production server.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

const TYPES: Record<string, string> = {
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.mpd': 'application/dash+xml',
  '.m4s': 'video/iso.segment',
  '.mp4': 'video/mp4',
  '.m4a': 'audio/mp4',
  '.jpg': 'image/jpeg',
  '.vtt': 'text/vtt',
  '.json': 'application/json',
  '.js': 'text/javascript',
  '.html': 'text/html; charset=utf-8',
};

/** Where hls.js's browser build is, when the package is installed (a devDependency). */
export function hlsJsPath(): string | undefined {
  try {
    return require.resolve('hls.js/dist/hls.min.js');
  } catch {
    return undefined;
  }
}

/** Where shaka-player's browser build is, when the package is installed (a devDependency). */
export function shakaPath(): string | undefined {
  try {
    return require.resolve('shaka-player/dist/shaka-player.compiled.js');
  } catch {
    return undefined;
  }
}

/**
 * The DASH watch page (`/watch-dash?src=manifest.mpd`), with shaka-player. It keeps
 * `window.player`, `window.playerErrors` (every shaka `error` event) and `window.variantSwitches`
 * (every `variantchanged` and `adaptation` event, with the new height).
 */
const WATCH_DASH_PAGE = `<!doctype html>
<meta charset="utf-8"><title>sluice: watch (DASH)</title>
<style>body{font:14px sans-serif;margin:2em}video{max-width:100%;background:#000}</style>
<video id="v" controls muted playsinline width="960"></video>
<p id="status">loading…</p>
<script src="/_sluice/shaka-player.compiled.js"></script>
<script>
  const src = new URLSearchParams(location.search).get('src') || 'manifest.mpd';
  const video = document.getElementById('v');
  const status = document.getElementById('status');
  window.playerErrors = [];
  window.variantSwitches = [];
  window.loaded = false;
  if (window.shaka && shaka.Player.isBrowserSupported()) {
    shaka.polyfill.installAll();
    const player = new shaka.Player();
    window.player = player;
    const active = () => (player.getVariantTracks().find((t) => t.active) || {}).height;
    const onSwitch = (type) => () => {
      window.variantSwitches.push({ type, height: active(), at: video.currentTime });
      status.textContent = 'variant ' + active() + 'p';
    };
    player.addEventListener('variantchanged', onSwitch('variantchanged'));
    player.addEventListener('adaptation', onSwitch('adaptation'));
    player.addEventListener('error', (e) => {
      const d = e.detail || {};
      window.playerErrors.push({ code: d.code, category: d.category, severity: d.severity, at: video.currentTime });
      status.textContent = 'error: ' + d.code;
    });
    player.attach(video).then(() => player.load(src)).then(
      () => { window.loaded = true; status.textContent = 'loaded'; },
      (e) => { window.playerErrors.push({ code: e.code, category: e.category, severity: e.severity, at: 0 }); },
    );
  } else {
    video.src = src;
  }
</script>`;

/**
 * The watch page. It keeps what a test (or a curious operator in the console) wants to read:
 * `window.hls`, `window.playerErrors` (every hls.js ERROR event), `window.levelSwitches` and
 * `window.levelLoads` (each media playlist load: live while the run still publishes).
 */
const WATCH_PAGE = `<!doctype html>
<meta charset="utf-8"><title>sluice: watch</title>
<style>body{font:14px sans-serif;margin:2em}video{max-width:100%;background:#000}</style>
<video id="v" controls muted playsinline width="960"></video>
<p id="status">loading…</p>
<script src="/_sluice/hls.min.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  const src = params.get('src') || 'master.m3u8';
  // ?level=N plays level N until told otherwise: it starts there and stays (no switch, so no load
  // is aborted); absent: hls.js chooses.
  const level = params.has('level') ? Number(params.get('level')) : -1;
  const video = document.getElementById('v');
  const status = document.getElementById('status');
  window.playerErrors = [];
  window.levelSwitches = [];
  window.levelLoads = [];
  if (window.Hls && Hls.isSupported()) {
    // From the start, also while the run still publishes (an EVENT playlist: hls.js would
    // otherwise join near its live edge).
    const hls = new Hls({ startLevel: level, startPosition: 0 });
    if (level >= 0) hls.on(Hls.Events.MANIFEST_PARSED, () => { hls.loadLevel = level; });
    window.hls = hls;
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => {
      window.levelSwitches.push({ level: d.level, at: video.currentTime });
      status.textContent = 'level ' + hls.levels[d.level].height + 'p';
    });
    hls.on(Hls.Events.LEVEL_LOADED, (_, d) => {
      window.levelLoads.push({ level: d.level, live: d.details.live, fragments: d.details.fragments.length });
    });
    hls.on(Hls.Events.ERROR, (_, d) => {
      window.playerErrors.push({ type: d.type, details: d.details, fatal: d.fatal, at: video.currentTime });
      status.textContent = 'error: ' + d.details;
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else {
    video.src = src;
  }
</script>`;

export interface ArtifactServer {
  url: string;
  close(): Promise<void>;
}

/** Serves `root` (read-only) with CORS and Range support on `host:port` (0: any free port). */
export async function startArtifactServer(opts: {
  root: string;
  port?: number;
  host?: string;
}): Promise<ArtifactServer> {
  const root = fs.realpathSync(opts.root);
  const hlsJs = hlsJsPath();
  const shaka = shakaPath();
  const server = http.createServer((req, res) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Headers', 'Range');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Length, Content-Range, Accept-Ranges');
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/watch' || url.pathname === '/watch-dash') {
      res
        .writeHead(200, { 'content-type': TYPES['.html']! })
        .end(url.pathname === '/watch' ? WATCH_PAGE : WATCH_DASH_PAGE);
      return;
    }
    let file: string | undefined;
    if (url.pathname === '/_sluice/hls.min.js') file = hlsJs;
    else if (url.pathname === '/_sluice/shaka-player.compiled.js') file = shaka;
    else {
      let rel: string;
      try {
        rel = decodeURIComponent(url.pathname);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const candidate = path.resolve(root, '.' + rel);
      try {
        const real = fs.realpathSync(candidate);
        if (real === root || real.startsWith(root + path.sep)) file = real;
      } catch {
        file = undefined;
      }
    }
    const stat = file ? fs.statSync(file, { throwIfNoEntry: false }) : undefined;
    if (!file || !stat?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = stat.size - 1;
    if (range && (range[1] || range[2])) {
      if (range[1]) {
        start = Number(range[1]);
        if (range[2]) end = Math.min(end, Number(range[2]));
      } else {
        start = Math.max(0, stat.size - Number(range[2]));
      }
      if (start > end || start >= stat.size) {
        res.writeHead(416, { 'content-range': `bytes */${stat.size}` }).end();
        return;
      }
      res.writeHead(206, {
        'content-type': type,
        'content-length': end - start + 1,
        'content-range': `bytes ${start}-${end}/${stat.size}`,
        'accept-ranges': 'bytes',
      });
    } else {
      res.writeHead(200, { 'content-type': type, 'content-length': stat.size, 'accept-ranges': 'bytes' });
    }
    if (req.method === 'HEAD' || stat.size === 0) {
      res.end();
      return;
    }
    fs.createReadStream(file, { start, end }).pipe(res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve);
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.address}:${address.port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
