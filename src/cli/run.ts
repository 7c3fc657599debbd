/** Long-running CLI commands: `up`, `worker`, and waiting on a pipeline with progress. */
import path from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import { WorkflowFailedError } from '@temporalio/client';
import { resolveFfmpeg } from '../activities/media/ffmpeg';
import { SluiceClient } from '../client';
import type { SluiceConfig } from '../config';
import type { DevServerHandle } from '../devserver/dev-server';
import { DevServerSupervisor } from '../devserver/supervisor';
import { startLocalCodecServer } from '../security/codec-server';
import type { Logger } from '../logger';
import { TIERS, Tier, type Tier as TierName } from '../shared/constants';
import type { VideoPipelineResult } from '../shared/video';
import { WorkerHost, loadWorkflowBundle } from '../workers/host';
import { bundleBuildId } from '../workers/versioning';
import { LocalAutoscaler } from '../scaling/autoscaler';
import { watchTaskBudget } from '../workers/recycle';
import { ExitCode, describeWebhook, failureChain, info, printJson, reportError } from './output';
import { generateSampleVideo } from './samples';

/** Resolves on the first SIGINT/SIGTERM; a second one exits at once. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handler = (signal: NodeJS.Signals) => {
      process.removeListener('SIGINT', handler);
      process.removeListener('SIGTERM', handler);
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve(signal);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

/** `sluice worker --tiers …`: serve until SIGTERM/SIGINT, drain, exit 0. */
export async function runWorker(config: SluiceConfig, log: Logger, tiers: readonly TierName[]): Promise<number> {
  const stop = untilSignal();
  const host = await WorkerHost.start({ config, tiers, log });
  log.info({ tiers, queues: host.taskQueues, port: host.port }, 'worker polling');
  // Recycling (SLUICE_WORKER_MAX_TASKS): drain and exit 0 after N activities; the autoscaler replaces us.
  const budget = watchTaskBudget(host.metrics, config.workerMaxTasks);
  const outcome = await Promise.race([
    stop.then((s): { signal: string | undefined } => ({ signal: s })),
    host.done().then(() => ({ signal: undefined })),
    budget.reached.then((n) => ({ signal: `recycle after ${n} activities` })),
  ]);
  budget.stop();
  log.info({ signal: outcome.signal }, 'shutting down');
  await host.shutdown();
  return ExitCode.ok;
}

