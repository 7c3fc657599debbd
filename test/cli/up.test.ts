/**
 * The main job, `sluice up --once` (what `npm start` runs, with a short demo video): on the
 * embedded path it starts its own dev server with a SQLite file and the search attributes,
 * workers for every tier, runs the demo pipeline and exits 0; with TEMPORAL_ADDRESS it starts
 * no server and uses that cluster.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { freePort, isPortOpen } from '../../src/devserver/dev-server';
import { REPO_ROOT, makeTestEnv, type TestEnv } from '../helpers/env';

function up(t: TestEnv, env: NodeJS.ProcessEnv, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'sluice'), 'up', ...args], {
      cwd: t.dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('sluice up --once', () => {
  it('starts the embedded dev server with a SQLite file, runs the demo and exits 0', async () => {
    const t = makeTestEnv('up-embedded');
    const port = await freePort();
    const uiPort = await freePort();
    const { TEMPORAL_ADDRESS: _remote, ...embedded } = t.env;
    const run = await up(
      t,
      {
        ...embedded,
        SLUICE_MEDIA_ROOT: t.dir,
        SLUICE_DEV_SERVER_PORT: String(port),
        SLUICE_DEV_UI_PORT: String(uiPort),
      },
      ['--once', '--demo-seconds', '4'],
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(`starting the Temporal dev server on 127.0.0.1:${port}`);
    expect(run.stderr).toMatch(new RegExp(`Temporal UI: http://127\\.0\\.0\\.1:${uiPort}`));
    expect(run.stderr).toMatch(/completed video:demo:demo-\d+/);
    // The demo produces an HLS stream (the default package): a master playlist on disk, and each
    // rendition of the 720p source with its measured size and bitrate.
    const master = /master playlist \(HLS\): (\S+master\.m3u8)/.exec(run.stderr)?.[1];
    expect(master, run.stderr).toBeDefined();
    const playlist = fs.readFileSync(master as string, 'utf8');
    expect(playlist).toMatch(/^#EXTM3U/);
    for (const [r, size] of [
      ['240p', '426x240'],
      ['360p', '640x360'],
      ['480p', '854x480'],
      ['720p', '1280x720'],
    ]) {
      expect(run.stderr).toMatch(
        new RegExp(`${r}\\s+${size}\\s+\\d+ segments of 4 s\\s+\\d+\\.\\d\\d MB\\s+\\d+ kb/s avg`),
      );
      expect(playlist).toContain(`RESOLUTION=${size}`);
    }
    expect(run.stderr).toMatch(/watch it: sluice serve-artifacts /);
    // What a player loads (on the file store, the master's URI).
    expect(run.stderr).toContain(`playback URL: ${pathToFileURL(master as string).href}`);
    expect(run.stderr).toMatch(
      /UI: http:\/\/127\.0\.0\.1:\d+\/namespaces\/default\/workflows\/video%3Ademo%3Ademo-\d+/,
    );
    expect(fs.statSync(path.join(t.dir, 'data', 'temporal.sqlite')).size).toBeGreaterThan(0);
    // The server is stopped again on exit.
    expect(await isPortOpen(port)).toBe(false);
  });

  it('with TEMPORAL_ADDRESS, starts no server and runs against that cluster', async () => {
    const t = makeTestEnv('up-remote');
    const port = await freePort();
    const run = await up(t, { ...t.env, SLUICE_MEDIA_ROOT: t.dir, SLUICE_DEV_SERVER_PORT: String(port) }, [
      '--once',
      '--demo-seconds',
      '3',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toContain('starting the Temporal dev server');
    expect(run.stderr).toMatch(/completed video:demo:demo-\d+/);
    expect(fs.existsSync(path.join(t.dir, 'data', 'temporal.sqlite'))).toBe(false);
  });

  it('rejects a bad --demo-seconds with exit 2', async () => {
    const t = makeTestEnv('up-bad');
    const run = await up(t, t.env, ['--once', '--demo-seconds', '0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/demo-seconds: must be a whole number/);
  });
});
