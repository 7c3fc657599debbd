/**
 * Configuration: the environment is parsed once, here, into a typed and validated object.
 * Nothing else reads `process.env`; workflows never do. Every problem is listed at once.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { usableCpus } from './shared/cpu-quota';
import { ALL_CRASH_POINTS, BUILD_ID_PATTERN, DEFAULT_SLOT_WEIGHTS, TIERS, isTier, type Tier } from './shared/constants';
import type { CrashHooks } from './crash-point';
import { parseApiKeys } from './security/api-keys';
import { parseCodecKeys } from './security/keys';
import { Secret } from './security/secret';
import { parseAllowList } from './security/ssrf';
import type { TracingConfig } from './tracing';

const bool = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', ''])
  .transform((v) => v === '1' || v === 'true' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Schema of the environment, with the documented default of every tunable next to it. */
const EnvSchema = z.object({
  /** Temporal frontend `host:port`. Unset: the embedded dev server (started by `sluice up`). */
  TEMPORAL_ADDRESS: z.string().min(1).optional(),
  /** @default 'default' — Temporal namespace of every workflow, schedule and task queue. */
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** API key for Temporal Cloud; implies TLS. */
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  /** Force TLS on or off; defaults to on when a client cert or API key is given. */
  TEMPORAL_TLS: bool.optional(),
  /** mTLS client certificate (PEM); requires TEMPORAL_TLS_CLIENT_KEY_PATH. */
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().min(1).optional(),
  /** mTLS client private key (PEM); requires TEMPORAL_TLS_CLIENT_CERT_PATH. */
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().min(1).optional(),
  /** CA certificate (PEM) that signed the server's certificate. @default the system roots */
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().min(1).optional(),
  /** Server name to verify instead of the address's host (SNI). */
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  /** Path to a `temporal` CLI binary; searched before PATH and `.tools/`. */
  TEMPORAL_CLI_PATH: z.string().min(1).optional(),

  /** @default '.data' — state of the embedded default (SQLite, generated media, outputs). */
  SLUICE_DATA_DIR: z.string().min(1).default('.data'),
  /** @default 7233 — frontend port of the embedded dev server. */
  SLUICE_DEV_SERVER_PORT: int(1, 65535).default(7233),
  /** @default 8233 — Temporal UI port of the embedded dev server. */
  SLUICE_DEV_UI_PORT: int(1, 65535).default(8233),
  /** @default the current directory — inputs must resolve inside it (after symlinks). */
  SLUICE_MEDIA_ROOT: z.string().min(1).optional(),
  /** @default '<SLUICE_DATA_DIR>/outputs' — artifacts, one folder per workflow ID, written to temp names and renamed. */
  SLUICE_OUTPUT_DIR: z.string().min(1).optional(),
  /** @default 9464 — one HTTP port per process for /metrics, /healthz, /readyz; 0 picks a free port. */
  SLUICE_METRICS_PORT: int(0, 65535).default(9464),
  /** @default 30000 — how long in-flight activities may run on after SIGTERM before they are cancelled. */
  SLUICE_SHUTDOWN_GRACE_MS: int(0, 3_600_000).default(30_000),
  /**
   * Workflows each tier's Worker keeps in its sticky cache; an evicted workflow is rebuilt by
   * replaying its history. Lower it to bound memory when one worker hosts very many concurrent
   * workflows. @default the SDK's own (scales with the V8 heap limit)
   */
  SLUICE_MAX_CACHED_WORKFLOWS: int(0, 100_000).optional(),
  /** Activity slots of the critical tier (per process). @default 4 */
  SLUICE_SLOTS_CRITICAL: int(1, 1000).default(4),
  /** Activity slots of the high tier (per process). @default 4 */
  SLUICE_SLOTS_HIGH: int(1, 1000).default(4),
  /** Activity slots of the default tier (per process). @default 4 */
  SLUICE_SLOTS_DEFAULT: int(1, 1000).default(4),
  /** Activity slots of the low tier (per process). @default 2 */
  SLUICE_SLOTS_LOW: int(1, 1000).default(2),
  /** @default the CPUs this process may use (its cgroup CPU quota, rounded down, else its cores) — ffmpeg processes at once per worker process (a Bottleneck limiter). */
  SLUICE_FFMPEG_CONCURRENCY: int(1, 256).optional(),
  /** Explicit ffmpeg / ffprobe binaries. Default: system binaries on PATH, else the npm-shipped ones. */
  SLUICE_FFMPEG_PATH: z.string().min(1).optional(),
  /** Explicit ffprobe binary (see SLUICE_FFMPEG_PATH). */
  SLUICE_FFPROBE_PATH: z.string().min(1).optional(),
  /** Appended to every task-queue name (`sluice-high-<suffix>`): isolates deployments sharing a namespace. @default none */
  SLUICE_TASK_QUEUE_SUFFIX: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,40}$/, 'lowercase letters, digits and -')
    .optional(),
  /**
   * Activity slots a process shares between the tiers it serves, split by SLUICE_SLOT_WEIGHTS; a
   * tier with no work lends its share to the others. @default the sum of SLUICE_SLOTS_<TIER> of the served tiers
   */
  SLUICE_SLOTS_TOTAL: int(1, 10_000).optional(),
  /** Weights of the slot split, `tier=weight,…`. @default 'critical=6,high=3,default=2,low=1' */
  SLUICE_SLOT_WEIGHTS: z.string().optional(),
  /**
   * Activity tasks a process may hold beyond its slots, so the next one starts the moment a slot
   * frees (as Celery's prefetch or BullMQ's fetch-on-complete). Held tasks wait on this process,
   * their start-to-close time running, instead of going to another worker: raise it for short I/O
   * sub-jobs, keep 0 for long ones. @default 0
   */
  SLUICE_PREFETCH: int(0, 10_000).default(0),
  /**
   * Seconds a sub-job waits on the `low` queue before it is dispatched again on `default`.
   * 0 turns promotion off. @default 1800 (30 min)
   */
  SLUICE_PROMOTION_AGE_SECONDS: int(0, 30 * 24 * 3600).default(1800),
  /** Server-side cap on activities per second across every worker of a task queue. @default unlimited */
  SLUICE_MAX_TASK_QUEUE_ACTIVITIES_PER_SECOND: z.coerce.number().positive().optional(),
  /** Retry backoff base (first retry's ceiling) for full jitter. @default 1000 */
  SLUICE_RETRY_BASE_MS: int(1, 3_600_000).default(1_000),
  /** Cap of any retry delay. @default 30000 */
  SLUICE_RETRY_CAP_MS: int(1, 24 * 3_600_000).default(30_000),
  /**
   * Per-activity-type retry policy, JSON: `{"deliverWebhook":{"maxAttempts":8,"baseMs":500,"capMs":60000}}`.
   * Applied by the worker (attempt budget and jittered delay). @default {} (SLUICE_RETRY_BASE_MS/CAP_MS, the workflow's attempt limit)
   */
  SLUICE_RETRY_POLICIES: z.string().optional(),
  /** Fairness weights of tenants within a queue, `tenant=weight,…` (Temporal `fairnessWeight`). @default 1 each */
  SLUICE_FAIRNESS_WEIGHTS: z.string().optional(),
  /** Tenant limits file (YAML: per-tenant weight, maxRunning, maxInFlight, and a default), re-read when it changes; its weights win over SLUICE_FAIRNESS_WEIGHTS. @default unset: no caps */
  SLUICE_TENANT_LIMITS: z.string().min(1).optional(),
  /** Redis for cluster-wide rate limits (Bottleneck clustering). @default unset: limits are per process */
  REDIS_URL: z.string().url().optional(),
  /** PostgreSQL for the dead-letter queue. @default unset: a JSON-lines file under SLUICE_DATA_DIR */
  DATABASE_URL: z.string().min(1).optional(),
  /** HMAC-SHA256 key of webhook signatures (`X-Sluice-Signature`). @default unset: deliveries fail as InvalidInput */
  SLUICE_WEBHOOK_SECRET: z.string().min(1).optional(),
  /**
   * Webhook requests per second across every worker process (Redis) or per process (no Redis).
   * Requests are spaced when they are admitted, and a busy sender can send an admitted one late,
   * next to others' on-time ones: set it about 30 % below a receiver's hard limit. A 429 with
   * Retry-After slows every process down. @default 50
   */
  SLUICE_WEBHOOK_RATE_PER_SECOND: z.coerce.number().positive().default(50),
  /** Webhook requests per second of this process alone (the local limiter). @default 50 */
  SLUICE_WEBHOOK_LOCAL_RATE_PER_SECOND: z.coerce.number().positive().default(50),
  /** Webhook requests in flight per process. @default 16 */
  SLUICE_WEBHOOK_CONCURRENCY: int(1, 1000).default(16),
  /** Per-tenant webhook rates, `tenant=perSecond,…`. @default none (SLUICE_WEBHOOK_TENANT_RATE_PER_SECOND) */
  SLUICE_WEBHOOK_TENANT_LIMITS: z.string().optional(),
  /** Webhook requests per second of a tenant not listed in SLUICE_WEBHOOK_TENANT_LIMITS. @default 20 */
  SLUICE_WEBHOOK_TENANT_RATE_PER_SECOND: z.coerce.number().positive().default(20),
  /**
   * When Redis is unreachable: `local-share` runs on at SLUICE_WEBHOOK_FALLBACK_RATE_PER_SECOND in this
   * process; `pause` sends nothing until Redis is back. Never unlimited. @default 'local-share'
   */
  SLUICE_WEBHOOK_REDIS_FALLBACK: z.enum(['local-share', 'pause']).default('local-share'),
  /** This process's conservative share while Redis is unreachable. @default 5 */
  SLUICE_WEBHOOK_FALLBACK_RATE_PER_SECOND: z.coerce.number().positive().default(5),
  /** Bottleneck cluster id (Redis key prefix) of the webhook limiter. @default 'sluice-webhook' */
  SLUICE_WEBHOOK_LIMITER_ID: z
    .string()
    .regex(/^[A-Za-z0-9:_-]{1,100}$/)
    .default('sluice-webhook'),
  /** Timeout of one webhook request. @default 10000 */
  SLUICE_WEBHOOK_TIMEOUT_MS: int(100, 300_000).default(10_000),
  /** Port of the Temporal SDK's own Prometheus metrics (Rust core: polls, slots, latencies). @default unset — off; deploy/ sets 9465 */
  SLUICE_SDK_METRICS_PORT: int(1, 65535).optional(),
  /** @default 5000 — how often task-queue stats are read (backlog exporter, local autoscaler); 0 turns the in-process exporter off. */
  SLUICE_SCALE_POLL_MS: int(0, 600_000).default(5_000),
  /** @default 1 — fewest worker replicas per tier (planner bound, local autoscaler). */
  SLUICE_SCALE_MIN: int(0, 1000).default(1),
  /** @default 4 — most worker replicas per tier (planner bound, local autoscaler). */
  SLUICE_SCALE_MAX: int(1, 1000).default(4),
  /** @default 0.25 — headroom the planner adds on top of the computed need. */
  SLUICE_SCALE_BUFFER: z.coerce.number().min(0).max(10).default(0.25),
  /** @default 1 — average activity duration (s) the planner assumes until it has observed some. */
  SLUICE_SCALE_TASK_SECONDS: z.coerce.number().positive().max(86_400).default(1),
  /** @default 30 — seconds ahead the planner projects a growing backlog. */
  SLUICE_SCALE_REACTION_SECONDS: z.coerce.number().min(0).max(3600).default(30),
  /** Seconds in which the backlog should be cleared, for every tier. @default unset — each tier's SLA */
  SLUICE_SCALE_TARGET_SECONDS: z.coerce.number().positive().max(86_400).optional(),
  /** @default 1000 — a higher recommendation must hold this long (confirmed by a re-poll) before the local autoscaler scales up. */
  SLUICE_AUTOSCALE_UP_STABILIZATION_MS: int(0, 600_000).default(1_000),
  /** @default 30000 — the local autoscaler scales down only this long after its last scaling action, to the highest recommendation seen in that window. */
  SLUICE_AUTOSCALE_DOWN_COOLDOWN_MS: int(0, 3_600_000).default(30_000),
  /** @default 0 (never) — a worker process drains and exits 0 after this many finished activities; the autoscaler replaces it. */
  SLUICE_WORKER_MAX_TASKS: int(0, 100_000_000).default(0),
  /** Where reports read orders: DuckDB over Parquet partitions (embedded) or PostgreSQL. @default 'duckdb' */
  REPORT_SOURCE: z.enum(['duckdb', 'postgres']).default('duckdb'),
  /** PostgreSQL of the report source. @default 'postgres://postgres@127.0.0.1:5432/test' */
  SLUICE_PG_URL: z.string().min(1).default('postgres://postgres@127.0.0.1:5432/test'),
  /** Connections in each worker process's report pg Pool. @default 4 */
  SLUICE_PG_POOL_MAX: int(1, 1000).default(4),
  /** Connections the report database grants Sluice in total: start-up refuses max workers × pool max above it. @default 20 */
  SLUICE_PG_CONNECTION_BUDGET: int(1, 100_000).default(20),
  /** Most worker processes that may run at once (autoscaler max, HPA maxReplicas). @default 1 */
  SLUICE_MAX_WORKER_PROCESSES: int(1, 10_000).default(1),
  /** Threads of the embedded DuckDB per worker process. @default the cores ÷ 4 concurrent queries, at least 1 */
  SLUICE_DUCKDB_THREADS: int(1, 256).optional(),
  /** DuckDB `memory_limit` of a worker process's report source, e.g. '512MB'. @default DuckDB's own (80% of RAM) */
  SLUICE_DUCKDB_MEMORY_LIMIT: z
    .string()
    .regex(/^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$/i, 'a size such as 512MB or 1GB')
    .optional(),
  /** Port of `sluice api`; 0 picks a free port. @default 8080 */
  SLUICE_API_PORT: int(0, 65535).default(8080),
  /** Largest request body `sluice api` accepts, in bytes; larger gets 413. @default 65536 */
  SLUICE_API_BODY_LIMIT_BYTES: int(1, 100 * 1024 * 1024).default(65_536),
  /**
   * API keys of `sluice api`, `tenant:key` or `*:key` (admin), comma-separated; a key is 16+
   * characters or `sha256:<hex digest>`. Kept only as SHA-256 digests.
   * @default unset — no authentication, and `sluice api` binds to loopback only
   */
  SLUICE_API_KEYS: z.string().optional(),
  /** File of API keys instead or as well: one `tenant:key` a line, `#` comments. @default unset */
  SLUICE_API_KEYS_FILE: z.string().min(1).optional(),
  /**
   * Payload encryption keys, `id:base64key,…` (32-byte AES-256 keys in base64). The first one
   * encrypts; every listed one decrypts, so old key IDs stay readable after a rotation.
   * @default unset — payloads are stored unencrypted
   */
  SLUICE_CODEC_KEYS: z.string().optional(),
  /** File with the keys instead: `id:base64key` lines, or JSON `{"active":"k2","keys":{"k2":"…"}}`. @default unset */
  SLUICE_CODEC_KEYS_FILE: z.string().min(1).optional(),
  /** Bearer token `sluice codec-server` requires on /encode and /decode (16+ characters). @default unset — the codec server refuses to start */
  SLUICE_CODEC_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Port of `sluice codec-server` (and of the one `sluice up` runs); 0 picks a free port. @default 8234 */
  SLUICE_CODEC_PORT: int(0, 65535).default(8234),
  /** Interface `sluice codec-server` listens on. @default '127.0.0.1' */
  SLUICE_CODEC_HOST: z.string().min(1).default('127.0.0.1'),
  /** Browser origins allowed to call the codec server (CORS), comma-separated; `sluice up` adds its own UI. @default none */
  SLUICE_CODEC_CORS_ORIGINS: z.string().optional(),
  /**
   * Webhook hosts, IPs and CIDRs exempt from the SSRF guard, comma-separated (`127.0.0.1,localhost,10.1.0.0/16`);
   * an entry with a port (`hooks.internal:8443`, `127.0.0.1:8080`, `[::1]:9000`) allows that port only.
   * @default none — loopback, link-local, metadata and private addresses are refused
   */
  SLUICE_WEBHOOK_ALLOW: z.string().optional(),
  /**
   * Where inputs, intermediates and artifacts live: `file:///abs/dir` (this host only) or
   * `s3://bucket/prefix` (any S3-compatible store; credentials, region and endpoint from the AWS
   * SDK's own variables). @default file://<SLUICE_DATA_DIR> — needs no server
   */
  SLUICE_STORAGE_URL: z.string().min(1).optional(),
  /** @default '<SLUICE_DATA_DIR>/scratch' — this host's temporary files (segments before upload, downloads); each activity removes its own. */
  SLUICE_SCRATCH_DIR: z.string().min(1).optional(),
  /** @default 3600 — lifetime of the presigned `url` of each artifact on `s3` (60 s to 7 days). */
  SLUICE_PRESIGN_TTL_SECONDS: int(60, 7 * 24 * 3600).default(3600),
  /** @default 30 — seconds an S3 request may stay silent before it is abandoned and retried. */
  SLUICE_S3_REQUEST_TIMEOUT_SECONDS: int(1, 3600).default(30),
  /** S3 endpoint for S3-compatible stores (the AWS SDK's variable; implies path-style addressing). @default AWS */
  AWS_ENDPOINT_URL_S3: z.string().url().optional(),
  /** Endpoint for every AWS service; used for S3 when AWS_ENDPOINT_URL_S3 is unset. @default AWS */
  AWS_ENDPOINT_URL: z.string().url().optional(),
  /** Region of the S3 store (the AWS SDK's variable). @default the SDK's chain, else 'us-east-1' */
  AWS_REGION: z.string().min(1).optional(),
  /** Static S3 credentials (with AWS_SECRET_ACCESS_KEY). @default the AWS SDK's chain: profiles, web identity (IRSA), instance roles */
  AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
  /** Secret of AWS_ACCESS_KEY_ID; prints as [redacted]. */
  AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  /** Session token of temporary credentials. @default none */
  AWS_SESSION_TOKEN: z.string().min(1).optional(),
  /** Worker Deployment Versioning: workers register `sluice-<tier>` with a build ID; 0 runs unversioned workers. @default 1 */
  SLUICE_VERSIONING: bool.default('1'),
  /** Build ID of this worker's code, e.g. the image tag; a Kubernetes label value. @default `bundle-<hash of the workflow bundle>` */
  SLUICE_BUILD_ID: z
    .string()
    .regex(BUILD_ID_PATTERN, 'letters, digits, ., _ and - (at most 63, alphanumeric at both ends)')
    .optional(),
  /** When a starting worker makes its version current: `if-unset` (first deploy), `always` (`sluice up`), `never`. @default 'if-unset' */
  SLUICE_SET_CURRENT_VERSION: z.enum(['if-unset', 'always', 'never']).default('if-unset'),
  /** @default 'info' — pino level of the logs on stderr (fatal, error, warn, info, debug, trace, silent). */
  SLUICE_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * @default 'auto' — log lines on stderr: `auto` is readable lines when stderr is a terminal and
   * JSON otherwise; `json` always JSON (for log shippers); `pretty` always readable lines.
   */
  SLUICE_LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /**
   * OTLP/HTTP collector base URL (`http://host:4318`; traces go to `/v1/traces`). Setting it (or
   * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) turns tracing on; the exporter also reads the other
   * standard `OTEL_EXPORTER_OTLP_*` variables (headers, timeout). @default unset: tracing off
   */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional(),
  /** Full OTLP/HTTP URL of traces (`http://host:4318/v1/traces`); wins over OTEL_EXPORTER_OTLP_ENDPOINT. @default unset */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.string().url().optional(),
  /** `true` turns tracing off even with an endpoint set. @default false */
  OTEL_SDK_DISABLED: bool.default('false'),
  /** @default the process's role: `sluice-worker`, `sluice-api` or `sluice-cli` — `service.name` of its spans. */
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
  /**
   * Test builds only: turns on the crash hooks of the worker (src/crash-point.ts), which record the
   * crash points they reach under `<SLUICE_DATA_DIR>/crash-hooks/`. Never set it in production.
   * @default off
   */
  SLUICE_TEST_CRASH_HOOKS: bool.default('0'),
  /**
   * Test builds only, with SLUICE_TEST_CRASH_HOOKS=1: the crash point (one of CRASH_POINTS in
   * src/shared/constants.ts) at which the worker SIGKILLs itself, once. @default unset
   */
  SLUICE_CRASH_AT: z.string().min(1).optional(),
});

