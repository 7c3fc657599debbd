/**
 * Worker recycling (Celery's max-tasks-per-child): a worker process drains and exits 0 once it
 * has finished a set number of activities; the local autoscaler (or Kubernetes) starts a fresh
 * one. Guards against slow leaks in long-lived processes.
 */
import { metricTotal, type WorkerMetrics } from './metrics';

/** Activities this process has finished (completed + failed attempts), from the interceptor's counters. */
export async function finishedActivities(metrics: Pick<WorkerMetrics, 'completed' | 'failed'>): Promise<number> {
  const [completed, failed] = await Promise.all([metricTotal(metrics.completed), metricTotal(metrics.failed)]);
  return completed + failed;
}

/** Resolves `reached` once `maxTasks` activities have finished; `stop()` ends the watch. */
export interface TaskBudget {
  reached: Promise<number>;
  stop(): void;
}

/** Watches the counters every `checkMs`; with `maxTasks` 0 it never resolves. */
export function watchTaskBudget(
  metrics: Pick<WorkerMetrics, 'completed' | 'failed'>,
  maxTasks: number,
  checkMs = 250,
): TaskBudget {
  let timer: NodeJS.Timeout | undefined;
  const reached = new Promise<number>((resolve) => {
    if (maxTasks <= 0) return;
    timer = setInterval(() => {
      void finishedActivities(metrics).then((n) => {
        if (n >= maxTasks) {
          clearInterval(timer);
          resolve(n);
        }
      });
    }, checkMs);
  });
  return { reached, stop: () => clearInterval(timer) };
}