/** UI link of a workflow on the embedded dev server (or any UI at `uiUrl`). */
export function workflowUiUrl(uiUrl: string, namespace: string, workflowId: string): string {
  return `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** `sluice up`: dev server (unless TEMPORAL_ADDRESS), workers for every tier, the demo pipeline. */
export async function runUp(
  config: SluiceConfig,
  log: Logger,
  opts: { demo: boolean; once: boolean; autoscale?: boolean; demoSeconds?: number },
): Promise<number> {
  const stop = untilSignal();
  let server: DevServerHandle | undefined;
  let supervisor: DevServerSupervisor | undefined;
  let codec: Awaited<ReturnType<typeof startLocalCodecServer>>;
  let host: WorkerHost | undefined;
  let scaler: { autoscaler: LocalAutoscaler; client: SluiceClient } | undefined;
  try {
    if (!config.temporal.address) {
      info(
        `starting the Temporal dev server on 127.0.0.1:${config.devServer.port} (state: ${config.devServer.dbFile})`,
      );
      // With payload encryption on, a codec server runs in this process and the UI decodes through it.
      codec = await startLocalCodecServer(config.codec, config.devServer.uiPort, log);
      if (codec) info(`codec server for the UI on 127.0.0.1:${codec.server.port} (payloads are encrypted)`);
      supervisor = await DevServerSupervisor.start({
        port: config.devServer.port,
        uiPort: config.devServer.uiPort,
        dbFile: config.devServer.dbFile,
        namespace: config.temporal.namespace,
        cliPath: config.temporalCliPath,
        extraArgs: codec?.devServerArgs,
        log: info,
      });
      server = supervisor.server;
      info(`Temporal UI: ${server.uiUrl}  (server from ${server.source})`);
    }
    // `sluice up` makes its own build current at start, so the embedded default needs no deploy step.
    const setCurrent = config.versioning.setCurrent === 'never' ? 'never' : 'always';
    if (opts.autoscale) {
      // Worker child processes per tier, scaled on backlog by the local autoscaler; every child
      // runs the same build (computed once here) and makes it current when it starts.
      const client = await SluiceClient.connect({ config });
      const buildId = config.versioning.buildId ?? bundleBuildId(await loadWorkflowBundle());
      const autoscaler = new LocalAutoscaler({
        config,
        tiers: TIERS,
        log,
        baseEnv: { ...process.env, SLUICE_BUILD_ID: buildId, SLUICE_SET_CURRENT_VERSION: setCurrent },
        service: client.temporal.workflowService,
        onEvent: (e) => {
          if (e.type === 'scale-up' || e.type === 'scale-down')
            info(`autoscaler: ${e.tier} ${e.type} ${e.from} → ${e.to}`);
          else if (e.type === 'replaced') info(`autoscaler: ${e.tier} worker ${e.pid} ${e.reason}, replaced`);
        },
      });
      scaler = { autoscaler, client };
      await autoscaler.start();
      info(`autoscaler running workers per tier; metrics on http://127.0.0.1:${autoscaler.port}/metrics`);
    } else {
      const dev = supervisor;
      host = await WorkerHost.start({
        config: { ...config, versioning: { ...config.versioning, setCurrent } },
        tiers: TIERS,
        log,
        ...(dev ? { dependencyReady: () => dev.healthy } : {}),
      });
      if (host.build) info(`worker build ${host.build.buildId} (from ${host.build.source})`);
      info(`workers polling ${host.taskQueues.join(', ')}; metrics on http://127.0.0.1:${host.port}/metrics`);
    }

    let code: number = ExitCode.ok;
    if (opts.demo) {
      const demo = runDemo(config, server?.uiUrl, opts.demoSeconds ?? 120);
      const first = await Promise.race([demo.then((c) => ({ demo: c })), stop.then(() => ({ demo: undefined }))]);
      if (first.demo === undefined) return ExitCode.ok;
      code = first.demo;
    }
    if (opts.once) return code;
    info('serving; press Ctrl-C to stop');
    await Promise.race([stop, host ? host.done() : new Promise<never>(() => undefined)]);
    return ExitCode.ok;
  } finally {
    info('shutting down: draining workers');
    await host?.shutdown();
    await scaler?.autoscaler.stop();
    await scaler?.client.close();
    await supervisor?.stop();
    await codec?.server.close();
  }
}

async function runDemo(config: SluiceConfig, uiUrl: string | undefined, seconds: number): Promise<number> {
  const binaries = resolveFfmpeg({ ffmpeg: config.ffmpegPath, ffprobe: config.ffprobePath });
  // The sample must lie inside the media root like any input.
  const dataInsideRoot = !path.relative(config.mediaRoot, config.dataDir).startsWith('..');
  const samplesDir = dataInsideRoot
    ? path.join(config.dataDir, 'samples')
    : path.join(config.mediaRoot, '.sluice-samples');
  const sample = path.join(samplesDir, `sample-720p-${seconds}s.mp4`);
  info(`demo: sample video ${sample} (generated with ffmpeg lavfi if missing)`);
  await generateSampleVideo({ ffmpeg: binaries.ffmpeg, out: sample, seconds });
  const client = await SluiceClient.connect({ config });
  try {
    const { workflowId } = await client.startVideoPipeline({
      source: sample,
      renditions: ['240p', '360p', '480p', '720p'],
      tier: Tier.high,
      tenant: 'demo',
      idempotencyKey: `demo-${Date.now()}`,
    });
    info(`demo: started ${workflowId}`);
    if (uiUrl) info(`demo: watch it at ${workflowUiUrl(uiUrl, config.temporal.namespace, workflowId)}`);
    const code = await waitAndReport(client, workflowId, false);
    if (uiUrl) info(`UI: ${workflowUiUrl(uiUrl, config.temporal.namespace, workflowId)}`);
    return code;
  } finally {
    await client.close();
  }
}

/**
 * Waits for a pipeline, with a progress bar on a TTY, then prints the result (one JSON object
 * with `--json`). Returns the exit code: 0 completed, 1 failed.
 */
