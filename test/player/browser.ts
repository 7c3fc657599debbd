/**
 * Debian's headless Chromium driven by playwright-core, as the player tests use it: a fresh
 * profile, autoplay allowed (the players start without a user gesture), nothing run in the
 * background. Chromium is installed by scripts/ci-deps.sh.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { SluiceClient } from '../../src/client';
import type { VideoPipelineResult } from '../../src/shared/video';
import type { WorkerHost } from '../../src/workers/host';
import { connectClient, makeTestEnv, sampleVideo, startHost, type TestEnv } from '../helpers/env';

const CHROMIUM = '/usr/bin/chromium';

/** A headless Chromium with one page. */
export async function launchChromium(): Promise<{ browser: BrowserContext; page: Page }> {
  const browser = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  return { browser, page: browser.pages()[0] ?? (await browser.newPage()) };
}

/** What a player test plays: a finished run of a 10 s 640×360 lavfi video to 240p and 360p in 2 s segments. */
export interface PlayerRun {
  t: TestEnv;
  host: WorkerHost;
  client: SluiceClient;
  result: VideoPipelineResult;
}

/** Starts a worker host and a client on a fresh test env and runs the video pipeline to its end. */
export async function playerRun(name: string, pkg?: 'hls' | 'both'): Promise<PlayerRun> {
  const t = makeTestEnv(name);
  const source = await sampleVideo(t, { seconds: 10, width: 640, height: 360, fps: 15 });
  const host = await startHost(t, ['default']);
  const client = await connectClient(t);
  const { workflowId } = await client.startVideoPipeline({
    source,
    renditions: ['240p', '360p'],
    ...(pkg ? { package: pkg } : {}),
    segmentSeconds: 2,
    thumbnails: 0,
    tenant: 'player',
    idempotencyKey: `${name}-${t.suffix}`,
  });
  return { t, host, client, result: await client.getResult<VideoPipelineResult>(workflowId) };
}
