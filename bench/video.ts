/**
 * bench:video — the video pipeline against its baseline, side by side in one run.
 *
 * Input: a generated 120 s 720p video with a tone. Baseline: ONE ffmpeg process producing the
 * same two renditions (360p, 720p; same codec settings) from the whole file. Pipeline: Sluice on
 * a private dev server with one worker process (`sluice worker`), chunked fan-out/fan-in.
 * Prints both wall times, their ratio (target ≤ 1.15) and the worker's peak RSS (VmHWM; target
 * ≤ 250 MB; ffmpeg children are separate processes and not included). Rounds alternate.
 *
 *   npm run bench:video [-- --rounds 2 --seconds 120]
 */
import { spawn } from 'node:child_process';
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

const ROUNDS = numberArg('rounds', 2);
const SECONDS = numberArg('seconds', 120);

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
  const worker = spawn(process.execPath, [path.join(REPO, 'bin', 'sluice'), 'worker', '--tiers', 'default'], {
    env: workerProcessEnv({ ...process.env, ...env }),
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const client = await SluiceClient.connect({ config: bench.config });
  const baselineTimes: number[] = [];
  const pipelineTimes: number[] = [];
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

      t0 = performance.now();
      const { workflowId } = await client.startVideoPipeline({
        source: 'input.mp4',
        renditions: ['360p', '720p'],
        thumbnails: 0,
        tenant: 'bench',
        idempotencyKey: `round-${round}-${Date.now()}`,
      });
      await client.getResult(workflowId);
      pipelineTimes.push((performance.now() - t0) / 1000);
      process.stderr.write(
        `round ${round}: baseline ${baselineTimes.at(-1)?.toFixed(1)} s, pipeline ${pipelineTimes.at(-1)?.toFixed(1)} s\n`,
      );
    }
    const rss = peakRssMb(worker.pid ?? 0);
    const b = median(baselineTimes);
    const p = median(pipelineTimes);
    const figures = {
      bench: 'video',
      input: `${SECONDS} s 1280x720 30 fps + AAC tone`,
      renditions: ['360p', '720p'],
      rounds: ROUNDS,
      ffmpeg: `${binaries.source} (${binaries.ffmpeg})`,
      cores: os.availableParallelism(),
      baselineSec: Number(b.toFixed(2)),
      pipelineSec: Number(p.toFixed(2)),
      ratio: Number((p / b).toFixed(3)),
      ratioTarget: 1.15,
      workerPeakRssMb: Number(rss.toFixed(1)),
      rssTargetMb: 250,
    };
    saveFigures('video', figures);
    console.log(`bench:video  input ${figures.input}, ${figures.cores} cores, ffmpeg ${binaries.source}`);
    console.log(`  baseline (one ffmpeg, both renditions): ${b.toFixed(2)} s (median of ${ROUNDS})`);
    console.log(`  pipeline (Sluice, chunked fan-out)    : ${p.toFixed(2)} s (median of ${ROUNDS})`);
    console.log(
      `  ratio pipeline/baseline               : ${(p / b).toFixed(3)}  (target ≤ 1.15)  ${p / b <= 1.15 ? 'MET' : 'NOT MET'}`,
    );
    console.log(
      `  worker peak RSS (VmHWM)               : ${rss.toFixed(1)} MB  (target ≤ 250 MB)  ${rss <= 250 ? 'MET' : 'NOT MET'}`,
    );
  } finally {
    await client.close();
    worker.kill('SIGTERM');
    await new Promise((r) => worker.once('exit', r));
    await bench.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
