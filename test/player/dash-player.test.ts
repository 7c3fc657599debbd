/**
 * A second player nobody here wrote plays what the pipeline packaged: the outputs of a real run
 * with `package: 'both'` (an HLS master playlist and a DASH MPD over one set of CMAF segments),
 * served on 127.0.0.1 with CORS and byte ranges (`sluice serve-artifacts`), are played from the
 * MPD by shaka-player in Debian's headless Chromium (playwright-core, as the hls.js test does)
 * from start to end, with no error event, a forced switch between two variants mid-play, and a
 * played duration equal to the source's within 0.1 s. ffprobe's DASH demuxer reads the same MPD
 * as a second reader.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SluiceClient } from '../../src/client';
import { runProcess } from '../../src/activities/media/ffmpeg';
import { startArtifactServer, type ArtifactServer } from '../../src/cli/serve-artifacts';
import type { VideoPipelineResult } from '../../src/shared/video';
import type { WorkerHost } from '../../src/workers/host';
import { launchChromium, playerRun } from './browser';
import { listFiles, type TestEnv } from '../helpers/env';

let t: TestEnv;
let host: WorkerHost;
let client: SluiceClient;
let server: ArtifactServer;
let browser: BrowserContext | undefined;
let page: Page;
let result: VideoPipelineResult;
let runDir: string;
let sourceDurationSec: number;

beforeAll(async () => {
  ({ t, host, client, result } = await playerRun('dash-player', 'both'));
  sourceDurationSec = result.sourceDurationSec;
  runDir = path.dirname(result.stream!.mpd!.path!);
  server = await startArtifactServer({ root: runDir });
  ({ browser, page } = await launchChromium());
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await client?.close();
  await host?.shutdown();
});

interface PlayerState {
  errors: { code: number; category: number; severity: number }[];
  switches: { type: string; height: number; at: number }[];
  variants: { height: number; bandwidth: number }[];
  videoHeight: number;
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
    switches: window.variantSwitches,
    variants: (window.player ? window.player.getVariantTracks() : []).map((v) => ({ height: v.height, bandwidth: v.bandwidth })),
    videoHeight: video.videoHeight,
    currentTime: video.currentTime,
    duration: video.duration,
    ended: video.ended,
    played,
  };
})()`;
const state = (p: Page): Promise<PlayerState> => p.evaluate<PlayerState>(STATE);

describe('package both: one set of CMAF segments under an HLS master playlist and a DASH MPD', () => {
  it('writes master.m3u8 and manifest.mpd, the MPD naming only segments that are there', () => {
    const stream = result.stream!;
    expect(stream.package).toBe('both');
    expect(stream.master.path).toBe(path.join(runDir, 'master.m3u8'));
    expect(stream.mpd?.path).toBe(path.join(runDir, 'manifest.mpd'));
    const files = listFiles(runDir);
    expect(files.filter((f) => !f.startsWith('hls/'))).toEqual([
      'manifest.json',
      'manifest.mpd',
      'master.m3u8',
      'sprite.jpg',
      'sprite.vtt',
    ]);
    const mpd = fs.readFileSync(stream.mpd!.path!, 'utf8');
    // Every representation's template resolves to the segments the HLS media playlists list.
    for (const name of ['240p', '360p', 'audio']) {
      expect(mpd).toContain(`initialization="hls/${name}/init.mp4" media="hls/${name}/seg-$Number%05d$.m4s"`);
      const listed = fs
        .readFileSync(path.join(runDir, 'hls', name, 'playlist.m3u8'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('seg-'));
      expect(listed.length).toBeGreaterThanOrEqual(5);
      for (const seg of listed) expect(files).toContain(`hls/${name}/${seg}`);
    }
    // Measured attributes, as in the master playlist.
    for (const r of stream.renditions) {
      expect(mpd).toContain(
        `<Representation id="${r.name}" bandwidth="${Math.ceil(r.peakBitsPerSec)}" codecs="${r.codecs}" width="${r.width}" height="${r.height}" frameRate="15"`,
      );
    }
    expect(mpd).toContain(`codecs="mp4a.40.2"`);
    const manifest = JSON.parse(fs.readFileSync(result.manifest.path!, 'utf8')) as { package: string; mpd?: unknown };
    expect(manifest.package).toBe('both');
    expect(manifest.mpd).toBeDefined();
  });

  it('shaka-player plays the MPD start to end with no error event, through a forced variant switch', async () => {
    await page.goto(`${server.url}/watch-dash?src=manifest.mpd`, { waitUntil: 'load' });
    await page.waitForFunction('window.loaded === true || window.playerErrors.length > 0', undefined, {
      timeout: 30_000,
    });
    expect((await state(page)).errors).toEqual([]);
    // Start on the lowest variant, ABR off so only the forced switch changes it.
    await page.evaluate(`(() => {
      const player = window.player;
      player.configure({ abr: { enabled: false } });
      const low = player.getVariantTracks().sort((a, b) => a.height - b.height)[0];
      player.selectVariantTrack(low, true);
      document.querySelector('video').play();
    })()`);
    await page.waitForFunction(`document.querySelector('video').currentTime > 3`, undefined, { timeout: 30_000 });
    const before = await state(page);
    expect(before.videoHeight).toBe(240);
    // Force the switch to the other variant mid-play. shaka has the whole 10 s buffered by now,
    // so the switch clears what is buffered past a 1 s safe margin and plays on from there.
    await page.evaluate(`(() => {
      const player = window.player;
      const high = player.getVariantTracks().sort((a, b) => b.height - a.height)[0];
      player.selectVariantTrack(high, true, 1);
    })()`);
    // The switch reaches the picture: the decoded frames are 360 lines high.
    await page.waitForFunction(`document.querySelector('video').videoHeight === 360`, undefined, {
      timeout: 30_000,
    });
    const switched = await state(page);
    await page.waitForFunction(`document.querySelector('video').ended`, undefined, { timeout: 60_000 });
    const end = await state(page);

    expect(end.errors).toEqual([]);
    expect(end.variants.map((v) => v.height).sort((a, b) => a - b)).toEqual([240, 360]);
    expect(end.switches.some((s) => s.type === 'variantchanged' && s.height === 360)).toBe(true);
    expect(switched.currentTime).toBeGreaterThan(before.currentTime);
    expect(end.currentTime).toBeGreaterThan(switched.currentTime);
    expect(end.ended).toBe(true);
    const played = end.played;
    expect(played.length).toBeGreaterThanOrEqual(1);
    const first = played[0]!;
    const last = played.at(-1)!;
    expect(first[0]).toBeLessThan(0.1);
    console.log(
      `shaka-player: played ${first[0].toFixed(3)}-${last[1].toFixed(3)} s, duration ${end.duration.toFixed(3)} s, source ${sourceDurationSec.toFixed(3)} s, switch to 360p by ${switched.currentTime.toFixed(2)} s`,
    );
    expect(Math.abs(last[1] - first[0] - sourceDurationSec)).toBeLessThanOrEqual(0.1);
    expect(Math.abs(end.duration - sourceDurationSec)).toBeLessThanOrEqual(0.1);
  });

  it("ffprobe's DASH demuxer reads the MPD as a second reader", async () => {
    const { stdout } = await runProcess(t.binaries.ffprobe, [
      '-v',
      'error',
      '-show_entries',
      'stream=codec_type,width,height:format=duration',
      '-of',
      'json',
      result.stream!.mpd!.path!,
    ]);
    const probed = JSON.parse(stdout) as {
      streams: { codec_type: string; width?: number; height?: number }[];
      format: { duration: string };
    };
    const sizes = probed.streams.filter((s) => s.codec_type === 'video').map((s) => `${s.width}x${s.height}`);
    expect(new Set(sizes)).toEqual(new Set(['426x240', '640x360']));
    expect(probed.streams.some((s) => s.codec_type === 'audio')).toBe(true);
    console.log(`ffprobe (dash demuxer): duration ${probed.format.duration} s, source ${sourceDurationSec} s`);
    expect(Math.abs(Number(probed.format.duration) - sourceDurationSec)).toBeLessThan(0.2);
  });
});
