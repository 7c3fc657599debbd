/**
 * End-to-end tracing over OpenTelemetry, off by default. One tracer provider per process,
 * installed by the first caller that has tracing on (the API, a worker host, the CLI's client),
 * exporting over OTLP/HTTP with a batch span processor. The exporter reads the standard `OTEL_*`
 * variables itself (endpoint, headers, timeout); src/config.ts decides whether tracing is on.
 *
 * Off, nothing is installed: {@link withSpan} calls its function straight away, and the global
 * OpenTelemetry API stays a no-op.
 */
import {
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

export { SpanKind, SpanStatusCode };

/** What src/config.ts reads from the standard OpenTelemetry variables. */
export interface TracingConfig {
  /** True when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or its _TRACES_ form) and OTEL_SDK_DISABLED is not true. */
  enabled: boolean;
  /** OTEL_SERVICE_NAME; undefined: the process's own default (`sluice-api`, `sluice-worker`, `sluice-cli`). */
  serviceName: string | undefined;
}

/** The installed pipeline: what the workflow span sink of a worker needs too. */
export interface TracingPipeline {
  provider: NodeTracerProvider;
  processor: SpanProcessor;
  resource: Resource;
  serviceName: string;
}

/** The instrumentation scope of Sluice's own spans. */
const TRACER_NAME = 'sluice';
const SERVICE_VERSION = '0.1.0';

let installed: TracingPipeline | undefined;

/**
 * Installs the process's tracer provider when `config.enabled` (the first call wins; later ones
 * return the same pipeline). Registers it globally with the AsyncLocalStorage context manager and
 * the W3C trace-context propagator. Returns undefined when tracing is off.
 */
export function startTracing(config: TracingConfig, defaultServiceName: string): TracingPipeline | undefined {
  if (!config.enabled) return undefined;
  if (installed) return installed;
  const serviceName = config.serviceName ?? defaultServiceName;
  const resource = new Resource({ [ATTR_SERVICE_NAME]: serviceName, [ATTR_SERVICE_VERSION]: SERVICE_VERSION });
  // The exporter takes its URL, headers and timeout from OTEL_EXPORTER_OTLP_* itself.
  const processor = new BatchSpanProcessor(new OTLPTraceExporter());
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor] });
  provider.register();
  installed = { provider, processor, resource, serviceName };
  return installed;
}

/** The installed pipeline, or undefined when tracing is off in this process. */
export function tracingPipeline(): TracingPipeline | undefined {
  return installed;
}

/** Exports every finished span now (worker drain, API close, CLI exit). No-op when off. */
export async function flushTracing(): Promise<void> {
  await installed?.provider.forceFlush();
}

/** Flushes and stops the provider; the process's last step. No-op when off. */
export async function shutdownTracing(): Promise<void> {
  const p = installed;
  installed = undefined;
  await p?.provider.shutdown();
}

/**
 * Runs `fn` in a span named `name`, a child of the active one; records a thrown error on it and
 * rethrows. With tracing off, just runs `fn` (no span object).
 */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span | undefined) => Promise<T>,
  kind: SpanKind = SpanKind.INTERNAL,
  parent?: Context,
): Promise<T> {
  if (!installed) return fn(undefined);
  const tracer = trace.getTracer(TRACER_NAME, SERVICE_VERSION);
  return tracer.startActiveSpan(name, { kind, attributes }, parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** The W3C trace context (`traceparent`, `tracestate`) of incoming request headers; the active context when off. */
export function extractTraceContext(headers: Record<string, string | string[] | undefined>): Context {
  if (!installed) return context.active();
  return propagation.extract(context.active(), headers);
}

/** Adds the active span's W3C trace context to outgoing request headers (unchanged when off). */
export function injectTraceContext(headers: Record<string, string>): Record<string, string> {
  if (installed) propagation.inject(context.active(), headers);
  return headers;
}

/**
 * `fn`, bound to the active trace context: for callbacks that a queue runs later from another
 * context (Bottleneck's `schedule`), so their spans stay children of the caller's. `fn` itself
 * when tracing is off.
 */
export function inActiveContext<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return installed ? context.bind(context.active(), fn) : fn;
}