export interface TemporalConnectionConfig {
  /** `host:port`; undefined means the embedded dev server. */
  address: string | undefined;
  namespace: string;
  apiKey: string | undefined;
  tls:
    | false
    | {
        clientCertPath?: string;
        clientKeyPath?: string;
        serverCaCertPath?: string;
        serverName?: string;
      };
}

/** Where pipelines keep inputs, intermediates and artifacts (SLUICE_STORAGE_URL). */
export type StorageConfig = (
  | { kind: 'file'; /** Absolute root folder. */ root: string }
  | { kind: 's3'; bucket: string; /** Key prefix, no slashes at the ends ('' for the bucket root). */ prefix: string }
) & {
  /** The URL as given, or the default. */
  url: string;
  /** S3 connection (also used for `s3://` sources when the backend is `file`). */
  s3: {
    endpoint: string | undefined;
    region: string | undefined;
    requestTimeoutSec: number;
    /** Static credentials from the environment; undefined: the AWS SDK's default chain. */
    credentials: { accessKeyId: string; secretAccessKey: Secret; sessionToken?: Secret } | undefined;
  };
  scratchDir: string;
  presignTtlSec: number;
};

/** Parses SLUICE_STORAGE_URL; problems are pushed naming the variable. */
export function parseStorageUrl(
  url: string,
  problems: string[],
): { kind: 'file'; root: string } | { kind: 's3'; bucket: string; prefix: string } | undefined {
  const bad = (why: string) => {
    problems.push(`SLUICE_STORAGE_URL: ${JSON.stringify(url)} ${why}`);
    return undefined;
  };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return bad('is not a URL; expected file:///abs/dir or s3://bucket/prefix');
  }
  if (parsed.protocol === 'file:') {
    if (parsed.host) return bad('must be file:///absolute/path (no host)');
    return { kind: 'file', root: decodeURIComponent(parsed.pathname).replace(/\/+$/, '') || '/' };
  }
  if (parsed.protocol === 's3:') {
    // Bucket naming rules (3-63 lowercase letters, digits, dots and hyphens).
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(parsed.hostname)) return bad('has no valid bucket name');
    if (parsed.search || parsed.hash) return bad('must not have a query or fragment');
    return {
      kind: 's3',
      bucket: parsed.hostname,
      prefix: decodeURIComponent(parsed.pathname).replace(/^\/+|\/+$/g, ''),
    };
  }
  return bad(`has an unsupported scheme ${parsed.protocol.replace(/:$/, '')}; expected file or s3`);
}

