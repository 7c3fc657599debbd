/**
 * A secret value (key, token) that cannot end up in a log by accident: JSON, `util.inspect`,
 * template strings and pino all print `[redacted]`. Read it with {@link Secret.reveal}.
 */
import util from 'node:util';

const REDACTED = '[redacted]';

/** Holds a secret string; every way of printing it prints `[redacted]`. */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  /** The secret itself: pass it where it is used, never to a logger. */
  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [util.inspect.custom](): string {
    return REDACTED;
  }
}
