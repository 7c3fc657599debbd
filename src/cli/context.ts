/** Helpers shared by CLI command modules. */
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { SluiceClient } from '../client';
import { loadConfig, type SluiceConfig } from '../config';

/** Sets the process exit code of the running command. */
export type SetExit = (code: number) => void;

/** Installs the SDK runtime once, before any connection: Sluice handles signals itself. */
export function installRuntime(config: SluiceConfig): void {
  Runtime.install({
    logger: new DefaultLogger(config.logLevel === 'debug' || config.logLevel === 'trace' ? 'INFO' : 'WARN'),
    shutdownSignals: [],
    // The SDK core's own metrics (pollers, slots, schedule-to-start latency) on their own port,
    // separate from Sluice's /metrics; must be configured here, before any connection exists.
    ...(config.sdkMetricsPort !== undefined
      ? {
          telemetryOptions: {
            metrics: {
              metricPrefix: 'temporal_',
              prometheus: {
                bindAddress: `0.0.0.0:${config.sdkMetricsPort}`,
                countersTotalSuffix: true,
                unitSuffix: true,
                useSecondsForDurations: true,
              },
            },
          },
        }
      : {}),
  });
}

export async function withClient<T>(fn: (client: SluiceClient) => Promise<T>): Promise<T> {
  const client = await SluiceClient.connect({ config: loadConfig() });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
