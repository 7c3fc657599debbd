/**
 * A player nobody here wrote plays what the pipeline packaged: the `hls` outputs of a real run,
 * served on 127.0.0.1 with CORS and byte ranges (`sluice serve-artifacts`), are played by hls.js
 * in Debian's headless Chromium (playwright-core, as the UI test drives it) from start to end,
 * with no ERROR event, a forced switch between two levels mid-play, and a played duration equal
 * to the source's within 0.1 s. ffprobe's HLS demuxer reads the same playlists as a second reader.
 * An audio-only source's stream (one audio variant) plays to its end too.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { runProcess } from '../../src/activities/media/ffmpeg';
import { createApiServer, listen } from '../../src/api/server';
import { parseMediaPlaylist } from '../../src/activities/media/package';
import { startArtifactServer, type ArtifactServer } from '../../src/cli/serve-artifacts';
import type { VideoPipelineResult } from '../../src/shared/video';
import type { WorkerHost } from '../../src/workers/host';
import { launchChromium, playerRun } from './browser';
import { sampleVideo, type TestEnv } from '../helpers/env';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let server: ArtifactServer;
let browser: BrowserContext | undefined;
let page: Page;
let result: VideoPipelineResult;
let sourceDurationSec: number;

beforeAll(async () => {
  ({ t, host, client, result } = await playerRun('player'));
  sourceDurationSec = result.sourceDurationSec;
  server = await startArtifactServer({ root: path.dirname(result.stream!.master.path!) });
  ({ browser, page } = await launchChromium());
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await client?.close();
  await host?.shutdown();
});

interface PlayerState {
  errors: { type: string; details: string; fatal: boolean }[];
  switches: { level: number; at: number }[];
  levels: { height: number }[];
  currentTime: number;
  duration: number;
  ended: boolean;
  played: [number, number][];
}

// Page code runs in the browser: passed as source text (this project compiles without the DOM lib).
const STATE = `(() => {
  const video = document.querySelector('video');
  const played = [];
  for (let i = 0; i < video.played.length; i++) played.push([video.played.start(i), video.played.end(i)]);
  return {
    errors: window.playerErrors,
    switches: window.levelSwitches,
    levels: (window.hls ? window.hls.levels : []).map((l) => ({ height: l.height })),
    currentTime: video.currentTime,
    duration: video.duration,
    ended: video.ended,
    played,
  };
})()`;
const state = (p: Page): Promise<PlayerState> => p.evaluate<PlayerState>(STATE);

describe('hls.js in headless Chromium', () => {
  it('the server answers ranges with 206 and CORS headers', async () => {
    const init = `${server.url}/hls/240p/init.mp4`;
    const res = await fetch(init, { headers: { Range: 'bytes=0-15', Origin: 'http://example.test' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('content-range')).toMatch(/^bytes 0-15\/\d+$/);
    expect((await res.arrayBuffer()).byteLength).toBe(16);
  });

  it('plays the master playlist start to end with no ERROR event, through a forced level switch', async () => {
    // Play the lowest level (started and kept there by the page, not a forced switch: setting
    // currentLevel while hls.js loads its first fragment aborts that load, a non-fatal ERROR seen
    // under CPU load).
    await page.goto(`${server.url}/watch?src=master.m3u8&level=0`, { waitUntil: 'load' });
    await page.waitForFunction('window.hls && window.hls.levels.length === 2', undefined, { timeout: 30_000 });
    await page.evaluate(`document.querySelector('video').play()`);
    await page.waitForFunction(`document.querySelector('video').currentTime > 3`, undefined, { timeout: 30_000 });
    const before = await state(page);
    // Force the switch to the other level mid-play (at the next segment: hls.js keeps the buffer).
    await page.evaluate('window.hls.nextLevel = 1');
    await page.waitForFunction('window.levelSwitches.some((s) => s.level === 1)', undefined, { timeout: 30_000 });
    const switched = await state(page);
    await page.waitForFunction(`document.querySelector('video').ended`, undefined, { timeout: 60_000 });
    const end = await state(page);

    expect(end.errors).toEqual([]);
    expect(end.levels.map((l) => l.height)).toEqual([240, 360]);
    // The switch to level 1 happened after playback had passed 3 s, and playback went on to the end.
    const toOne = end.switches.find((s) => s.level === 1)!;
    expect(before.currentTime).toBeGreaterThan(3);
    expect(toOne.at).toBeGreaterThanOrEqual(before.currentTime - 0.5);
    expect(end.currentTime).toBeGreaterThan(switched.currentTime);
    expect(end.ended).toBe(true);
    // Played from start to end: one range, from 0, as long as the source.
    const played = end.played;
    expect(played.length).toBeGreaterThanOrEqual(1);
    const first = played[0]!;
    const last = played.at(-1)!;
    expect(first[0]).toBeLessThan(0.1);
    expect(Math.abs(last[1] - first[0] - sourceDurationSec)).toBeLessThanOrEqual(0.1);
    expect(Math.abs(end.duration - sourceDurationSec)).toBeLessThanOrEqual(0.1);
  });

  it('plays an audio-only stream (a lavfi tone, no video) start to end with no ERROR event', async () => {
    execFileSync(t.binaries.ffmpeg, [
      ...['-hide_banner', '-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
      ...['-t', '6', '-c:a', 'aac', path.join(t.mediaRoot, 'tone.m4a')],
    ]);
    const { workflowId } = await client.startVideoPipeline({
      source: 'tone.m4a',
      segmentSeconds: 2,
      tenant: 'player',
      idempotencyKey: `player-tone-${t.suffix}`,
    });
    const tone = await client.getResult<VideoPipelineResult>(workflowId);
    expect(tone.stream!.renditions).toEqual([]);
    const toneServer = await startArtifactServer({ root: path.dirname(tone.stream!.master.path!) });
    try {
      await page.goto(`${toneServer.url}/watch?src=master.m3u8`, { waitUntil: 'load' });
      await page.waitForFunction('window.hls && window.hls.levels.length === 1', undefined, { timeout: 30_000 });
      await page.evaluate(`document.querySelector('video').play()`);
      await page.waitForFunction(`document.querySelector('video').ended`, undefined, { timeout: 60_000 });
      const end = await state(page);
      expect(end.errors).toEqual([]);
      const first = end.played[0]!;
      const last = end.played.at(-1)!;
      console.log(
        `hls.js audio-only: played ${first[0].toFixed(3)}-${last[1].toFixed(3)} s, source ${tone.sourceDurationSec} s`,
      );
      expect(first[0]).toBeLessThan(0.1);
      expect(Math.abs(last[1] - first[0] - tone.sourceDurationSec)).toBeLessThanOrEqual(0.1);
    } finally {
      await toneServer.close();
    }
  });

  it('plays a run from its start while the run still publishes, on to its end, the playlists only ever growing', async () => {
    // 30 one-segment chunks of two renditions, one sub-job at a time: the run takes a while, and
    // its stream is playable after the audio and both renditions' first chunks.
    const source = await sampleVideo(t, { seconds: 30, width: 640, height: 360, fps: 15, name: 'long.mp4' });
    const { workflowId } = await client.startVideoPipeline({
      source,
      renditions: ['240p', '360p'],
      segmentSeconds: 2,
      chunkSeconds: 2,
      window: 1,
      thumbnails: 0,
      tenant: 'player',
      idempotencyKey: `player-live-${t.suffix}`,
    });
    // Read through the HTTP API, as an app would: GET /v1/pipelines/:id names the playback URL
    // in its progress as soon as the stream plays.
    const api = createApiServer({ client, bodyLimitBytes: 65_536 });
    const base = `http://127.0.0.1:${await listen(api, 0)}/v1/pipelines/${encodeURIComponent(workflowId)}`;
    const status = async () =>
      (await (await fetch(base)).json()) as {
        status: string;
        playbackUrl?: string;
        progress?: { playbackUrl?: string };
      };
    const deadline = Date.now() + 120_000;
    let playbackUrl: string | undefined;
    let firstSeen: Awaited<ReturnType<typeof status>> | undefined;
    while (!playbackUrl && Date.now() < deadline) {
      firstSeen = await status();
      playbackUrl = firstSeen.playbackUrl;
      if (!playbackUrl) await new Promise((r) => setTimeout(r, 100));
    }
    expect(playbackUrl).toMatch(/^file:\/\/.*\/master\.m3u8$/);
    expect(firstSeen).toMatchObject({ status: 'RUNNING', progress: { playbackUrl } });
    expect((await client.getProgress(workflowId)).playbackUrl).toBe(playbackUrl);
    const root = path.dirname(fileURLToPath(playbackUrl!));
    const liveServer = await startArtifactServer({ root });
    // Every look at the store while the run goes: each playlist names only segments already there,
    // from seg-00000 with no gap, and each look's list is a prefix of the next one's.
    const seen: Record<string, string[]> = { '240p': [], '360p': [] };
    let looks = 0;
    const problems: string[] = [];
    const look = () => {
      for (const name of Object.keys(seen)) {
        const file = path.join(root, 'hls', name, 'playlist.m3u8');
        if (!fs.existsSync(file)) continue;
        const files = parseMediaPlaylist(fs.readFileSync(file, 'utf8')).map((s) => s.file);
        const inOrder = files.every((f, i) => f === `seg-${String(i).padStart(5, '0')}.m4s`);
        if (!inOrder) problems.push(`${name}: not in order from seg-00000: ${files.join(' ')}`);
        const missing = files.filter((f) => !fs.existsSync(path.join(root, 'hls', name, f)));
        if (missing.length > 0) problems.push(`${name}: names segments not in the store: ${missing.join(' ')}`);
        if (files.slice(0, seen[name]!.length).join() !== seen[name]!.join()) {
          problems.push(`${name}: ${seen[name]!.length} segments became ${files.length}, not by appending`);
        }
        seen[name] = files;
      }
      looks++;
    };
    const watcher = setInterval(look, 200);
    try {
      look();
      expect((await client.getStatus(workflowId)).status).toBe('RUNNING');
      await page.goto(`${liveServer.url}/watch?src=master.m3u8`, { waitUntil: 'load' });
      await page.evaluate(`document.querySelector('video').play()`);
      await page.waitForFunction(`document.querySelector('video').ended`, undefined, { timeout: 150_000 });
      const end = await state(page);
      const loads = await page.evaluate<{ live: boolean; fragments: number }[]>('window.levelLoads');
      const result = await client.getResult<VideoPipelineResult>(workflowId);
      console.log(
        `hls.js while publishing: first playlist load ${JSON.stringify(loads[0])}, ${loads.length} loads, ${looks} looks at the store, errors ${JSON.stringify(end.errors)}`,
      );
      // The player's first look was at a stream still being published (an EVENT playlist with
      // no end yet), and it played on from 0 to the source's end.
      expect(problems).toEqual([]);
      expect(looks).toBeGreaterThan(1);
      expect(loads[0]).toMatchObject({ live: true });
      expect(loads[0]!.fragments).toBeLessThan(result.stream!.renditions[0]!.segments);
      // Catching up with the encoder may stall the player (a non-fatal bufferStalledError); nothing else.
      expect(end.errors.filter((e) => e.fatal || e.details !== 'bufferStalledError')).toEqual([]);
      const first = end.played[0]!;
      const last = end.played.at(-1)!;
      expect(first[0]).toBeLessThan(0.1);
      expect(Math.abs(last[1] - first[0] - result.sourceDurationSec)).toBeLessThanOrEqual(0.1);
      // The result names what plays (so does the API once the run is over), and the playlists
      // ended with what the run measured.
      expect(result.playbackUrl).toBe(playbackUrl);
      expect(await status()).toMatchObject({ status: 'COMPLETED', playbackUrl });
      for (const r of result.stream!.renditions) {
        const text = fs.readFileSync(r.path!, 'utf8');
        expect(text.trimEnd().endsWith('#EXT-X-ENDLIST')).toBe(true);
        expect(parseMediaPlaylist(text)).toHaveLength(r.segments);
      }
    } finally {
      clearInterval(watcher);
      await liveServer.close();
      await new Promise<void>((resolve) => api.close(() => resolve()));
    }
  });

  it('ffprobe reads the master and every media playlist as a second reader', async () => {
    const stream = result.stream!;
    for (const playlist of [stream.master, ...stream.renditions, stream.audio!]) {
      const { stdout } = await runProcess(t.binaries.ffprobe, [
        '-v',
        'error',
        '-show_entries',
        'format=duration',
        '-of',
        'csv=p=0',
        playlist.path!,
      ]);
      expect(Math.abs(Number(stdout.trim()) - sourceDurationSec)).toBeLessThan(0.2);
    }
  });
});
