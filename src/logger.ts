/**
 * Process logger (pino, to stderr). Activities log through it, never console.log. On a terminal
 * a person reads it, so lines are formatted (pino-pretty); anywhere else (a pipe, a file, a log
 * shipper) it writes one JSON object a line. SLUICE_LOG_FORMAT overrides the choice.
 */
import pino from 'pino';
import pretty from 'pino-pretty';

export type Logger = pino.Logger;

/** SLUICE_LOG_FORMAT: `auto` picks `pretty` when stderr is a TTY, else `json`. */
export type LogFormat = 'auto' | 'json' | 'pretty';

/** The format `auto` resolves to for this process: readable lines on a terminal, JSON elsewhere. */
export function resolveLogFormat(format: LogFormat, stderrIsTty = process.stderr.isTTY === true): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  return stderrIsTty ? 'pretty' : 'json';
}

/** A logger on stderr, so stdout stays free for `--json` output. @param format @default 'auto' */
export function createLogger(level: string, name = 'sluice', format: LogFormat = 'auto'): Logger {
  const options = { name, level, base: { pid: process.pid } };
  if (resolveLogFormat(format) === 'json') return pino(options, pino.destination(2));
  // Synchronous, in-process (no worker thread): lines are written before the process exits, and
  // interleave in order with the CLI's own human output on stderr.
  return pino(
    options,
    pretty({
      destination: 2,
      sync: true,
      colorize: process.stderr.isTTY === true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    }),
  );
}
