/**
 * Dead-letter queue: failed pipelines (video, report and jobs alike, see
 * src/workflows/pipeline.ts), sub-jobs under a `partial` policy and completion webhooks that
 * exhausted their retries, kept with what is needed to understand and replay them. PostgreSQL when DATABASE_URL
 * is set, else a JSON-lines file under SLUICE_DATA_DIR (`dlq.jsonl`).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Pool } from 'pg';

/** One failure in a chain, outermost first. */
export interface FailureLink {
  type?: string;
  message: string;
}

/** What is recorded when something is dead-lettered. */
export interface DeadLetterInput {
  /** `pipeline` (a whole run failed) or `sub-job` (one sub-job under a partial policy). */
  kind: 'pipeline' | 'sub-job';
  workflowId: string;
  runId: string;
  workflowType: string;
  taskQueue: string;
  /** For sub-jobs: the activity type and its index in the fan-out. */
  activityType?: string;
  subJobIndex?: number;
  /** The input that failed (the workflow's, or the sub-job's). */
  input: unknown;
  failure: FailureLink[];
  attempts: number;
  /** Tenant, for listing. */
  tenant?: string;
}

/** A stored record. */
export interface DeadLetter extends DeadLetterInput {
  id: string;
  /** ISO time it was recorded. */
  failedAt: string;
  /** Workflow ID of the replay, once replayed. */
  replayedAs?: string;
  replayedAt?: string;
}

/** Storage of dead letters. */
export interface DlqStore {
  readonly kind: 'postgres' | 'file';
  /** Records one; the same (workflowId, runId, subJobIndex) is recorded once (activity retries are safe). */
  add(entry: DeadLetterInput): Promise<DeadLetter>;
  list(opts?: { limit?: number; includeReplayed?: boolean }): Promise<DeadLetter[]>;
  get(id: string): Promise<DeadLetter | undefined>;
  markReplayed(id: string, replayedAs: string): Promise<void>;
  /** Removes records older than `before`; returns how many. */
  purge(before: Date): Promise<number>;
  /** Records not yet replayed. */
  depth(): Promise<number>;
  close(): Promise<void>;
}

/** Deterministic ID: retries of the recording activity land on the same record. */
export function deadLetterId(e: Pick<DeadLetterInput, 'workflowId' | 'runId' | 'subJobIndex'>): string {
  return crypto
    .createHash('sha256')
    .update(`${e.workflowId}\n${e.runId}\n${e.subJobIndex ?? ''}`)
    .digest('hex')
    .slice(0, 16);
}

