/**
 * A real OTLP receiver for the tracing test and bench: Jaeger v2 (all-in-one, in-memory storage)
 * from `.tools/`, built by scripts/ci-deps.sh, on free ports of 127.0.0.1 (OTLP/HTTP in, the
 * query HTTP API out). Never a mock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/devserver/dev-server';

export const JAEGER = path.resolve(__dirname, '..', '..', '.tools', 'jaeger');

/** One span as Jaeger's query API (`/api/traces`) returns it. */
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: string; traceID: string; spanID: string }[];
  processID: string;
  tags: { key: string; value: unknown }[];
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string }>;
}

export interface Jaeger {
  /** Base URL for OTEL_EXPORTER_OTLP_ENDPOINT (`/v1/traces` is appended by the exporter). */
  otlpEndpoint: string;
  /** Base URL of the query API and UI. */
  queryUrl: string;
  /** Traces of a service, at most `limit` (newest first). */
  traces(service: string, limit?: number): Promise<JaegerTrace[]>;
  /** One trace by ID, or undefined when Jaeger has none. */
  trace(traceId: string): Promise<JaegerTrace | undefined>;
  stop(): Promise<void>;
  log(): string;
}

/** Jaeger's config: OTLP/HTTP in, in-memory store, query API; no other listener (free ports only). */
function configYaml(otlpPort: number, queryPort: number, queryGrpcPort: number): string {
  return `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${queryPort}
    grpc:
      endpoint: 127.0.0.1:${queryGrpcPort}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlpPort}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
}

/** Starts Jaeger and waits (at most `readyTimeoutMs`) until its query API answers. */
export async function startJaeger(readyTimeoutMs = 30_000): Promise<Jaeger> {
  if (!fs.existsSync(JAEGER)) {
    throw new Error(`${JAEGER} is missing: run 'bash scripts/ci-deps.sh' (npm test does) to build it`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-jaeger-'));
  const [otlpPort, queryPort, queryGrpcPort] = [await freePort(), await freePort(), await freePort()];
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, configYaml(otlpPort, queryPort, queryGrpcPort));
  let log = '';
  const child: ChildProcess = spawn(JAEGER, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (d: Buffer) => (log = (log + d.toString()).slice(-20_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const queryUrl = `http://127.0.0.1:${queryPort}`;
  const get = async <T>(p: string): Promise<{ status: number; body?: T }> => {
    const res = await fetch(`${queryUrl}${p}`);
    return { status: res.status, body: res.ok ? ((await res.json()) as T) : undefined };
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`jaeger exited (${child.exitCode}) before it was ready: ${log}`);
    const up = await get('/api/services').then(
      (r) => r.status === 200,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`jaeger did not answer on ${queryUrl} within ${readyTimeoutMs} ms: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    otlpEndpoint: `http://127.0.0.1:${otlpPort}`,
    queryUrl,
    traces: async (service, limit = 20) =>
      (await get<{ data: JaegerTrace[] }>(`/api/traces?service=${encodeURIComponent(service)}&limit=${limit}`)).body
        ?.data ?? [],
    trace: async (traceId) => (await get<{ data: JaegerTrace[] }>(`/api/traces/${traceId}`)).body?.data?.[0],
    stop,
    log: () => log,
  };
}