export interface SluiceConfig {
  temporal: TemporalConnectionConfig;
  temporalCliPath: string | undefined;
  dataDir: string;
  devServer: { port: number; uiPort: number; dbFile: string };
  mediaRoot: string;
  /** Artifacts of the `file` backend (SLUICE_OUTPUT_DIR); on `s3` they go to `<prefix>/outputs/`. */
  outputDir: string;
  storage: StorageConfig;
  metricsPort: number;
  shutdownGraceMs: number;
  slots: Record<Tier, number>;
  ffmpegConcurrency: number;
  maxCachedWorkflows: number | undefined;
  ffmpegPath: string | undefined;
  ffprobePath: string | undefined;
  taskQueueSuffix: string;
  logLevel: z.infer<typeof EnvSchema>['SLUICE_LOG_LEVEL'];
  /** SLUICE_LOG_FORMAT: `auto` (readable on a terminal, else JSON), `json` or `pretty`. */
  logFormat: z.infer<typeof EnvSchema>['SLUICE_LOG_FORMAT'];
  /** Report source and its settings (DuckDB over `<dataDir>/orders`, or PostgreSQL). */
  reports: {
    source: 'duckdb' | 'postgres';
    /** Parquet partitions: `<dataDir>/orders/<YYYY-MM>.parquet`. */
    partitionsDir: string;
    pgUrl: string;
    pgPoolMax: number;
    pgConnectionBudget: number;
    maxWorkerProcesses: number;
    duckdbThreads: number | undefined;
    /** DuckDB memory_limit per worker process; undefined = DuckDB's own. */
    duckdbMemoryLimit: string | undefined;
  };
  /** `sluice api`: port, request-body limit and API keys (SLUICE_API_KEYS, SLUICE_API_KEYS_FILE). */
  api: { port: number; bodyLimitBytes: number; keys: Secret | undefined; keysFile: string | undefined };
  /** SDK (core) Prometheus metrics port; undefined = off. */
  sdkMetricsPort: number | undefined;
  /** Drain and exit after this many finished activities; 0 = never. */
  workerMaxTasks: number;
  scaling: ScalingConfig;
  /** Shared slot pool of a process; `total` undefined means the sum of the served tiers' slots. */
  slotPool: { total: number | undefined; weights: Record<Tier, number> };
  /** Activity tasks a process may hold beyond its slots (SLUICE_PREFETCH). */
  prefetch: number;
  /** Seconds on a tier's queue before a sub-job is promoted; only `low` by default. */
  promoteAfterSeconds: Partial<Record<Tier, number>>;
  maxTaskQueueActivitiesPerSecond: number | undefined;
  retry: { baseMs: number; capMs: number; byActivity: Record<string, ActivityRetryConfig> };
  /** Temporal `fairnessWeight` by tenant (SLUICE_FAIRNESS_WEIGHTS). */
  fairnessWeights: Record<string, number>;
  /** SLUICE_TENANT_LIMITS, resolved; read by src/ratelimit/tenant-limits.ts. */
  tenantLimitsFile: string | undefined;
  redisUrl: string | undefined;
  databaseUrl: string | undefined;
  webhook: WebhookConfig;
  /** Test-only crash hooks (SLUICE_TEST_CRASH_HOOKS, SLUICE_CRASH_AT); unset in production. */
  testCrashHooks?: CrashHooks;
  /** Payload encryption and the codec server (see src/security/codec.ts). */
  codec: CodecConfig;
  /** Worker Deployment Versioning (see src/workers/versioning.ts). */
  versioning: VersioningConfig;
  /** OpenTelemetry tracing over OTLP (see src/tracing). */
  tracing: TracingConfig;
}