/** JSON-lines file: one record per line; updates append a new version of the record (last wins). */
export class FileDlqStore implements DlqStore {
  readonly kind = 'file';
  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
  }

  private readAll(): Map<string, DeadLetter> {
    const out = new Map<string, DeadLetter>();
    if (!fs.existsSync(this.file)) return out;
    for (const line of fs.readFileSync(this.file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const rec = JSON.parse(line) as DeadLetter & { deleted?: boolean };
        if (rec.deleted) out.delete(rec.id);
        else out.set(rec.id, rec);
      } catch {
        // A torn last line (crash mid-write) is skipped, never fatal.
      }
    }
    return out;
  }

  private append(recs: object[]): void {
    fs.appendFileSync(this.file, recs.map((r) => JSON.stringify(r) + '\n').join(''));
  }

  add(entry: DeadLetterInput): Promise<DeadLetter> {
    const id = deadLetterId(entry);
    const existing = this.readAll().get(id);
    if (existing) return Promise.resolve(existing);
    const rec: DeadLetter = { ...entry, id, failedAt: new Date().toISOString() };
    this.append([rec]);
    return Promise.resolve(rec);
  }

  list(opts: { limit?: number; includeReplayed?: boolean } = {}): Promise<DeadLetter[]> {
    const all = [...this.readAll().values()]
      .filter((r) => opts.includeReplayed !== false || !r.replayedAs)
      .sort((a, b) => b.failedAt.localeCompare(a.failedAt));
    return Promise.resolve(all.slice(0, opts.limit ?? 100));
  }

  get(id: string): Promise<DeadLetter | undefined> {
    return Promise.resolve(this.readAll().get(id));
  }

  markReplayed(id: string, replayedAs: string): Promise<void> {
    const rec = this.readAll().get(id);
    if (rec) this.append([{ ...rec, replayedAs, replayedAt: new Date().toISOString() }]);
    return Promise.resolve();
  }

  purge(before: Date): Promise<number> {
    const all = this.readAll();
    const keep = [...all.values()].filter((r) => new Date(r.failedAt) >= before);
    const removed = all.size - keep.length;
    // Compact: write the survivors to a temp file and rename over the old one.
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, keep.map((r) => JSON.stringify(r) + '\n').join(''));
    fs.renameSync(tmp, this.file);
    return Promise.resolve(removed);
  }

  depth(): Promise<number> {
    return Promise.resolve([...this.readAll().values()].filter((r) => !r.replayedAs).length);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

const PG_SCHEMA = `
CREATE TABLE IF NOT EXISTS sluice_dead_letters (
  id text PRIMARY KEY,
  kind text NOT NULL,
  workflow_id text NOT NULL,
  run_id text NOT NULL,
  workflow_type text NOT NULL,
  task_queue text NOT NULL,
  activity_type text,
  sub_job_index integer,
  tenant text,
  input jsonb,
  failure jsonb NOT NULL,
  attempts integer NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now(),
  replayed_as text,
  replayed_at timestamptz
);
CREATE INDEX IF NOT EXISTS sluice_dead_letters_failed_at ON sluice_dead_letters (failed_at);
`;

interface PgRow {
  id: string;
  kind: 'pipeline' | 'sub-job';
  workflow_id: string;
  run_id: string;
  workflow_type: string;
  task_queue: string;
  activity_type: string | null;
  sub_job_index: number | null;
  tenant: string | null;
  input: unknown;
  failure: FailureLink[];
  attempts: number;
  failed_at: Date;
  replayed_as: string | null;
  replayed_at: Date | null;
}

function fromRow(r: PgRow): DeadLetter {
  return {
    id: r.id,
    kind: r.kind,
    workflowId: r.workflow_id,
    runId: r.run_id,
    workflowType: r.workflow_type,
    taskQueue: r.task_queue,
    ...(r.activity_type !== null ? { activityType: r.activity_type } : {}),
    ...(r.sub_job_index !== null ? { subJobIndex: r.sub_job_index } : {}),
    ...(r.tenant !== null ? { tenant: r.tenant } : {}),
    input: r.input,
    failure: r.failure,
    attempts: r.attempts,
    failedAt: r.failed_at.toISOString(),
    ...(r.replayed_as !== null ? { replayedAs: r.replayed_as } : {}),
    ...(r.replayed_at !== null ? { replayedAt: r.replayed_at.toISOString() } : {}),
  };
}

/** PostgreSQL table `sluice_dead_letters` (created if missing), in a small pool. */
export class PgDlqStore implements DlqStore {
  readonly kind = 'postgres';
  private ready: Promise<void> | undefined;
  private readonly pool: Pool;

  constructor(connectionString: string) {
    this.pool = new Pool({ connectionString, max: 2 });
  }

  private init(): Promise<void> {
    this.ready ??= this.pool.query(PG_SCHEMA).then(() => undefined);
    return this.ready;
  }

  async add(e: DeadLetterInput): Promise<DeadLetter> {
    await this.init();
    const id = deadLetterId(e);
    await this.pool.query(
      `INSERT INTO sluice_dead_letters (id, kind, workflow_id, run_id, workflow_type, task_queue, activity_type, sub_job_index, tenant, input, failure, attempts)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT (id) DO NOTHING`,
      [
        id,
        e.kind,
        e.workflowId,
        e.runId,
        e.workflowType,
        e.taskQueue,
        e.activityType ?? null,
        e.subJobIndex ?? null,
        e.tenant ?? null,
        JSON.stringify(e.input ?? null),
        JSON.stringify(e.failure),
        e.attempts,
      ],
    );
    return (await this.get(id))!;
  }

  async list(opts: { limit?: number; includeReplayed?: boolean } = {}): Promise<DeadLetter[]> {
    await this.init();
    const res = await this.pool.query<PgRow>(
      `SELECT * FROM sluice_dead_letters ${opts.includeReplayed === false ? 'WHERE replayed_as IS NULL' : ''}
       ORDER BY failed_at DESC LIMIT $1`,
      [opts.limit ?? 100],
    );
    return res.rows.map(fromRow);
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    await this.init();
    const res = await this.pool.query<PgRow>('SELECT * FROM sluice_dead_letters WHERE id = $1', [id]);
    return res.rows[0] ? fromRow(res.rows[0]) : undefined;
  }

  async markReplayed(id: string, replayedAs: string): Promise<void> {
    await this.init();
    await this.pool.query('UPDATE sluice_dead_letters SET replayed_as = $2, replayed_at = now() WHERE id = $1', [
      id,
      replayedAs,
    ]);
  }

  async purge(before: Date): Promise<number> {
    await this.init();
    const res = await this.pool.query('DELETE FROM sluice_dead_letters WHERE failed_at < $1', [before]);
    return res.rowCount ?? 0;
  }

  async depth(): Promise<number> {
    await this.init();
    const res = await this.pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM sluice_dead_letters WHERE replayed_as IS NULL',
    );
    return Number(res.rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** The store from config: PostgreSQL when DATABASE_URL is set, else `<dataDir>/dlq.jsonl`. */
export function openDlqStore(config: { databaseUrl: string | undefined; dataDir: string }): DlqStore {
  return config.databaseUrl
    ? new PgDlqStore(config.databaseUrl)
    : new FileDlqStore(path.join(config.dataDir, 'dlq.jsonl'));
}
