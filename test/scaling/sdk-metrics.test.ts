/**
 * `sluice worker` serves two metric sets on two ports: Sluice's /metrics on SLUICE_METRICS_PORT
 * and the Temporal SDK core's own on SLUICE_SDK_METRICS_PORT (Runtime.install telemetry), and
 * exits 0 on SIGTERM.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/devserver/dev-server';
import { REPO_ROOT, makeTestEnv } from '../helpers/env';

async function scrape(url: string, pattern: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await fetch(url).then(
      (r) => r.text(),
      () => '',
    );
    if (pattern.test(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  return last;
}

describe('worker metric ports', () => {
  it('serves Sluice metrics and SDK core metrics on separate ports', async () => {
    expect(fs.existsSync(path.join(REPO_ROOT, 'dist', 'cli', 'main.js')), 'npm run build first').toBe(true);
    const metricsPort = await freePort();
    const sdkPort = await freePort();
    const t = makeTestEnv('sdk-metrics', {
      SLUICE_METRICS_PORT: String(metricsPort),
      SLUICE_SDK_METRICS_PORT: String(sdkPort),
      SLUICE_SCALE_POLL_MS: '0',
    });
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'sluice'), 'worker', '--tiers', 'critical'], {
      env: { ...process.env, ...t.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const sluice = await scrape(`http://127.0.0.1:${metricsPort}/metrics`, /sluice_activity_slots\{/, 60_000);
      expect(sluice).toMatch(/sluice_activity_slots\{tier="critical"\}/);
      expect(sluice).not.toMatch(/^temporal_/m);
      const sdk = await scrape(`http://127.0.0.1:${sdkPort}/metrics`, /^temporal_\w+/m, 60_000);
      expect(sdk).toMatch(/^temporal_\w+/m);
      expect(sdk).not.toMatch(/^sluice_/m);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