/** Worker Deployment Versioning of the workers. */
export interface VersioningConfig {
  enabled: boolean;
  /** SLUICE_BUILD_ID; undefined = derived from the workflow bundle. */
  buildId: string | undefined;
  setCurrent: 'if-unset' | 'always' | 'never';
}

/** Payload encryption keys and the codec server. Secrets print as `[redacted]`. */
export interface CodecConfig {
  /** SLUICE_CODEC_KEYS (validated); undefined when unset. */
  keys: Secret | undefined;
  /** SLUICE_CODEC_KEYS_FILE; read when the codec is built. */
  keysFile: string | undefined;
  /** Bearer token of the codec server. */
  token: Secret | undefined;
  port: number;
  host: string;
  /** Origins allowed by CORS. */
  corsOrigins: string[];
}

/** Retry policy of one activity type, applied by the worker. */
export interface ActivityRetryConfig {
  /** Attempts in all (first try included); at most the workflow's own limit. */
  maxAttempts?: number;
  /** Ceiling of the first retry's delay. */
  baseMs?: number;
  /** Cap of any delay. */
  capMs?: number;
}

/** Webhook delivery and its limiters (see src/ratelimit/webhook-limiter.ts). */
export interface WebhookConfig {
  secret: string | undefined;
  ratePerSecond: number;
  localRatePerSecond: number;
  concurrency: number;
  tenantRates: Record<string, number>;
  defaultTenantRatePerSecond: number;
  redisFallback: 'local-share' | 'pause';
  fallbackRatePerSecond: number;
  limiterId: string;
  timeoutMs: number;
  /** Hosts, IPs and CIDRs exempt from the SSRF guard (SLUICE_WEBHOOK_ALLOW). */
  allow: string[];
}

