/**
 * A player nobody here wrote plays what the pipeline packaged: the `hls` outputs of a real run,
 * served on 127.0.0.1 with CORS and byte ranges (`sluice serve-artifacts`), are played by hls.js
 * in Debian's headless Chromium (playwright-core, as the UI test drives it) from start to end,
 * with no ERROR event, a forced switch between two levels mid-play, and a played duration equal
 * to the source's within 0.1 s. ffprobe's HLS demuxer reads the same playlists as a second reader.
 * An audio-only source's stream (one audio variant) plays to its end too.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { runProcess } from '../../src/activities/media/ffmpeg';
import { startArtifactServer, type ArtifactServer } from '../../src/cli/serve-artifacts';
import type { VideoPipelineResult } from '../../src/shared/video';
import type { WorkerHost } from '../../src/workers/host';
import { launchChromium, playerRun } from './browser';
import type { TestEnv } from '../helpers/env';

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
