/**
 * bench:video — the video pipeline against its baseline, side by side in one run.
 *
 * Input: a generated 120 s 720p video with a tone. Baseline: ONE ffmpeg process producing the
 * same two renditions (360p, 720p; same codec settings) from the whole file. Pipeline: Sluice on
 * a private dev server with one worker process (`sluice worker`) per storage backend, chunked
 * fan-out/fan-in: on `file` (the embedded default) and on `s3` (a real S3 server, versitygw, on
 * 127.0.0.1; the source uploaded to it first, outside the timing). Prints the wall times, each
 * backend's ratio to the baseline (targets: file ≤ 1.05, s3 ≤ 1.15) and each worker's peak RSS
 * (VmHWM; target ≤ 250 MB; ffmpeg children are separate processes and not included). Each round
 * runs the baseline, then each backend.
 *
 *   npm run bench:video [-- --rounds 2 --seconds 120 --storage file|s3|both]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { resolveFfmpeg, runProcess } from '../src/activities/media/ffmpeg';
import { generateSampleVideo } from '../src/cli/samples';
import { SluiceClient } from '../src/client';
import { RENDITIONS } from '../src/shared/constants';
import { REPO, numberArg, saveFigures, startBenchEnv } from './harness';
import { workerProcessEnv } from '../src/shared/node-options';
import { loadConfig } from '../src/config';
import { freePort } from '../src/devserver/dev-server';
import { openStorage } from '../src/storage';
import { createBucket, s3Env, startS3Server, type S3Server } from '../test/helpers/s3-server';

const ROUNDS = numberArg('rounds', 2);
const SECONDS = numberArg('seconds', 120);
const STORAGE = process.argv.includes('--storage') ? process.argv[process.argv.indexOf('--storage') + 1] : 'both';
const BACKENDS = (STORAGE === 'both' ? ['file', 's3'] : [STORAGE]) as ('file' | 's3')[];
const TARGET = { file: 1.05, s3: 1.15 };

/** Peak resident set of a process (kB → MB), from /proc. */
function peakRssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  const binaries = resolveFfmpeg();
  const bench = await startBenchEnv('bench-video');
  const { dir, media, env } = bench;
  const cached = path.join(REPO, '.data', 'bench', `sample-1280x720-${SECONDS}s.mp4`);
  process.stderr.write(`generating ${SECONDS} s 720p input (cached at ${cached})…\n`);
  await generateSampleVideo({ ffmpeg: binaries.ffmpeg, out: cached, seconds: SECONDS });
  fs.copyFileSync(cached, path.join(media, 'input.mp4'));
  // One worker and client per backend, each on its own queue suffix.
  let s3: S3Server | undefined;
  const sides: {
    backend: 'file' | 's3';
    worker: ChildProcess;
    client: SluiceClient;
    source: string;
    times: number[];
  }[] = [];
  for (const backend of BACKENDS) {
    let extra: Record<string, string> = { SLUICE_TASK_QUEUE_SUFFIX: `bench-video-${backend}` };
    let source = 'input.mp4';
    if (backend === 's3') {
      s3 = await startS3Server({ port: await freePort(), dir: path.join(dir, 's3') });
      const bucket = await createBucket(s3, 'bench');
      extra = { ...extra, ...(s3Env(s3) as Record<string, string>), SLUICE_STORAGE_URL: `s3://${bucket}/bench` };
    }
    const sideEnv = { ...env, ...extra };
    const config = loadConfig(sideEnv, dir);
    if (backend === 's3') {
      const storage = openStorage(config.storage, {
        outputDir: config.outputDir,
        partitionsDir: config.reports.partitionsDir,
      });
      await storage.uploads.putFile('input.mp4', path.join(media, 'input.mp4'));
      source = storage.uploads.uri('input.mp4');
    }
    const worker = spawn(process.execPath, [path.join(REPO, 'bin', 'sluice'), 'worker', '--tiers', 'default'], {
      env: workerProcessEnv({ ...process.env, ...sideEnv }),
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    sides.push({ backend, worker, client: await SluiceClient.connect({ config }), source, times: [] });
  }
  const baselineTimes: number[] = [];
  try {
    // The baseline uses the pipeline's own settings: capped-CRF x264 veryfast, AAC, both renditions.
    const rendition = (name: '360p' | '720p', n: number) => {
      const r = RENDITIONS[name];
      return [
        '-map',
        '0:v:0',
        '-map',
        '0:a:0',
        '-vf',
        `scale=-2:${r.height}`,
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-pix_fmt',
        'yuv420p',
        '-crf',
        '23',
        '-maxrate',
        `${r.videoKbps}k`,
        '-bufsize',
        `${r.videoKbps * 2}k`,
        '-c:a',
        'aac',
        '-b:a',
        `${r.audioKbps}k`,
        '-ac',
        '2',
        '-ar',
        '48000',
        '-movflags',
        '+faststart',
        path.join(dir, `baseline-${n}-${name}.mp4`),
      ];
    };
    for (let round = 1; round <= ROUNDS; round++) {
      let t0 = performance.now();
      await runProcess(binaries.ffmpeg, [
        '-hide_banner',
        '-nostdin',
        '-y',
        '-v',
        'error',
        '-i',
        path.join(media, 'input.mp4'),
        ...rendition('360p', round),
        ...rendition('720p', round),
      ]);
      baselineTimes.push((performance.now() - t0) / 1000);

      for (const side of sides) {
        t0 = performance.now();
        const { workflowId } = await side.client.startVideoPipeline({
          source: side.source,
          renditions: ['360p', '720p'],
          thumbnails: 0,
          tenant: 'bench',
          package: 'mp4',
          idempotencyKey: `round-${round}-${Date.now()}`,
        });
        await side.client.getResult(workflowId);
        side.times.push((performance.now() - t0) / 1000);
      }
      process.stderr.write(
        `round ${round}: baseline ${baselineTimes.at(-1)?.toFixed(1)} s, ${sides.map((x) => `${x.backend} ${x.times.at(-1)?.toFixed(1)} s`).join(', ')}\n`,
      );
    }
    const b = median(baselineTimes);
    const results = sides.map((x) => {
      const p = median(x.times);
      const rss = peakRssMb(x.worker.pid ?? 0);
      return {
        backend: x.backend,
        pipelineSec: Number(p.toFixed(2)),
        ratio: Number((p / b).toFixed(3)),
        ratioTarget: TARGET[x.backend],
        workerPeakRssMb: Number(rss.toFixed(1)),
      };
    });
    const figures = {
      bench: 'video',
      input: `${SECONDS} s 1280x720 30 fps + AAC tone`,
      renditions: ['360p', '720p'],
      rounds: ROUNDS,
      ffmpeg: `${binaries.source} (${binaries.ffmpeg})`,
      cores: os.availableParallelism(),
      baselineSec: Number(b.toFixed(2)),
      backends: results,
      rssTargetMb: 250,
    };
    saveFigures('video', figures);
    console.log(`bench:video  input ${figures.input}, ${figures.cores} cores, ffmpeg ${binaries.source}`);
    console.log(`  baseline (one ffmpeg, both renditions): ${b.toFixed(2)} s (median of ${ROUNDS})`);
    for (const r of results) {
      console.log(
        `  pipeline on ${r.backend.padEnd(4)} (chunked fan-out)   : ${r.pipelineSec.toFixed(2)} s (median of ${ROUNDS})`,
      );
      console.log(
        `    ratio pipeline/baseline             : ${r.ratio.toFixed(3)}  (target ≤ ${r.ratioTarget})  ${r.ratio <= r.ratioTarget ? 'MET' : 'NOT MET'}`,
      );
      console.log(
        `    worker peak RSS (VmHWM)             : ${r.workerPeakRssMb.toFixed(1)} MB  (target ≤ 250 MB)  ${r.workerPeakRssMb <= 250 ? 'MET' : 'NOT MET'}`,
      );
    }
  } finally {
    for (const x of sides) {
      await x.client.close();
      x.worker.kill('SIGTERM');
      await new Promise((r) => x.worker.once('exit', r));
    }
    await s3?.stop();
    await bench.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