const RetryPoliciesSchema = z.record(
  z
    .object({
      maxAttempts: z.number().int().min(1).max(1000).optional(),
      baseMs: z.number().int().min(1).optional(),
      capMs: z.number().int().min(1).optional(),
    })
    .strict(),
);

/** Parses `key=number,…`; problems are pushed with the variable's name. */
function parsePairs(variable: string, text: string | undefined, problems: string[]): Record<string, number> {
  // No prototype: keys are tenant names, and `constructor` or `__proto__` are valid tenants.
  const out = Object.create(null) as Record<string, number>;
  if (!text) return out;
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [key, value] = part.split('=', 2).map((x) => x.trim());
    const n = Number(value);
    if (!key || value === undefined || !Number.isFinite(n) || n <= 0) {
      problems.push(`${variable}: expected key=positive number, got ${JSON.stringify(part)}`);
      continue;
    }
    out[key] = n;
  }
  return out;
}

/** True for a `postgres://` or `postgresql://` URL (the value itself is never echoed: it may hold a password). */
function isPostgresUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'postgres:' || url.protocol === 'postgresql:';
  } catch {
    return false;
  }
}

/** Backlog exporter, capacity planner and local autoscaler settings (`SLUICE_SCALE_*`, `SLUICE_AUTOSCALE_*`). */
export interface ScalingConfig {
  pollMs: number;
  minReplicas: number;
  maxReplicas: number;
  buffer: number;
  defaultTaskSeconds: number;
  reactionSeconds: number;
  /** Overrides every tier's SLA as the drain target when set. */
  targetSeconds: number | undefined;
  upStabilizationMs: number;
  downCooldownMs: number;
}