export async function waitAndReport(client: SluiceClient, workflowId: string, json: boolean): Promise<number> {
  const bar = process.stderr.isTTY
    ? new SingleBar(
        { format: ' {stage} |{bar}| {value}/{total} sub-jobs', stream: process.stderr, hideCursor: true },
        Presets.shades_classic,
      )
    : undefined;
  let lastStage = '';
  let playable = false;
  const render = (): Promise<void> =>
    client.getProgress(workflowId).then(
      (p) => {
        // Said once, as soon as the stream plays (long before the run ends).
        if (p.playbackUrl && !playable && !json) {
          playable = true;
          if (bar) bar.stop();
          info(`  playable now: ${p.playbackUrl}`);
          if (bar) lastStage = '';
        }
        if (bar) {
          if (!lastStage) bar.start(Math.max(1, p.total), p.done, { stage: p.stage.padEnd(13) });
          bar.setTotal(Math.max(1, p.total));
          bar.update(p.done, { stage: p.stage.padEnd(13) });
        } else if (p.stage !== lastStage) {
          info(`  ${workflowId}: ${p.stage} (${p.done}/${p.total})`);
        }
        lastStage = p.stage;
      },
      () => undefined,
    );
  // First look at once, then every half second; a pipeline that finishes between two looks
  // still gets its final state drawn before the summary.
  void render();
  const poll = setInterval(() => void render(), 500);
  try {
    const result = await client.getResult<VideoPipelineResult>(workflowId);
    clearInterval(poll);
    if (bar) await render();
    bar?.stop();
    if (json) {
      printJson({ workflowId, status: 'COMPLETED', result });
    } else {
      info(`completed ${workflowId}`);
      info(`  manifest: ${result.manifest.path ?? result.manifest.uri}`);
      const stream = result.stream;
      if (stream) {
        if (stream.package !== 'dash') info(`  master playlist (HLS): ${stream.master.path ?? stream.master.uri}`);
        if (stream.mpd) info(`  MPD (DASH): ${stream.mpd.path ?? stream.mpd.uri}`);
        if (result.playbackUrl) info(`  playback URL: ${result.playbackUrl}`);
        for (const r of stream.renditions)
          info(
            `  ${r.name.padEnd(6)} ${r.width}x${r.height}  ${r.segments} segments of ${stream.segmentSeconds} s  ${(r.totalBytes / 1e6).toFixed(2)} MB  ${Math.round(r.averageBitsPerSec / 1000)} kb/s avg, ${Math.round(r.peakBitsPerSec / 1000)} kb/s peak`,
          );
        if (stream.audio)
          info(`  audio  ${stream.audio.segments} segments  ${(stream.audio.totalBytes / 1e6).toFixed(2)} MB`);
        for (const d of stream.dropped) info(`  dropped ${d.name}: ${d.reason}`);
        const dir = stream.master.path ? path.dirname(stream.master.path) : undefined;
        if (dir) info(`  watch it: sluice serve-artifacts ${JSON.stringify(dir)}  (then open the URL it prints)`);
      } else {
        for (const r of result.renditions ?? [])
          info(
            `  ${r.name.padEnd(6)} ${r.path ?? r.uri}  ${r.durationSec.toFixed(2)} s  ${(r.bytes / 1e6).toFixed(1)} MB`,
          );
      }
      for (const t of result.thumbnails ?? []) info(`  thumb  ${t.path ?? t.uri}  @ ${t.atSec} s`);
      if (result.sourceBytesRead !== undefined) {
        info(
          `  source read: ${(result.sourceBytesRead / 1e6).toFixed(1)} MB by ranged reads, of ${(result.sourceBytes / 1e6).toFixed(1)} MB`,
        );
      }
      if (result.webhook) info(`  ${describeWebhook(result.webhook)}`);
    }
    return ExitCode.ok;
  } catch (err) {
    clearInterval(poll);
    bar?.stop();
    if (err instanceof WorkflowFailedError) {
      if (json) {
        // One object: the status plus the failure chain.
        const code = reportError(err, false);
        printJson({ workflowId, status: 'FAILED', failure: failureChain(err.cause) });
        return code;
      }
      return reportError(err, false);
    }
    throw err;
  }
}
