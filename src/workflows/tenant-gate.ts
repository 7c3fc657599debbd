/**
 * Hard per-tenant caps on Temporal itself (runs in the sandbox): one long-lived gate workflow per
 * tenant hands out the tenant's `maxRunning` run places and `maxInFlight` sub-job permits, in
 * order of request, and the pipelines (and their batch children) ask it before they run and
 * before each sub-job's activity task. Waiting happens in workflow state, never on a worker slot,
 * so a tenant at its cap costs other tenants nothing. A permit belongs to the run holding it, not
 * to a worker: a sub-job whose worker is killed is retried (after its heartbeat timeout) under the
 * same permit, and a run that closes without giving its permits back is found by the gate's
 * liveness ping and dropped. Helpers only, apart from the gate workflow and its messages.
 */
import {
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { TENANT_FULL_RETRY_AFTER_SECONDS, type TenantCaps, type TenantGateMemo } from '../shared/constants';
import { StageKey } from '../shared/search-attributes';
import { flowMemo } from './flow-control';

/** What a holder (a pipeline or a batch child, by workflow ID) asks of its tenant's gate. */
export interface GateRequest {
  holder: string;
  /** Wants a run place (the pipeline waits with Stage="queued" until granted). */
  enter?: boolean;
  /** More sub-job permits wanted. */
  acquire?: number;
  /** Sub-job permits given back. */
  release?: number;
  /** Requests for permits taken back (the sub-jobs got a permit freed within the run, or were cancelled). */
  withdraw?: number;
  /** The holder is done: its run place, permits and requests are all dropped. */
  leave?: boolean;
}

/** What the gate sends a holder: a run place, sub-job permits, or nothing (a liveness ping). */
export interface GateGrant {
  run?: boolean;
  /** The holder waits for a run place (it shows Stage="queued"). */
  queued?: boolean;
  permits?: number;
}

/** What the gate holds, as the `tenantGateState` query answers it. */
export interface TenantGateState {
  tenant: string;
  caps: TenantCaps;
  /** Holders with a run place, in grant order. */
  running: string[];
  /** Holders waiting for a run place, in order. */
  queued: string[];
  /** Sub-job permits held. */
  inFlight: number;
  /** Sub-job permits asked for and not yet granted. */
  waiting: number;
  /** Seconds a client refused for a full tenant should wait (Retry-After). */
  retryAfterSeconds: number;
}

/** Signal: a holder's request. */
export const tenantGateRequestSignal = defineSignal<[GateRequest]>('tenantGateRequest');
/** Signal: new caps (the client sends them with every start, from the limits file as it is then). */
export const tenantGateCapsSignal = defineSignal<[TenantCaps]>('tenantGateCaps');
/** Signal to a holder: what it was granted. */
export const tenantGateGrantSignal = defineSignal<[GateGrant]>('tenantGateGrant');
/** Query: the gate's state. */
export const tenantGateStateQuery = defineQuery<TenantGateState>('tenantGateState');

/** State a gate carries across continue-as-new. */
interface GateState {
  running: string[];
  runQueue: string[];
  /** When each running holder got its place (workflow time, ms): the run-time average behind Retry-After. */
  runSince: Record<string, number>;
  held: Record<string, number>;
  wants: { holder: string; n: number }[];
  /** Average seconds a run held its place (exponentially weighted); 0 until one finished. */
  avgRunSeconds: number;
}

/** Input of {@link tenantGateWorkflow}. */
export interface TenantGateInput {
  tenant: string;
  caps: TenantCaps;
  state?: GateState;
}

/** With holders waiting, the gate pings its holders this often; a closed one loses what it held. */
const PING_MS = 20_000;
/** History length at which the gate continues as new (Temporal warns at 10,240 events). */
const GATE_HISTORY_LIMIT = 4_000;

/**
 * A tenant's gate: grants run places (at most `maxRunning`) and sub-job permits (at most
 * `maxInFlight`) first come, first served; a cap of 0 grants everything. Runs until terminated,
 * continuing as new before its history grows large.
 */
export async function tenantGateWorkflow(input: TenantGateInput): Promise<void> {
  const st: GateState = input.state ?? {
    running: [],
    runQueue: [],
    runSince: {},
    held: {},
    wants: [],
    avgRunSeconds: 0,
  };
  let caps = input.caps;
  let dirty = true;
  const outbox = new Map<string, GateGrant>();
  const add = (holder: string, grant: GateGrant) => {
    const g = outbox.get(holder) ?? {};
    if (grant.run) g.run = true;
    if (grant.queued) g.queued = true;
    if (grant.permits) g.permits = (g.permits ?? 0) + grant.permits;
    outbox.set(holder, g);
  };
  const inFlight = () => Object.values(st.held).reduce((a, n) => a + n, 0);

  const drop = (holder: string) => {
    const i = st.running.indexOf(holder);
    if (i >= 0) {
      st.running.splice(i, 1);
      const since = st.runSince[holder];
      if (since !== undefined) {
        const seconds = Math.max(0, (Date.now() - since) / 1000);
        st.avgRunSeconds = st.avgRunSeconds > 0 ? 0.7 * st.avgRunSeconds + 0.3 * seconds : seconds;
      }
    }
    delete st.runSince[holder];
    st.runQueue = st.runQueue.filter((h) => h !== holder);
    delete st.held[holder];
    st.wants = st.wants.filter((w) => w.holder !== holder);
    outbox.delete(holder);
  };

  /** Holders that asked for a run place since the last grant round (told when they must wait). */
  const entered: string[] = [];
  const apply = (r: GateRequest) => {
    if (typeof r?.holder !== 'string' || r.holder === '') return;
    if (r.leave) {
      drop(r.holder);
      return;
    }
    if (r.release && r.release > 0) {
      const left = (st.held[r.holder] ?? 0) - r.release;
      if (left > 0) st.held[r.holder] = left;
      else delete st.held[r.holder];
    }
    if (r.withdraw && r.withdraw > 0) {
      let n = r.withdraw;
      for (let i = st.wants.length - 1; i >= 0 && n > 0; i--) {
        const w = st.wants[i] as { holder: string; n: number };
        if (w.holder !== r.holder) continue;
        const k = Math.min(n, w.n);
        w.n -= k;
        n -= k;
        if (w.n === 0) st.wants.splice(i, 1);
      }
    }
    if (r.acquire && r.acquire > 0) {
      const last = st.wants[st.wants.length - 1];
      if (last?.holder === r.holder) last.n += r.acquire;
      else st.wants.push({ holder: r.holder, n: r.acquire });
    }
    if (r.enter && !st.running.includes(r.holder) && !st.runQueue.includes(r.holder)) {
      st.runQueue.push(r.holder);
      entered.push(r.holder);
    }
  };

  /** Hands out what the caps allow, in order of request. */
  const grant = () => {
    while (st.runQueue.length > 0 && (caps.maxRunning <= 0 || st.running.length < caps.maxRunning)) {
      const holder = st.runQueue.shift() as string;
      st.running.push(holder);
      st.runSince[holder] = Date.now();
      add(holder, { run: true });
    }
    let free = caps.maxInFlight <= 0 ? Number.POSITIVE_INFINITY : caps.maxInFlight - inFlight();
    while (st.wants.length > 0 && free > 0) {
      const head = st.wants[0] as { holder: string; n: number };
      const n = Math.min(head.n, free);
      st.held[head.holder] = (st.held[head.holder] ?? 0) + n;
      free -= n;
      head.n -= n;
      if (head.n === 0) st.wants.shift();
      add(head.holder, { permits: n });
    }
    for (const h of entered.splice(0)) if (st.runQueue.includes(h)) add(h, { queued: true });
  };

  const retryAfterSeconds = () => {
    if (st.avgRunSeconds <= 0 || caps.maxRunning <= 0) return TENANT_FULL_RETRY_AFTER_SECONDS;
    const ahead = st.runQueue.length + 1;
    return Math.min(3600, Math.max(1, Math.ceil((st.avgRunSeconds * ahead) / caps.maxRunning)));
  };

  setHandler(tenantGateRequestSignal, (r) => {
    apply(r);
    dirty = true;
  });
  setHandler(tenantGateCapsSignal, (c) => {
    caps = { maxRunning: Math.max(0, c.maxRunning | 0), maxInFlight: Math.max(0, c.maxInFlight | 0) };
    dirty = true;
  });
  setHandler(tenantGateStateQuery, () => ({
    tenant: input.tenant,
    caps,
    running: [...st.running],
    queued: [...st.runQueue],
    inFlight: inFlight(),
    waiting: st.wants.reduce((a, w) => a + w.n, 0),
    retryAfterSeconds: retryAfterSeconds(),
  }));

  /** Sends what the outbox holds; a holder that cannot be signalled has closed: it loses everything. */
  const flush = async (ping: boolean) => {
    if (ping) for (const h of new Set([...st.running, ...Object.keys(st.held)])) if (!outbox.has(h)) outbox.set(h, {});
    const sends = [...outbox].map(async ([holder, g]) => {
      try {
        await getExternalWorkflowHandle(holder).signal(tenantGateGrantSignal, g);
      } catch (err) {
        log.warn('tenant gate: holder gone, its places and permits are freed', {
          holder,
          error: (err as Error).message,
        });
        drop(holder);
        dirty = true;
      }
    });
    outbox.clear();
    await Promise.all(sends);
  };

  for (;;) {
    const someoneWaits = () => st.runQueue.length > 0 || st.wants.length > 0;
    const woke = await condition(() => dirty, PING_MS);
    if (woke || someoneWaits()) {
      dirty = false;
      grant();
      setCurrentDetails(
        `running ${st.running.length}/${caps.maxRunning || '∞'} (${st.runQueue.length} queued), ` +
          `sub-jobs ${inFlight()}/${caps.maxInFlight || '∞'}`,
      );
      // A timeout with someone waiting: ping the holders, so a closed one's share comes back.
      await flush(!woke && someoneWaits());
    }
    const info = workflowInfo();
    if (!dirty && (info.continueAsNewSuggested || info.historyLength > GATE_HISTORY_LIMIT)) {
      await condition(allHandlersFinished);
      if (!dirty) await continueAsNew<typeof tenantGateWorkflow>({ tenant: input.tenant, caps, state: st });
    }
  }
}

// ---- the holder's side: pipelines and batch children -------------------------------------------

/** Patch ID of the caps: runs whose flow memo names a gate ask it (older histories have none). */
export const TENANT_CAPS_PATCH = 'sluice-tenant-caps-v1';

interface Holder {
  gate: TenantGateMemo;
  /** Set when the gate could not be signalled: the run goes on uncapped (logged). */
  broken: boolean;
  runGranted: boolean;
  /** The gate said the run waits for a place. */
  queued: boolean;
  /** Permits asked of the gate and not yet granted (nor withdrawn). */
  outstanding: number;
  /** Sub-jobs waiting here for a permit, in order. */
  waiters: { granted: boolean }[];
  pendingRelease: number;
  pendingEnter: boolean;
  flushQueued: boolean;
}

/** Module state is per run in the sandbox: this run's view of its gate (null: not gated). */
let holder: Holder | null | undefined;

/** The run's gate, if its flow memo names one (decided once per run, behind the patch). */
function gated(): Holder | undefined {
  if (holder === undefined) {
    const gate = flowMemo().gate;
    if (
      !gate ||
      typeof gate.workflowId !== 'string' ||
      !(gate.running || gate.inFlight) ||
      !patched(TENANT_CAPS_PATCH)
    ) {
      holder = null;
    } else {
      const h: Holder = {
        gate,
        broken: false,
        runGranted: false,
        queued: false,
        outstanding: 0,
        waiters: [],
        pendingRelease: 0,
        pendingEnter: false,
        flushQueued: false,
      };
      holder = h;
      setHandler(tenantGateGrantSignal, (g) => {
        if (g.run) h.runGranted = true;
        if (g.queued) h.queued = true;
        let n = g.permits ?? 0;
        h.outstanding = Math.max(0, h.outstanding - n);
        while (n > 0) {
          const w = h.waiters.shift();
          if (!w) break;
          w.granted = true;
          n--;
        }
        // Permits nobody here waits for any more go straight back.
        if (n > 0) {
          h.pendingRelease += n;
          queueFlush(h);
        }
      });
    }
  }
  return holder ?? undefined;
}

/** True when this run asks a tenant gate (its batch children must be told where it is). */
export function isGated(): boolean {
  return gated() !== undefined;
}

function breakOpen(h: Holder, err: unknown): void {
  if (h.broken) return;
  h.broken = true;
  log.error('tenant gate unreachable: this run goes on without its caps', {
    gate: h.gate.workflowId,
    error: err instanceof Error ? err.message : String(err),
  });
  h.runGranted = true;
  for (const w of h.waiters.splice(0)) w.granted = true;
}

/**
 * One signal per activation carries what changed in it: a run place wanted, permits given back,
 * and the difference between the sub-jobs waiting here and the permits already asked for.
 */
function queueFlush(h: Holder): void {
  if (h.flushQueued || h.broken) return;
  h.flushQueued = true;
  void Promise.resolve().then(() => {
    h.flushQueued = false;
    const request: GateRequest = { holder: workflowInfo().workflowId };
    if (h.pendingEnter) request.enter = true;
    if (h.pendingRelease > 0) request.release = h.pendingRelease;
    const need = h.waiters.length - h.outstanding;
    if (need > 0) request.acquire = need;
    if (need < 0) request.withdraw = -need;
    h.outstanding = h.waiters.length;
    h.pendingEnter = false;
    h.pendingRelease = 0;
    if (!request.enter && !request.acquire && !request.release && !request.withdraw) return;
    // Not cancellable: a cancelled sub-job's scope must not take its release (or another's request) with it.
    void CancellationScope.nonCancellable(() =>
      getExternalWorkflowHandle(h.gate.workflowId).signal(tenantGateRequestSignal, request),
    ).catch((err: unknown) => breakOpen(h, err));
  });
}

/**
 * Runs `fn` (one activity task of a fan-out) under one of the tenant's sub-job permits. Waits in
 * the workflow, in the caller's cancellation scope, until the gate grants one. A permit freed
 * while this run has sub-jobs waiting goes to the next of them; otherwise back to the gate.
 */
export function withSubJobPermit<R>(fn: () => Promise<R>): Promise<R> {
  const h = gated();
  if (!h?.gate.inFlight || h.broken) return fn();
  const waiter = { granted: false };
  h.waiters.push(waiter);
  queueFlush(h);
  const release = () => {
    if (h.broken) return;
    const next = h.waiters.shift();
    if (next) next.granted = true;
    else h.pendingRelease++;
    queueFlush(h);
  };
  return condition(() => waiter.granted).then(
    () =>
      fn().then(
        (value) => {
          release();
          return value;
        },
        (err: unknown) => {
          release();
          throw err;
        },
      ),
    (err: unknown) => {
      const i = h.waiters.indexOf(waiter);
      if (i >= 0) {
        // Cancelled while waiting: its request is taken back.
        h.waiters.splice(i, 1);
        queueFlush(h);
      } else if (waiter.granted) release();
      throw err;
    },
  );
}

/**
 * Runs a pipeline's body (`takesRunPlace`) or a batch child's in the tenant's gate: a pipeline
 * first waits for one of the tenant's run places, with Stage="queued" while the gate says it must.
 * Whatever happens, the run leaves the gate (places, permits, requests) when `fn` settles.
 */
export async function inTenantGate<R>(fn: () => Promise<R>, opts: { takesRunPlace: boolean }): Promise<R> {
  const h = gated();
  if (!h) return fn();
  try {
    if (opts.takesRunPlace && h.gate.running) {
      h.pendingEnter = true;
      queueFlush(h);
      await condition(() => h.runGranted || h.queued);
      if (!h.runGranted) {
        upsertSearchAttributes([{ key: StageKey, value: 'queued' }]);
        setCurrentDetails('**queued** — waiting for one of the tenant’s running places');
        try {
          await condition(() => h.runGranted);
        } catch (err) {
          upsertSearchAttributes([{ key: StageKey, value: 'cancelled' }]);
          throw err;
        }
        upsertSearchAttributes([{ key: StageKey, value: 'running' }]);
      }
    }
    return await fn();
  } finally {
    if (!h.broken) {
      const request: GateRequest = { holder: workflowInfo().workflowId, leave: true };
      await CancellationScope.nonCancellable(() =>
        getExternalWorkflowHandle(h.gate.workflowId).signal(tenantGateRequestSignal, request),
      ).catch((err: unknown) => breakOpen(h, err));
    }
  }
}
