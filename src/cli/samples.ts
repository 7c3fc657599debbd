/** Generated test media (ffmpeg lavfi sources): never downloaded. */
import fs from 'node:fs';
import path from 'node:path';
import { runProcess } from '../activities/media/ffmpeg';

export interface SampleVideoOptions {
  ffmpeg: string;
  out: string;
  /** @default 120 */
  seconds?: number;
  /** @default 1280 */
  width?: number;
  /** @default 720 */
  height?: number;
  /** @default 30 */
  fps?: number;
  /** Include a sine tone. @default true */
  audio?: boolean;
}

/** Writes a test-pattern video with a tone (H.264/AAC MP4), atomically; skips if it already exists. */
export async function generateSampleVideo(opts: SampleVideoOptions): Promise<string> {
  if (fs.existsSync(opts.out)) return opts.out;
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  const { seconds = 120, width = 1280, height = 720, fps = 30, audio = true } = opts;
  const tmp = path.join(path.dirname(opts.out), `.${path.basename(opts.out, '.mp4')}.tmp-${process.pid}.mp4`);
  const args = [
    '-hide_banner',
    '-nostdin',
    '-y',
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${width}x${height}:rate=${fps}`,
  ];
  if (audio) args.push('-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000');
  args.push(
    '-t',
    String(seconds),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-pix_fmt',
    'yuv420p',
    '-g',
    String(fps * 2),
  );
  if (audio) args.push('-c:a', 'aac', '-b:a', '96k');
  args.push('-movflags', '+faststart', tmp);
  try {
    await runProcess(opts.ffmpeg, args);
    fs.renameSync(tmp, opts.out);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return opts.out;
}
