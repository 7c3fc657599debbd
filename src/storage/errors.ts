/**
 * What can go wrong with a store, in four kinds every caller can act on, and their mapping to
 * Temporal failures: a missing object or bucket and refused credentials are final (retrying
 * cannot help, so no retry storm); an unreachable store, a 5xx or SlowDown is retryable with the
 * worker's jittered backoff.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../shared/constants';

/** The key (or its bucket) does not exist. */
export class ObjectNotFoundError extends Error {
  override readonly name = 'ObjectNotFoundError';
  constructor(
    readonly uri: string,
    readonly what: 'object' | 'bucket' = 'object',
    options?: { cause?: unknown },
  ) {
    super(what === 'bucket' ? `bucket of ${uri} does not exist` : `${uri} does not exist`, options);
  }
}

/** The store refused the credentials or the request (403, bad key, bad signature). */
export class StorageAccessError extends Error {
  override readonly name = 'StorageAccessError';
}

/** The store could not be reached, or answered 5xx / SlowDown: worth a retry. */
export class StorageUnavailableError extends Error {
  override readonly name = 'StorageUnavailableError';
}

/** A write found the local disk full or read-only (file backend or scratch). */
export class StorageUnwritableError extends Error {
  override readonly name = 'StorageUnwritableError';
}

/**
 * The Temporal failure for a storage error: `ObjectNotFound` and `Forbidden` are non-retryable,
 * `StorageUnavailable` retryable, a full disk `OutputUnwritable`. Anything else is returned as is.
 */
export function storageFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ObjectNotFoundError) {
    return ApplicationFailure.create({
      type: FailureType.ObjectNotFound,
      message: err.message,
      nonRetryable: true,
      cause: err,
      details: [{ uri: err.uri }],
    });
  }
  if (err instanceof StorageAccessError) {
    return ApplicationFailure.create({
      type: FailureType.Forbidden,
      message: err.message,
      nonRetryable: true,
      cause: err,
    });
  }
  if (err instanceof StorageUnwritableError) {
    return ApplicationFailure.create({
      type: FailureType.OutputUnwritable,
      message: err.message,
      nonRetryable: true,
      cause: err,
    });
  }
  if (err instanceof StorageUnavailableError) {
    return ApplicationFailure.create({ type: FailureType.StorageUnavailable, message: err.message, cause: err });
  }
  return err;
}
