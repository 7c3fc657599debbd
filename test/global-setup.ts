/**
 * One real Temporal dev server per test run (the pinned CLI, never a mock), on free ports with
 * in-memory state. Tests read its address with `inject('temporalAddress')`.
 */
import type { TestProject } from 'vitest/node';
import { freePort, startDevServer, type DevServerHandle } from '../src/devserver/dev-server';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalUiUrl: string;
  }
}

let server: DevServerHandle | undefined;

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
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
