/** Per-test-file environment: config pointed at the run's dev server, private dirs and queues. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { resolveFfmpeg, type FfmpegBinaries } from '../../src/activities/media/ffmpeg';
import { generateSampleVideo } from '../../src/cli/samples';
import { SluiceClient } from '../../src/client';
import { loadConfig, type SluiceConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { TIERS, type Tier } from '../../src/shared/constants';
import { WorkerHost } from '../../src/workers/host';
import { DuckDbSource } from '../../src/data/duckdb';
import { openStorage, type Storage } from '../../src/storage';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** Generated media shared by all test files (made once, reused): never committed. */
export const MEDIA_CACHE = path.join(REPO_ROOT, '.data', 'test-media');

export interface TestEnv {
  suffix: string;
  dir: string;
  mediaRoot: string;
  outputDir: string;
  config: SluiceConfig;
  binaries: FfmpegBinaries;
  env: NodeJS.ProcessEnv;
}

/** A private media root and output dir under the OS temp dir, and a unique task-queue suffix. */
export function makeTestEnv(name: string, extraEnv: NodeJS.ProcessEnv = {}): TestEnv {
  const suffix = `${name}-${crypto.randomBytes(3).toString('hex')}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sluice-${name}-`));
  const mediaRoot = path.join(dir, 'media');
  const outputDir = path.join(dir, 'out');
  fs.mkdirSync(mediaRoot, { recursive: true });
  fs.mkdirSync(outputDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    SLUICE_MEDIA_ROOT: mediaRoot,
    SLUICE_OUTPUT_DIR: outputDir,
    SLUICE_DATA_DIR: path.join(dir, 'data'),
    SLUICE_METRICS_PORT: '0',
    SLUICE_SHUTDOWN_GRACE_MS: '5000',
    SLUICE_LOG_LEVEL: 'warn',
    SLUICE_TASK_QUEUE_SUFFIX: suffix,
    ...extraEnv,
  };
  const config = loadConfig(env, dir);
  return { suffix, dir, mediaRoot, outputDir, config, binaries: resolveFfmpeg(), env };
}

/** A generated test video (lavfi test pattern + tone), cached across runs, linked into `mediaRoot`. */
export async function sampleVideo(
  t: TestEnv,
  opts: { seconds: number; width?: number; height?: number; fps?: number; audio?: boolean; name?: string },
): Promise<string> {
  const { seconds, width = 320, height = 180, fps = 15, audio = true } = opts;
  const cached = path.join(MEDIA_CACHE, `sample-${width}x${height}-${fps}fps-${seconds}s${audio ? '' : '-mute'}.mp4`);
  await generateSampleVideo({ ffmpeg: t.binaries.ffmpeg, out: cached, seconds, width, height, fps, audio });
  const name = opts.name ?? path.basename(cached);
  const target = path.join(t.mediaRoot, name);
  if (!fs.existsSync(target)) fs.copyFileSync(cached, target);
  return name;
}

/** The env's configured storage (file or s3), as workers open it. */
export function storageOf(t: TestEnv): Storage {
  return openStorage(t.config.storage, {
    outputDir: t.config.outputDir,
    partitionsDir: t.config.reports.partitionsDir,
  });
}

/** DuckDB over the env's datasets store. */
export function duckDbSource(t: TestEnv): DuckDbSource {
  const storage = storageOf(t);
  return new DuckDbSource({ partitions: storage.datasets, scratchDir: storage.scratchDir });
}

/** Workers for the given tiers on this file's queues: the real activities from config unless given. */
export async function startHost(t: TestEnv, tiers: readonly Tier[] = TIERS, activities?: object): Promise<WorkerHost> {
  return WorkerHost.start({ config: t.config, tiers, log: createLogger('warn'), activities });
}

export function connectClient(t: TestEnv): Promise<SluiceClient> {
  return SluiceClient.connect({ config: t.config });
}

/** Every file under `dir`, relative, sorted (for "nothing half-written" checks). */
export function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort();
}