/** Raised when the environment is invalid; lists every problem with the variable it concerns. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** The parsed environment. */
type Env = z.infer<typeof EnvSchema>;

/** Parse an environment (default: `process.env`) into a {@link SluiceConfig}; throws {@link ConfigError}. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): SluiceConfig {
  // Empty strings mean "unset", as in most shells' `FOO= cmd`.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  // Each section checks its own variables; every problem of every section is listed at once.
  const problems: string[] = [];
  const dataDir = path.resolve(cwd, e.SLUICE_DATA_DIR);
  const temporal = temporalSection(e, problems);
  const slotPool = slotPoolSection(e, problems);
  const fairnessWeights = parsePairs('SLUICE_FAIRNESS_WEIGHTS', e.SLUICE_FAIRNESS_WEIGHTS, problems);
  const webhook = webhookSection(e, problems);
  const retry = retrySection(e, problems);
  const scaling = scalingSection(e, problems);
  const codec = codecSection(e, cwd, problems);
  const api = apiSection(e, cwd, problems);
  checkPostgresUrl('DATABASE_URL', e.DATABASE_URL, problems);
  const storage = storageConfig(e, dataDir, cwd, problems);
  const reports = reportsSection(e, storage, dataDir, problems);
  const crashHooks = crashHooksSection(e, dataDir, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    temporal,
    temporalCliPath: e.TEMPORAL_CLI_PATH,
    dataDir,
    devServer: {
      port: e.SLUICE_DEV_SERVER_PORT,
      uiPort: e.SLUICE_DEV_UI_PORT,
      dbFile: path.join(dataDir, 'temporal.sqlite'),
    },
    mediaRoot: path.resolve(cwd, e.SLUICE_MEDIA_ROOT ?? '.'),
    outputDir: path.resolve(
      cwd,
      e.SLUICE_OUTPUT_DIR ?? path.join(storage.kind === 'file' ? storage.root : e.SLUICE_DATA_DIR, 'outputs'),
    ),
    storage,
    metricsPort: e.SLUICE_METRICS_PORT,
    shutdownGraceMs: e.SLUICE_SHUTDOWN_GRACE_MS,
    slots: Object.fromEntries(
      TIERS.map((t) => [t, e[`SLUICE_SLOTS_${t.toUpperCase()}` as `SLUICE_SLOTS_${Uppercase<Tier>}`]]),
    ) as Record<Tier, number>,
    ffmpegConcurrency: e.SLUICE_FFMPEG_CONCURRENCY ?? usableCpus(),
    maxCachedWorkflows: e.SLUICE_MAX_CACHED_WORKFLOWS,
    ffmpegPath: e.SLUICE_FFMPEG_PATH,
    ffprobePath: e.SLUICE_FFPROBE_PATH,
    taskQueueSuffix: e.SLUICE_TASK_QUEUE_SUFFIX ?? '',
    logLevel: e.SLUICE_LOG_LEVEL,
    logFormat: e.SLUICE_LOG_FORMAT,
    reports,
    api,
    sdkMetricsPort: e.SLUICE_SDK_METRICS_PORT,
    workerMaxTasks: e.SLUICE_WORKER_MAX_TASKS,
    scaling,
    slotPool,
    prefetch: e.SLUICE_PREFETCH,
    promoteAfterSeconds: e.SLUICE_PROMOTION_AGE_SECONDS > 0 ? { low: e.SLUICE_PROMOTION_AGE_SECONDS } : {},
    maxTaskQueueActivitiesPerSecond: e.SLUICE_MAX_TASK_QUEUE_ACTIVITIES_PER_SECOND,
    retry,
    fairnessWeights,
    tenantLimitsFile: e.SLUICE_TENANT_LIMITS ? path.resolve(cwd, e.SLUICE_TENANT_LIMITS) : undefined,
    redisUrl: e.REDIS_URL,
    databaseUrl: e.DATABASE_URL,
    webhook,
    codec,
    versioning: { enabled: e.SLUICE_VERSIONING, buildId: e.SLUICE_BUILD_ID, setCurrent: e.SLUICE_SET_CURRENT_VERSION },
    tracing: {
      enabled: !e.OTEL_SDK_DISABLED && Boolean(e.OTEL_EXPORTER_OTLP_ENDPOINT ?? e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
      serviceName: e.OTEL_SERVICE_NAME,
    },
    ...crashHooks,
  };
}

/** The Temporal connection: address, namespace, API key, and TLS when asked for or implied. */
function temporalSection(e: Env, problems: string[]): SluiceConfig['temporal'] {
  if (e.TEMPORAL_TLS_CLIENT_CERT_PATH && !e.TEMPORAL_TLS_CLIENT_KEY_PATH) {
    problems.push('TEMPORAL_TLS_CLIENT_KEY_PATH: required when TEMPORAL_TLS_CLIENT_CERT_PATH is set');
  }
  if (e.TEMPORAL_TLS_CLIENT_KEY_PATH && !e.TEMPORAL_TLS_CLIENT_CERT_PATH) {
    problems.push('TEMPORAL_TLS_CLIENT_CERT_PATH: required when TEMPORAL_TLS_CLIENT_KEY_PATH is set');
  }
  if ((e.TEMPORAL_API_KEY || e.TEMPORAL_TLS_CLIENT_CERT_PATH) && !e.TEMPORAL_ADDRESS) {
    problems.push('TEMPORAL_ADDRESS: required when an API key or client certificate is configured');
  }
  const wantsTls = e.TEMPORAL_TLS ?? Boolean(e.TEMPORAL_API_KEY || e.TEMPORAL_TLS_CLIENT_CERT_PATH);
  return {
    address: e.TEMPORAL_ADDRESS,
    namespace: e.TEMPORAL_NAMESPACE,
    apiKey: e.TEMPORAL_API_KEY,
    tls: wantsTls
      ? {
          clientCertPath: e.TEMPORAL_TLS_CLIENT_CERT_PATH,
          clientKeyPath: e.TEMPORAL_TLS_CLIENT_KEY_PATH,
          serverCaCertPath: e.TEMPORAL_TLS_SERVER_CA_CERT_PATH,
          serverName: e.TEMPORAL_TLS_SERVER_NAME,
        }
      : false,
  };
}

