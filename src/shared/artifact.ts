/** An artifact in a result or manifest: where it is, and what it holds. Sandbox-safe. */
export interface Artifact {
  /** `file:///abs/path` or `s3://bucket/key`. */
  uri: string;
  bytes: number;
  /** Hex SHA-256 of the content. */
  sha256: string;
  /** Host path, on the `file` backend only. */
  path?: string;
  /** Presigned GET URL, on `s3` only; expires (SLUICE_PRESIGN_TTL_SECONDS), so readers presign again. */
  url?: string;
}

/**
 * On a pipeline's result when a step after its artifacts were final failed (today: removing the
 * run's `.work/` intermediates). The artifacts stay in place and the run completes; `.work/` may
 * be left behind, under the run's own prefix.
 */
export interface AfterFinalStatus {
  /** The step that failed. */
  step: 'cleanup';
  /** Its failure chain, outermost first. */
  error: string;
  /** Always true: nothing removed the finished artifacts. */
  artifactsKept: true;
}
