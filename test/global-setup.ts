/**
 * One real Temporal dev server per test run (the pinned CLI, never a mock), on free ports with
 * in-memory state, and one real S3-compatible server (versitygw, posix backend on a temp folder).
 * Tests read their addresses with `inject('temporalAddress')` and `inject('s3')`.
 */
import fs from 'node:fs';
import type { TestProject } from 'vitest/node';
import { freePort, startDevServer, type DevServerHandle } from '../src/devserver/dev-server';
import { startS3Server, type S3Server } from './helpers/s3-server';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalUiUrl: string;
    s3: { endpoint: string; accessKey: string; secretKey: string };
  }
}

let server: DevServerHandle | undefined;
let s3: S3Server | undefined;

export async function setup(project: TestProject): Promise<void> {
  const port = await freePort();
  const uiPort = await freePort();
  server = await startDevServer({
    port,
    uiPort,
    dbFile: undefined,
    namespace: 'default',
    cliPath: process.env.TEMPORAL_CLI_PATH,
    log: (line) => process.stderr.write(`[dev-server] ${line}\n`),
  });
  project.provide('temporalAddress', server.address);
  project.provide('temporalUiUrl', server.uiUrl ?? '');
  s3 = await startS3Server({ port: await freePort() });
  project.provide('s3', { endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey });
}

export async function teardown(): Promise<void> {
  await server?.stop();
  await s3?.stop();
  if (s3) fs.rmSync(s3.dir, { recursive: true, force: true });
}
