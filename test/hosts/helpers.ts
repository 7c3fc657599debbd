/** What the several-hosts tests share: a client on the lab's server, and who ran which activity. */
import fs from 'node:fs';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { SluiceClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import { createS3Client } from '../../src/storage/s3';
import type { Lab } from './netns';

/** A client (in the root namespace) on the lab's Temporal server and the given queue suffix. */
export function labClient(lab: Lab, suffix: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<SluiceClient> {
  const dir = path.join(lab.dir, `client-${suffix}`);
  fs.mkdirSync(dir, { recursive: true });
  const env = {
    ...lab.workerEnv({ SLUICE_TASK_QUEUE_SUFFIX: suffix }),
    SLUICE_DATA_DIR: dir,
    SLUICE_MEDIA_ROOT: dir,
    ...extraEnv,
  };
  return SluiceClient.connect({ config: loadConfig(env, dir) });
}

/** One started attempt of an activity, from the workflow's history. */
export interface StartedAttempt {
  activityType: string;
  activityId: string;
  /** 1-based. */
  attempt: number;
  /** The worker's identity, `<pid>@<hostname>`: the hostname names the lab host. */
  identity: string;
  /** Its result, when it completed. */
  result?: unknown;
}

/**
 * The activities of a run, in history order: started attempts with their identities, joined to
 * their results. Only the attempt that closed an activity gets a Started event (earlier attempts
 * are retried inside the server), so `attempt` ≥ 2 shows a retry.
 */
export async function startedAttempts(client: SluiceClient, workflowId: string): Promise<StartedAttempt[]> {
  const events = (await client.temporal.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const scheduledById = new Map<string, { type: string; id: string }>();
  const byStarted = new Map<string, StartedAttempt>();
  const out: StartedAttempt[] = [];
  for (const e of events) {
    const id = String(e.eventId);
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) scheduledById.set(id, { type: scheduled.activityType?.name ?? '', id: scheduled.activityId ?? '' });
    const started = e.activityTaskStartedEventAttributes;
    if (started) {
      const of = scheduledById.get(String(started.scheduledEventId));
      const attempt: StartedAttempt = {
        activityType: of?.type ?? '',
        activityId: of?.id ?? '',
        attempt: started.attempt ?? 1,
        identity: started.identity ?? '',
      };
      byStarted.set(id, attempt);
      out.push(attempt);
    }
    const completed = e.activityTaskCompletedEventAttributes;
    const data = completed?.result?.payloads?.[0]?.data;
    const match = completed ? byStarted.get(String(completed.startedEventId)) : undefined;
    if (match && data instanceof Uint8Array) match.result = JSON.parse(Buffer.from(data).toString());
  }
  return out;
}

/** The lab host name (`h2`) in a worker identity (`123@sluice-h2`). */
export function hostOf(identity: string): string {
  return identity.split('@sluice-')[1] ?? identity;
}

/** Every object under `prefix` in the lab's bucket: key, size, ETag and modification time. */
export type StoreListing = { key: string; size: number; etag: string; modified: string }[];

export async function listStore(lab: Lab, prefix: string): Promise<StoreListing> {
  if (!lab.s3 || !lab.bucket) throw new Error('the lab has no S3 server');
  const s3 = createS3Client({
    endpoint: lab.s3.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: lab.s3.accessKey, secretAccessKey: lab.s3.secretKey },
  });
  const out: StoreListing = [];
  try {
    let token: string | undefined;
    for (let page = 0; page < 1_000; page++) {
      const res = await s3.send(
        new ListObjectsV2Command({ Bucket: lab.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of res.Contents ?? []) {
        out.push({
          key: o.Key ?? '',
          size: o.Size ?? 0,
          etag: o.ETag ?? '',
          modified: o.LastModified?.toISOString() ?? '',
        });
      }
      token = res.NextContinuationToken;
      if (!token) break;
    }
  } finally {
    s3.destroy();
  }
  return out.sort((a, b) => a.key.localeCompare(b.key));
}
