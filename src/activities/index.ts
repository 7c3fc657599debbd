/**
 * All activities a worker registers, built from their dependencies. One module per external
 * system (media = ffmpeg/ffprobe, …); each is a factory so tests can pass their own dependencies.
 * To add a system: a folder here with `createXxxActivities(deps)`, an optional `xxx` field in
 * {@link ActivityDeps}, and one spread line below.
 */
import { createBurstActivities, type BurstDeps } from './burst';
import { createMediaActivities, type MediaDeps } from './media';
import { createPackagingActivities } from './media/package';
import { createNotifyActivities, type NotifyDeps } from './notify';
import { createReportActivities, type ReportDeps } from './reports';

export interface ActivityDeps {
  media: MediaDeps;
  /** Report activities (DuckDB / PostgreSQL). @default unset: not registered */
  reports?: ReportDeps;
  /** Sleep sub-jobs of `sluice demo burst` and the autoscale bench. @default {} (always registered: no dependencies) */
  burst?: BurstDeps;
  /** Webhook delivery and dead-letter recording. @default unset: not registered */
  notify?: NotifyDeps;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createMediaActivities(deps.media),
    ...createPackagingActivities(deps.media),
    ...(deps.reports ? createReportActivities(deps.reports) : {}),
    ...createBurstActivities(deps.burst ?? {}),
    ...(deps.notify ? createNotifyActivities(deps.notify) : {}),
  };
}

export type SluiceActivities = ReturnType<typeof createActivities>;
