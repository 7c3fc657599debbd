/**
 * Records workflow histories for the replay test (`test/histories/*.json`): run it after a
 * deliberate workflow change, review the diff, commit. It starts its own dev server on free
 * ports, runs real pipelines on generated media, and saves each history as Temporal JSON.
 *
 *   npx tsx scripts/record-histories.ts [--only name,name]
 *
 * `--only` re-records just the named histories and keeps the others, so histories recorded with
 * earlier workflow code stay in the replay test.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { resolveFfmpeg } from '../src/activities/media/ffmpeg';
import { generateSampleVideo } from '../src/cli/samples';
import { SluiceClient } from '../src/client';
import { findTemporalCli } from '../src/devserver/cli-binary';
import { generateOrders } from '../src/data/generate';
import { createLogger } from '../src/logger';
import { WorkerHost } from '../src/workers/host';
import { startBenchEnv } from '../bench/harness';

const OUT = path.resolve(__dirname, '..', 'test', 'histories');

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  // Recorded on the plain queue names (no suffix), as production runs them.
  const only = process.argv.includes('--only')
    ? process.argv[process.argv.indexOf('--only') + 1]?.split(',')
    : undefined;
  const wanted = (name: string) => !only || only.includes(name);
  // A receiver for completion webhooks (answers 200).
  const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200).end());
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
  const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  const bench = await startBenchEnv('histories', {
    SLUICE_TASK_QUEUE_SUFFIX: '',
    SLUICE_WEBHOOK_SECRET: 'record-histories',
    SLUICE_WEBHOOK_ALLOW: '127.0.0.1',
  });
  const { media, server, config } = bench;
  const host = await WorkerHost.start({ config, tiers: ['default', 'critical'], log: createLogger('warn') });
  const client = await SluiceClient.connect({ config });
  try {
    const { ffmpeg } = resolveFfmpeg();
    await generateSampleVideo({
      ffmpeg,
      out: path.join(media, 'clip.mp4'),
      seconds: 6,
      width: 320,
      height: 180,
      fps: 15,
    });
    await generateSampleVideo({
      ffmpeg,
      out: path.join(media, 'many.mp4'),
      seconds: 260,
      width: 32,
      height: 18,
      fps: 2,
      audio: false,
    });
    fs.writeFileSync(path.join(media, 'text.mp4'), 'not a video\n');
    await generateSampleVideo({
      ffmpeg,
      out: path.join(media, 'wide.mp4'),
      seconds: 6,
      width: 640,
      height: 360,
      fps: 15,
    });
    const runs: {
      name: string;
      source: string;
      chunkSeconds: number;
      renditions: string[];
      thumbnails: number;
      package: 'hls' | 'mp4';
      segmentSeconds?: number;
    }[] = [
      {
        name: 'video-completed',
        source: 'clip.mp4',
        chunkSeconds: 2,
        renditions: ['240p', '360p'],
        thumbnails: 2,
        package: 'mp4',
      },
      {
        name: 'video-invalid-media',
        source: 'text.mp4',
        chunkSeconds: 30,
        renditions: ['360p'],
        thumbnails: 1,
        package: 'mp4',
      },
      // The streaming path: a 360p source, so 480p and up are dropped from the ladder; two
      // renditions of 2 s CMAF segments, one shared audio group, master playlist and sprite.
      {
        name: 'video-hls',
        source: 'wide.mp4',
        chunkSeconds: 2,
        renditions: ['240p', '360p'],
        thumbnails: 1,
        package: 'hls',
        segmentSeconds: 2,
      },
      // The same, recorded after the stream-live-playlists patch: chunks published in order while
      // the run goes, the master playlist as soon as it plays (video-hls above replays the path before it).
      {
        name: 'video-hls-live',
        source: 'wide.mp4',
        chunkSeconds: 2,
        renditions: ['240p', '360p'],
        thumbnails: 1,
        package: 'hls',
        segmentSeconds: 2,
      },
      // 520 chunks > the 500 threshold: the fan-out goes through batched child workflows.
      {
        name: 'video-batched',
        source: 'many.mp4',
        chunkSeconds: 1,
        renditions: ['240p', '360p'],
        thumbnails: 0,
        package: 'mp4',
      },
    ];
    const indexFile = path.join(OUT, 'index.json');
    const index: Record<string, string> = only
      ? (JSON.parse(fs.readFileSync(indexFile, 'utf8')) as Record<string, string>)
      : {};
    // The CLI writes the standard proto JSON that `historyFromJSON` (and the Temporal UI) read.
    const save = async (id: string, name: string) => {
      const cli = findTemporalCli(process.env.TEMPORAL_CLI_PATH);
      if (!cli) throw new Error('no temporal CLI');
      const json = execFileSync(
        cli.path,
        ['workflow', 'show', '--workflow-id', id, '--address', server.address, '--output', 'json'],
        { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
      );
      fs.writeFileSync(path.join(OUT, `${name}.json`), JSON.stringify(JSON.parse(json)) + '\n');
      const events = (JSON.parse(json) as { events?: unknown[] }).events?.length ?? 0;
      index[`${name}.json`] = id;
      console.error(`saved ${name}.json (${events} events)`);
      await Promise.resolve();
    };
    /** Starts a run named `name` (its idempotency key too), waits for its result and saves its history. */
    const record = async (name: string, start: () => Promise<{ workflowId: string }>) => {
      if (!wanted(name)) return;
      const { workflowId } = await start();
      await client.getResult(workflowId);
      await save(workflowId, name);
    };
    for (const r of runs.filter((run) => wanted(run.name))) {
      const { name, ...options } = r;
      const { workflowId } = await client.startVideoPipeline({ ...options, tenant: 'replay', idempotencyKey: name });
      await client.getResult(workflowId).catch(() => undefined);
      await save(workflowId, r.name);
      if (r.name === 'video-batched') await save(`${workflowId}/batch-0000`, 'sub-job-batch');
    }
    if (wanted('report-webhook') || wanted('report-batched')) {
      await generateOrders({
        dir: config.reports.partitionsDir,
        start: '2025-01',
        months: 2,
        rowsPerMonth: 300,
        seed: 3,
      });
    }
    // A report over two generated months, with a completion webhook (critical tier).
    await record('report-webhook', () =>
      client.startReportPipeline({
        from: '2025-01',
        to: '2025-02',
        format: 'csv',
        tenant: 'replay',
        idempotencyKey: 'report-webhook',
        webhook: { url: hookUrl },
      }),
    );
    // 2 months × 300 shards = 600 sub-jobs > the 500 threshold: three batch children, at most two at once.
    await record('report-batched', () =>
      client.startReportPipeline({
        from: '2025-01',
        to: '2025-02',
        shards: 300,
        window: 16,
        tenant: 'replay',
        idempotencyKey: 'report-batched',
      }),
    );
    // Ten short sub-jobs packed four to an activity task (three packs: 4, 4 and 2).
    await record('jobs-packed', () =>
      client.startJobsPipeline({
        tenant: 'replay',
        idempotencyKey: 'jobs-packed',
        window: 10,
        pack: 4,
        policy: { kind: 'partial' },
        jobs: Array.from({ length: 10 }, (_, index) => ({ activity: 'burstSleep', input: { index, ms: 20 } })),
      }),
    );
    // Sub-jobs that fail for good under the partial policy, each dead-lettered (the DLQ path),
    // between sub-jobs that succeed; a window of 3 so that launches and dead letters interleave.
    await record('jobs-dead-letter', () =>
      client.startJobsPipeline({
        tenant: 'replay',
        idempotencyKey: 'jobs-dead-letter',
        window: 3,
        policy: { kind: 'partial' },
        jobs: Array.from({ length: 8 }, (_, index) =>
          index % 3 === 1
            ? { activity: 'aggregatePartition', input: { month: 'not-a-month' } }
            : { activity: 'burstSleep', input: { index, ms: 20 } },
        ),
      }),
    );
    // Replay needs the real workflow IDs: child IDs are built from the parent's.
    fs.writeFileSync(indexFile, JSON.stringify(index, null, 2) + '\n');
  } finally {
    await client.close();
    await host.shutdown();
    await bench.close();
    receiver.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