/** The worker's shared slot pool: its size and each tier's weight. */
function slotPoolSection(e: Env, problems: string[]): SluiceConfig['slotPool'] {
  const weights = { ...DEFAULT_SLOT_WEIGHTS };
  for (const [tier, w] of Object.entries(parsePairs('SLUICE_SLOT_WEIGHTS', e.SLUICE_SLOT_WEIGHTS, problems))) {
    if (isTier(tier)) weights[tier] = w;
    else problems.push(`SLUICE_SLOT_WEIGHTS: unknown tier ${JSON.stringify(tier)}; expected ${TIERS.join(', ')}`);
  }
  return { total: e.SLUICE_SLOTS_TOTAL, weights };
}

/** Completion webhooks: secret, rate limits (global, local, per tenant), Redis fallback, SSRF allow-list. */
function webhookSection(e: Env, problems: string[]): SluiceConfig['webhook'] {
  const tenantRates = parsePairs('SLUICE_WEBHOOK_TENANT_LIMITS', e.SLUICE_WEBHOOK_TENANT_LIMITS, problems);
  const allow = splitList(e.SLUICE_WEBHOOK_ALLOW);
  parseAllowList(allow, problems);
  return {
    secret: e.SLUICE_WEBHOOK_SECRET,
    ratePerSecond: e.SLUICE_WEBHOOK_RATE_PER_SECOND,
    localRatePerSecond: e.SLUICE_WEBHOOK_LOCAL_RATE_PER_SECOND,
    concurrency: e.SLUICE_WEBHOOK_CONCURRENCY,
    tenantRates,
    defaultTenantRatePerSecond: e.SLUICE_WEBHOOK_TENANT_RATE_PER_SECOND,
    redisFallback: e.SLUICE_WEBHOOK_REDIS_FALLBACK,
    fallbackRatePerSecond: e.SLUICE_WEBHOOK_FALLBACK_RATE_PER_SECOND,
    limiterId: e.SLUICE_WEBHOOK_LIMITER_ID,
    timeoutMs: e.SLUICE_WEBHOOK_TIMEOUT_MS,
    allow,
  };
}

/** Activity retries: the jittered back-off and the per-activity policies (SLUICE_RETRY_POLICIES, JSON). */
function retrySection(e: Env, problems: string[]): SluiceConfig['retry'] {
  let byActivity: Record<string, ActivityRetryConfig> = {};
  if (e.SLUICE_RETRY_POLICIES) {
    let raw: unknown;
    try {
      raw = JSON.parse(e.SLUICE_RETRY_POLICIES);
    } catch (err) {
      problems.push(`SLUICE_RETRY_POLICIES: not JSON: ${(err as Error).message}`);
    }
    const policies = RetryPoliciesSchema.safeParse(raw ?? {});
    if (policies.success) byActivity = policies.data;
    else
      for (const i of policies.error.issues) problems.push(`SLUICE_RETRY_POLICIES.${i.path.join('.')}: ${i.message}`);
  }
  return { baseMs: e.SLUICE_RETRY_BASE_MS, capMs: e.SLUICE_RETRY_CAP_MS, byActivity };
}

/** The autoscaler and the backlog exporter. */
function scalingSection(e: Env, problems: string[]): SluiceConfig['scaling'] {
  if (e.SLUICE_SCALE_MIN > e.SLUICE_SCALE_MAX) {
    problems.push('SLUICE_SCALE_MIN: must not be greater than SLUICE_SCALE_MAX');
  }
  return {
    pollMs: e.SLUICE_SCALE_POLL_MS,
    minReplicas: e.SLUICE_SCALE_MIN,
    maxReplicas: e.SLUICE_SCALE_MAX,
    buffer: e.SLUICE_SCALE_BUFFER,
    defaultTaskSeconds: e.SLUICE_SCALE_TASK_SECONDS,
    reactionSeconds: e.SLUICE_SCALE_REACTION_SECONDS,
    targetSeconds: e.SLUICE_SCALE_TARGET_SECONDS,
    upStabilizationMs: e.SLUICE_AUTOSCALE_UP_STABILIZATION_MS,
    downCooldownMs: e.SLUICE_AUTOSCALE_DOWN_COOLDOWN_MS,
  };
}

/** The payload codec and its server: keys (inline or a file), token, address, allowed UI origins. */
function codecSection(e: Env, cwd: string, problems: string[]): SluiceConfig['codec'] {
  if (e.SLUICE_CODEC_KEYS && e.SLUICE_CODEC_KEYS_FILE) {
    problems.push('SLUICE_CODEC_KEYS_FILE: set either SLUICE_CODEC_KEYS or SLUICE_CODEC_KEYS_FILE, not both');
  } else if (e.SLUICE_CODEC_KEYS) parseCodecKeys('SLUICE_CODEC_KEYS', e.SLUICE_CODEC_KEYS, problems);
  const corsOrigins = splitList(e.SLUICE_CODEC_CORS_ORIGINS);
  for (const origin of corsOrigins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || parsed.origin !== origin.replace(/\/$/, '')) {
      problems.push(
        `SLUICE_CODEC_CORS_ORIGINS: ${JSON.stringify(origin)} is not an origin like https://ui.example.com`,
      );
    }
  }
  return {
    keys: e.SLUICE_CODEC_KEYS ? new Secret(e.SLUICE_CODEC_KEYS) : undefined,
    keysFile: e.SLUICE_CODEC_KEYS_FILE ? path.resolve(cwd, e.SLUICE_CODEC_KEYS_FILE) : undefined,
    token: e.SLUICE_CODEC_TOKEN ? new Secret(e.SLUICE_CODEC_TOKEN) : undefined,
    port: e.SLUICE_CODEC_PORT,
    host: e.SLUICE_CODEC_HOST,
    corsOrigins: corsOrigins.map((o) => o.replace(/\/$/, '')),
  };
}

