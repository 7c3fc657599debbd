/**
 * Workflow interceptors of the bundle (`workflowInterceptorModules`, see src/workers/bundle.ts):
 * OpenTelemetry spans for a run that was started with a trace context, nothing for the others.
 *
 * A run is traced when its start carried the OpenTelemetry header, which a client with tracing
 * on adds (and a traced run adds to its activities, children and continue-as-new). Untraced runs
 * pass straight through: no spans are made and no sink is called, so a worker with tracing off
 * pays nothing, and histories recorded before tracing existed replay unchanged. The choice is made
 * from the run's own start headers, so a replay makes the same one.
 *
 * Not a workflow: nothing here is exported from index.ts.
 */
import {
  OpenTelemetryInboundInterceptor,
  OpenTelemetryInternalsInterceptor,
  OpenTelemetryOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/workflow';
import { SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import { ApplicationFailureCategory } from '@temporalio/common';
import {
  ApplicationFailure,
  defaultPayloadConverter,
  type ActivityInput,
  type Next,
  type WorkflowInboundCallsInterceptor,
  type WorkflowInterceptors,
  type WorkflowInternalsInterceptor,
  type WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';

/** The header the OpenTelemetry interceptors carry the trace context in. */
const TRACE_HEADER = '_tracer-data';

/**
 * The OpenTelemetry outbound interceptor with a leaner `scheduleActivity`, the call a fan-out
 * makes per sub-job: the same `StartActivity:<type>` span and header, made with one promise
 * instead of five nested async wrappers. In the workflow sandbox every promise costs a captured
 * stack trace (the SDK's stack-trace query), which made the original the bulk of tracing's CPU.
 */
class LeanOutboundInterceptor extends OpenTelemetryOutboundInterceptor {
  override scheduleActivity(input: ActivityInput, next: Next<WorkflowOutboundCallsInterceptor, 'scheduleActivity'>) {
    const span = this.tracer.startSpan(`StartActivity:${input.activityType}`, {}, context.active());
    const carrier: Record<string, string> = {};
    propagation.inject(trace.setSpan(context.active(), span), carrier);
    const headers = { ...input.headers, [TRACE_HEADER]: defaultPayloadConverter.toPayload(carrier) };
    return next({ ...input, headers }).then(
      (result) => {
        span.setStatus({ code: SpanStatusCode.OK });
        span.end();
        return result;
      },
      (err: unknown) => {
        const benign = err instanceof ApplicationFailure && err.category === ApplicationFailureCategory.BENIGN;
        span.setStatus({
          code: benign ? SpanStatusCode.UNSET : SpanStatusCode.ERROR,
          message: err instanceof Error ? err.message : String(err),
        });
        if (err instanceof Error) span.recordException(err);
        span.end();
        throw err;
      },
    );
  }
}

interface Traced {
  inbound: OpenTelemetryInboundInterceptor;
  outbound: LeanOutboundInterceptor;
  internals: OpenTelemetryInternalsInterceptor;
}

/** One set per workflow run: the OpenTelemetry interceptors once `execute` finds the header. */
export const interceptors = (): WorkflowInterceptors => {
  let otel: Traced | undefined;
  const inbound: WorkflowInboundCallsInterceptor = {
    execute(input, next) {
      // Runs before the workflow function and before any handler of the first activation.
      if (input.headers[TRACE_HEADER] !== undefined) {
        otel = {
          inbound: new OpenTelemetryInboundInterceptor(),
          outbound: new LeanOutboundInterceptor(),
          internals: new OpenTelemetryInternalsInterceptor(),
        };
      }
      return otel ? otel.inbound.execute(input, next) : next(input);
    },
    handleSignal: (input, next) => (otel ? otel.inbound.handleSignal(input, next) : next(input)),
    handleUpdate: (input, next) => (otel ? otel.inbound.handleUpdate(input, next) : next(input)),
    validateUpdate: (input, next) => (otel ? otel.inbound.validateUpdate(input, next) : next(input)),
    handleQuery: (input, next) => (otel ? otel.inbound.handleQuery(input, next) : next(input)),
  };
  const outbound: WorkflowOutboundCallsInterceptor = {
    scheduleActivity: (input, next) => (otel ? otel.outbound.scheduleActivity(input, next) : next(input)),
    scheduleLocalActivity: (input, next) => (otel ? otel.outbound.scheduleLocalActivity(input, next) : next(input)),
    startChildWorkflowExecution: (input, next) =>
      otel ? otel.outbound.startChildWorkflowExecution(input, next) : next(input),
    continueAsNew: (input, next) => (otel ? otel.outbound.continueAsNew(input, next) : next(input)),
    signalWorkflow: (input, next) => (otel ? otel.outbound.signalWorkflow(input, next) : next(input)),
    getLogAttributes: (input, next) => (otel ? otel.outbound.getLogAttributes(input, next) : next(input)),
  };
  const internals: WorkflowInternalsInterceptor = {
    dispose(input, next) {
      // The OpenTelemetry one is async only in name: it calls `next` before its first await.
      if (otel) void otel.internals.dispose(input, next);
      else next(input);
    },
  };
  return { inbound: [inbound], outbound: [outbound], internals: [internals] };
};
