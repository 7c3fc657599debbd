/**
 * Debian's headless Chromium driven by playwright-core, as the player tests use it: a fresh
 * profile, autoplay allowed (the players start without a user gesture), nothing run in the
 * background. Chromium is installed by scripts/ci-deps.sh.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

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
