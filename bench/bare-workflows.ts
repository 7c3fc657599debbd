/**
 * The baseline of bench:peers: the plainest windowed fan-out a Temporal user would write by
 * hand with the bare SDK — no interceptors, no policies, no batching.
 */
import { proxyActivities } from '@temporalio/workflow';

const { sleep } = proxyActivities<{ sleep(ms: number): Promise<void> }>({ startToCloseTimeout: '1 minute' });

export async function bareFanOutWorkflow(jobs: number, ms: number, window: number): Promise<number> {
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < jobs) {
      next++;
      await sleep(ms);
      done++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, jobs) }, lane));
  return done;
}
