/** Report test helpers: generated partitions, real report activities with a fault plan, result checks. */
import fs from 'node:fs';
import path from 'node:path';
import type { Storage } from '../../src/storage';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { expect } from 'vitest';
import { createReportActivities, type ReportDeps } from '../../src/activities/reports';
import { generateOrders } from '../../src/data/generate';
import type { ReportDataSource } from '../../src/data/source';
import type { AggregatePartitionInput } from '../../src/shared/report';
import type { SluiceClient } from '../../src/client';

/** What to do to one month's sub-job of one pipeline. */
export interface Fault {
  /** Fail the first N calls of this month's sub-job, across attempts and rounds (default: every call). */
  failCalls?: number;
  /** Failure type; `Injected` by default. Failures are non-retryable so a round ends at once. */
  type?: string;
  /** Wait this long first (cancellable, heartbeating). */
  delayMs?: number;
}

/** A fault plan keyed by `<workflowId>|<month>`, and a log of every call and cancellation. */
export class FaultPlan {
  readonly faults = new Map<string, Fault>();
  readonly calls: { workflowId: string; month: string; attempt: number }[] = [];
  readonly cancelled: { workflowId: string; month: string }[] = [];

  set(workflowId: string, month: string, fault: Fault): void {
    this.faults.set(`${workflowId}|${month}`, fault);
  }

  callsOf(workflowId: string, month?: string): number {
    return this.calls.filter((c) => c.workflowId === workflowId && (month === undefined || c.month === month)).length;
  }

  readonly hook = async (input: AggregatePartitionInput, attempt: number): Promise<void> => {
    this.calls.push({ workflowId: input.output.split('/')[0]!, month: input.month, attempt });
    const fault = this.faults.get(`${input.output.split('/')[0]!}|${input.month}`);
    if (!fault) return;
    if (fault.delayMs) {
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat({ month: input.month, phase: 'injected delay' }), 500);
      try {
        await ctx.sleep(fault.delayMs);
      } catch (err) {
        this.cancelled.push({ workflowId: input.output.split('/')[0]!, month: input.month });
        throw err;
      } finally {
        clearInterval(beat);
      }
    }
    const calls = this.callsOf(input.output.split('/')[0]!, input.month);
    if (fault.failCalls === undefined || calls <= fault.failCalls) {
      throw ApplicationFailure.create({
        type: fault.type ?? 'Injected',
        nonRetryable: true,
        message: `injected failure in ${input.month} (attempt ${attempt})`,
      });
    }
  };
}

/** Real report activities over `source`, with the fault plan's hook. */
export function reportActivities(source: ReportDataSource, storage: Storage, plan?: FaultPlan) {
  const deps: ReportDeps = { source, storage, heartbeatMs: 500, faults: plan ? { beforeAggregate: plan.hook } : {} };
  return createReportActivities(deps);
}

/** Generates small seeded partitions once per directory. */
export async function smallPartitions(dir: string, start: string, months: number, rowsPerMonth = 400): Promise<void> {
  if (fs.existsSync(path.join(dir, `${start}.parquet`))) return;
  await generateOrders({ dir, start, months, rowsPerMonth, seed: 7, threads: 1 });
}

/** The failure of a pipeline that must fail. */
export async function failureOf(client: SluiceClient, workflowId: string): Promise<Error> {
  const err = await client.getResult(workflowId).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as Error;
}

/** The innermost ApplicationFailure of a failure chain. */
export function rootApplicationFailure(err: unknown): ApplicationFailure | undefined {
  let found: ApplicationFailure | undefined;
  let cur: unknown = err;
  while (cur instanceof Error) {
    if (cur instanceof ApplicationFailure) found = cur;
    cur = (cur as { cause?: unknown }).cause;
  }
  return found;
}

/** Search attributes of a workflow as a plain object. */
export async function searchAttributes(client: SluiceClient, workflowId: string): Promise<Record<string, unknown>> {
  const d = await client.temporal.workflow.getHandle(workflowId).describe();
  return Object.fromEntries(d.typedSearchAttributes.getAll().map((p) => [p.key.name, p.value]));
}
