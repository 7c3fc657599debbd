/** Process logger (pino, JSON to stderr). Activities log through it, never console.log. */
import pino from 'pino';

export type Logger = pino.Logger;

/** A logger writing JSON lines to stderr, so stdout stays free for `--json` output. */
export function createLogger(level: string, name = 'sluice'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}
