/**
 * Fault: the Temporal dev server is killed (SIGKILL) in the middle of pipelines and restarted
 * on the same SQLite file and port. Workers and the client reconnect; every pipeline completes.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import { freePort, startDevServer, type DevServerHandle } from '../../src/devserver/dev-server';
import { createLogger } from '../../src/logger';
import { WorkerHost } from '../../src/workers/host';
import { makeTestEnv, sampleVideo, type TestEnv } from '../helpers/env';
import { until } from '../helpers/processes';

let t: TestEnv;
let server: DevServerHandle | undefined;
let port: number;
let uiPort: number;
let dbFile: string;

const start = () =>
  startDevServer({
    port,
    uiPort,
    dbFile,
    namespace: 'default',
    cliPath: process.env.TEMPORAL_CLI_PATH,
    log: () => undefined,
  });

beforeAll(async () => {
  t = makeTestEnv('fault-server');
  port = await freePort();
  uiPort = await freePort();
  dbFile = path.join(t.dir, 'temporal.sqlite');
  server = await start();
});

afterAll(async () => {
  await server?.stop();
});

describe('Temporal server killed and restarted mid-pipeline', () => {
  it('every pipeline completes after the restart', async () => {
    const config = loadConfig({ ...t.env, TEMPORAL_ADDRESS: `127.0.0.1:${port}` }, t.dir);
    const source = await sampleVideo(t, { seconds: 20, width: 320, height: 180, fps: 15 });
    const host = await WorkerHost.start({ config, tiers: ['default'], log: createLogger('silent') });
    const client = await SluiceClient.connect({ config });
    try {
      const ids: string[] = [];
      for (const key of ['r1', 'r2', 'r3']) {
        ids.push(
          (
            await client.startVideoPipeline({
              source,
              renditions: ['240p', '360p'],
              chunkSeconds: 2,
              thumbnails: 1,
              tenant: 'restart',
              package: 'mp4',
              idempotencyKey: key,
            })
          ).workflowId,
        );
      }
      await until(
        'transcoding under way',
        () => client.getProgress(ids[0] as string).catch(() => undefined),
        (p) => (p?.done ?? 0) >= 3,
        90_000,
      );

      process.kill(server?.pid ?? 0, 'SIGKILL');
      await until(
        'the server to be gone',
        () =>
          client.getProgress(ids[0] as string).then(
            () => 'up',
            () => 'down',
          ),
        (s) => s === 'down',
        10_000,
      );
      await new Promise((r) => setTimeout(r, 2_000));
      server = await start();

      const results = await Promise.all(ids.map((id) => client.getResult<{ renditions: unknown[] }>(id)));
      expect(results.map((r) => r.renditions.length)).toEqual([2, 2, 2]);
    } finally {
      await client.close();
      await host.shutdown();
    }
  });
});
