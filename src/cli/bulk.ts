/**
 * What every bulk command shares: the count first, a confirmation on a TTY (`--yes` skips it), a
 * progress bar on a TTY, and an audit line (who, what, how many, when) appended to
 * `<SLUICE_DATA_DIR>/audit.jsonl` and written to the log.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline/promises';
import { Presets, SingleBar } from 'cli-progress';
import type { SluiceConfig } from '../config';
import { createLogger } from '../logger';
import { info } from './output';

/** Identity recorded by the server with each change (and in audit lines). */
export function operatorIdentity(): string {
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // No passwd entry (some containers): keep "unknown".
  }
  return `sluice-cli:${user}@${os.hostname()}`;
}

/** One audit record. */
export interface AuditEntry {
  /** ISO time the operation finished. */
  at: string;
  /** Operator identity: `sluice-cli:<user>@<host>`. */
  who: string;
  /** `cancel`, `terminate`, `replay`, `dlq-replay`. */
  op: string;
  /** The visibility query, or the dead-letter filter (`all` for --all). */
  selector: string;
  /** Matched when the operation was confirmed. */
  count: number;
  /** Acted on, and failed. */
  done: number;
  failed: number;
  reason?: string;
  /** Temporal batch job ID, for batch operations. */
  jobId?: string;
  /** False when the operator declined at the prompt. */
  confirmed: boolean;
}

/** The audit file of a config. */
export function auditFile(config: SluiceConfig): string {
  return path.join(config.dataDir, 'audit.jsonl');
}

/** Appends the entry to the audit file and logs it. */
export function recordAudit(config: SluiceConfig, entry: Omit<AuditEntry, 'at' | 'who'>): AuditEntry {
  const full: AuditEntry = { at: new Date().toISOString(), who: operatorIdentity(), ...entry };
  fs.mkdirSync(config.dataDir, { recursive: true });
  fs.appendFileSync(auditFile(config), JSON.stringify(full) + '\n');
  createLogger(config.logLevel).info({ audit: full }, `bulk ${full.op}: ${full.done}/${full.count} (${full.selector})`);
  return full;
}

/**
 * Prints the count and, on a TTY without `--yes`, asks to go on. Off a TTY it goes on: scripts
 * are expected to pass `--yes`, and have no one to ask.
 */
export async function confirmCount(count: number, what: string, yes: boolean): Promise<boolean> {
  info(`${count} ${what}`);
  if (count === 0 || yes || !process.stdin.isTTY || !process.stderr.isTTY) return count > 0;
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`proceed with all ${count}? [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** A progress bar on stderr when it is a TTY; otherwise nothing until the summary. */
export function progressBar(total: number, label: string): { update(done: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar(
    { format: ` ${label} |{bar}| {value}/{total}`, stream: process.stderr, hideCursor: true },
    Presets.shades_classic,
  );
  bar.start(Math.max(1, total), 0);
  return {
    update: (done) => bar.update(Math.min(done, Math.max(1, total))),
    stop: () => bar.stop(),
  };
}
