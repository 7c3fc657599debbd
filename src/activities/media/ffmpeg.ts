/**
 * ffmpeg/ffprobe binaries and a process runner that parses `-progress` output and stops the
 * process when its AbortSignal fires (activity cancellation, worker shutdown).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { whichSync } from '../../devserver/cli-binary';
import { withSpan } from '../../tracing';

export interface FfmpegBinaries {
  ffmpeg: string;
  ffprobe: string;
  /** Where they came from: 'system', 'npm' or 'config'. */
  source: string;
}

function npmBinary(pkg: '@ffmpeg-installer/ffmpeg' | '@ffprobe-installer/ffprobe'): string {
  // These packages ship the binary inside a per-platform npm package; no download at run time.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- resolved lazily: only when no system binary exists
  const mod = require(pkg) as { path: string };
  // npm may skip the package's chmod postinstall; make sure the owner can execute it.
  try {
    fs.accessSync(mod.path, fs.constants.X_OK);
  } catch {
    fs.chmodSync(mod.path, 0o755);
  }
  return mod.path;
}

/** System ffmpeg/ffprobe when both are on PATH, else the binaries shipped in npm packages. */
export function resolveFfmpeg(explicit: { ffmpeg?: string; ffprobe?: string } = {}): FfmpegBinaries {
  if (explicit.ffmpeg && explicit.ffprobe)
    return { ffmpeg: explicit.ffmpeg, ffprobe: explicit.ffprobe, source: 'config' };
  const sysFfmpeg = whichSync('ffmpeg');
  const sysFfprobe = whichSync('ffprobe');
  if (sysFfmpeg && sysFfprobe) {
    return { ffmpeg: explicit.ffmpeg ?? sysFfmpeg, ffprobe: explicit.ffprobe ?? sysFfprobe, source: 'system' };
  }
  return {
    ffmpeg: explicit.ffmpeg ?? npmBinary('@ffmpeg-installer/ffmpeg'),
    ffprobe: explicit.ffprobe ?? npmBinary('@ffprobe-installer/ffprobe'),
    source: 'npm',
  };
}

/** One `-progress` block: ffmpeg prints key=value lines ending with `progress=continue|end`. */
export interface FfmpegProgress {
  outTimeSec: number;
  speed: number | undefined;
  done: boolean;
}

/** Parses one `-progress` block's key=value lines; undefined if it has no `progress=` line. */
export function parseProgressBlock(lines: string[]): FfmpegProgress | undefined {
  const kv = new Map<string, string>();
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq > 0) kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const progress = kv.get('progress');
  if (!progress) return undefined;
  // out_time_us is microseconds (out_time_ms is too, despite its name); N/A before the first frame.
  const us = Number(kv.get('out_time_us') ?? kv.get('out_time_ms'));
  const speed = Number((kv.get('speed') ?? '').replace(/x$/, ''));
  return {
    outTimeSec: Number.isFinite(us) && us > 0 ? us / 1e6 : 0,
    speed: Number.isFinite(speed) && speed > 0 ? speed : undefined,
    done: progress === 'end',
  };
}

export class FfmpegError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderrTail: string,
  ) {
    super(message);
    this.name = 'FfmpegError';
  }
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Called for each `-progress` block (requires `-progress pipe:1` in args). */
  onProgress?: (p: FfmpegProgress) => void;
}

/**
 * Runs a binary to completion, collecting stdout (unless progress is parsed from it) and the
 * tail of stderr. On abort, sends SIGTERM then SIGKILL and rejects with the signal's reason.
 * With tracing on, in a span named for the binary (`ffmpeg`, `ffprobe`); its arguments are not
 * recorded (they may hold presigned URLs).
 */
export function runProcess(binary: string, args: string[], opts: RunOptions = {}): Promise<{ stdout: string }> {
  const name = binary.split('/').pop() ?? binary;
  return withSpan(name, { 'process.executable.name': name }, () => spawnProcess(binary, args, opts));
}

function spawnProcess(binary: string, args: string[], opts: RunOptions): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason as Error);
      return;
    }
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let block: string[] = [];
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (!opts.onProgress) {
        stdout += chunk;
        return;
      }
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        block.push(line);
        if (line.startsWith('progress=')) {
          const parsed = parseProgressBlock(block);
          block = [];
          if (parsed) opts.onProgress(parsed);
        }
      }
    });
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-8_192);
    });
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 2_000);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (err) => {
      opts.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.once('close', (code, sig) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      if (opts.signal?.aborted) {
        reject(opts.signal.reason as Error);
      } else if (code === 0) {
        resolve({ stdout });
      } else {
        const tail = stderr.trim().split('\n').slice(-6).join('\n');
        reject(new FfmpegError(`${binary.split('/').pop()} exited with ${code ?? sig}: ${tail}`, code, tail));
      }
    });
  });
}

/** Writes the concat demuxer's list of `files` (in order) as `<dir>/concat.txt`; returns its path. */
export async function writeConcatList(files: string[], dir: string): Promise<string> {
  const list = path.join(dir, 'concat.txt');
  await fs.promises.writeFile(list, files.map((f) => `file '${f.replace(/'/g, "'\\''")}'`).join('\n') + '\n');
  return list;
}