/** The HTTP API: port, body limit, API keys (inline or a file). */
function apiSection(e: Env, cwd: string, problems: string[]): SluiceConfig['api'] {
  if (e.SLUICE_API_KEYS) parseApiKeys('SLUICE_API_KEYS', e.SLUICE_API_KEYS, problems);
  return {
    port: e.SLUICE_API_PORT,
    bodyLimitBytes: e.SLUICE_API_BODY_LIMIT_BYTES,
    keys: e.SLUICE_API_KEYS ? new Secret(e.SLUICE_API_KEYS) : undefined,
    keysFile: e.SLUICE_API_KEYS_FILE ? path.resolve(cwd, e.SLUICE_API_KEYS_FILE) : undefined,
  };
}

/** Report sources: the Parquet partitions, or PostgreSQL and its connection budget; DuckDB limits. */
function reportsSection(e: Env, storage: StorageConfig, dataDir: string, problems: string[]): SluiceConfig['reports'] {
  if (e.SLUICE_MAX_WORKER_PROCESSES * e.SLUICE_PG_POOL_MAX > e.SLUICE_PG_CONNECTION_BUDGET) {
    problems.push(
      `SLUICE_PG_POOL_MAX: ${e.SLUICE_MAX_WORKER_PROCESSES} worker processes × pool max ${e.SLUICE_PG_POOL_MAX} = ${e.SLUICE_MAX_WORKER_PROCESSES * e.SLUICE_PG_POOL_MAX} connections exceed SLUICE_PG_CONNECTION_BUDGET ${e.SLUICE_PG_CONNECTION_BUDGET}`,
    );
  }
  checkPostgresUrl('SLUICE_PG_URL', e.SLUICE_PG_URL, problems);
  return {
    source: e.REPORT_SOURCE,
    partitionsDir: path.join(storage.kind === 'file' ? storage.root : dataDir, 'orders'),
    pgUrl: e.SLUICE_PG_URL,
    pgPoolMax: e.SLUICE_PG_POOL_MAX,
    pgConnectionBudget: e.SLUICE_PG_CONNECTION_BUDGET,
    maxWorkerProcesses: e.SLUICE_MAX_WORKER_PROCESSES,
    duckdbThreads: e.SLUICE_DUCKDB_THREADS,
    duckdbMemoryLimit: e.SLUICE_DUCKDB_MEMORY_LIMIT,
  };
}

/** `variable` names a PostgreSQL URL when set. */
function checkPostgresUrl(variable: string, value: string | undefined, problems: string[]): void {
  if (value !== undefined && !isPostgresUrl(value))
    problems.push(`${variable}: not a PostgreSQL URL (expected postgres://user[:password]@host[:port]/database)`);
}

/** Crash hooks of test builds (SLUICE_TEST_CRASH_HOOKS, SLUICE_CRASH_AT); nothing otherwise. */
function crashHooksSection(e: Env, dataDir: string, problems: string[]): Pick<SluiceConfig, 'testCrashHooks'> {
  if (e.SLUICE_CRASH_AT !== undefined) {
    if (!e.SLUICE_TEST_CRASH_HOOKS) {
      problems.push('SLUICE_CRASH_AT: honoured only with SLUICE_TEST_CRASH_HOOKS=1 (test builds); unset it');
    } else if (!(ALL_CRASH_POINTS as readonly string[]).includes(e.SLUICE_CRASH_AT)) {
      problems.push(
        `SLUICE_CRASH_AT: unknown crash point ${JSON.stringify(e.SLUICE_CRASH_AT)}; expected one of CRASH_POINTS in src/shared/constants.ts`,
      );
    }
  }
  if (!e.SLUICE_TEST_CRASH_HOOKS) return {};
  return {
    testCrashHooks: {
      dir: path.join(dataDir, 'crash-hooks'),
      ...(e.SLUICE_CRASH_AT ? { at: e.SLUICE_CRASH_AT } : {}),
    },
  };
}

/** Splits a comma-separated list, trimming and dropping empty entries. */
function splitList(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

/** `host:port` the client and workers connect to. */
export function temporalAddress(config: SluiceConfig): string {
  return config.temporal.address ?? `127.0.0.1:${config.devServer.port}`;
}

/** The storage section: SLUICE_STORAGE_URL (default: a folder under SLUICE_DATA_DIR), scratch, S3 settings. */
function storageConfig(e: Env, dataDir: string, cwd: string, problems: string[]): StorageConfig {
  if (Boolean(e.AWS_ACCESS_KEY_ID) !== Boolean(e.AWS_SECRET_ACCESS_KEY)) {
    problems.push(
      'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both, or neither (to use the AWS SDK credential chain)',
    );
  }
  const url = e.SLUICE_STORAGE_URL ?? pathToFileURL(dataDir).href;
  const where = parseStorageUrl(url, problems) ?? { kind: 'file' as const, root: dataDir };
  return {
    ...where,
    url,
    s3: {
      endpoint: e.AWS_ENDPOINT_URL_S3 ?? e.AWS_ENDPOINT_URL,
      region: e.AWS_REGION,
      requestTimeoutSec: e.SLUICE_S3_REQUEST_TIMEOUT_SECONDS,
      credentials:
        e.AWS_ACCESS_KEY_ID && e.AWS_SECRET_ACCESS_KEY
          ? {
              accessKeyId: e.AWS_ACCESS_KEY_ID,
              secretAccessKey: new Secret(e.AWS_SECRET_ACCESS_KEY),
              ...(e.AWS_SESSION_TOKEN ? { sessionToken: new Secret(e.AWS_SESSION_TOKEN) } : {}),
            }
          : undefined,
    },
    scratchDir: path.resolve(cwd, e.SLUICE_SCRATCH_DIR ?? path.join(dataDir, 'scratch')),
    presignTtlSec: e.SLUICE_PRESIGN_TTL_SECONDS,
  };
}
