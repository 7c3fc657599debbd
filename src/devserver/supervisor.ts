/**
 * Supervision of the embedded dev server under `sluice up`: when the server process dies, it is
 * started again on the same SQLite file (no pipeline is lost), with backoff and a bounded number
 * of attempts. `healthy` is false from the death until a restart is serving again, so `/readyz`
 * answers 503 while Temporal is unreachable.
 */
import { startDevServer, type DevServerHandle, type DevServerOptions } from './dev-server';

/** Options of {@link DevServerSupervisor.start}. */
export interface SupervisorOptions extends DevServerOptions {
  /** Restarts before giving up (then `healthy` stays false). @default 5 */
  maxRestarts?: number;
  /** Delay before the first restart, doubled per attempt up to 10 s. @default 500 */
  backoffMs?: number;
}

/** A dev server that is restarted when it dies. */
export class DevServerSupervisor {
  /** False while the server is down (between its death and a successful restart). */
  healthy = true;
  /** Restarts so far. */
  restarts = 0;
  private stopping = false;

  private constructor(
    private current: DevServerHandle,
    private readonly opts: SupervisorOptions,
  ) {}

  /** Starts the server and watches it. */
  static async start(opts: SupervisorOptions): Promise<DevServerSupervisor> {
    const supervisor = new DevServerSupervisor(await startDevServer(opts), opts);
    supervisor.watch();
    return supervisor;
  }

  /** The running server's handle (address, UI URL, pid). */
  get server(): DevServerHandle {
    return this.current;
  }

  private watch(): void {
    void this.current.exited?.then(() => this.restart());
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    this.healthy = false;
    const max = this.opts.maxRestarts ?? 5;
    while (!this.stopping && this.restarts < max) {
      this.restarts++;
      const delay = Math.min(10_000, (this.opts.backoffMs ?? 500) * 2 ** (this.restarts - 1));
      this.opts.log(
        `the Temporal dev server exited; restarting it on ${this.opts.dbFile ?? 'memory'} in ${delay} ms (attempt ${this.restarts} of ${max})`,
      );
      await new Promise((r) => setTimeout(r, delay));
      if (this.stopping) return;
      try {
        this.current = await startDevServer(this.opts);
        this.healthy = true;
        this.opts.log(`the Temporal dev server is back on ${this.current.address}`);
        this.watch();
        return;
      } catch (err) {
        this.opts.log(`restarting the Temporal dev server failed: ${(err as Error).message}`);
      }
    }
    if (!this.stopping) this.opts.log(`the Temporal dev server stays down after ${max} restarts; /readyz answers 503`);
  }

  /** Stops the server; no restart follows. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.current.stop();
  }
}
