/**
 * Versioning behavior of a workflow type, declared only where the server accepts it.
 *
 * The server refuses a workflow task completion that carries a versioning behavior unless the
 * worker polls with deployment options in versioned mode ("versioning behavior cannot be
 * specified without deployment options being set with versioned mode"), and core sends whatever
 * the workflow declares. So a static `setWorkflowOptions({ versioningBehavior })` would stall
 * every run on a worker with SLUICE_VERSIONING=0. The getter form is evaluated once per run, just
 * before the workflow function first runs, where `workflowInfo().currentDeploymentVersion` says
 * which worker completes the task: a versioned worker has a deployment name, an unversioned one
 * none. On replay it is the version recorded in history, so a run keeps the behavior it started
 * with. The behavior is not a command: choosing it never affects determinism.
 */
import type { VersioningBehavior, WorkflowDefinitionOptions } from '@temporalio/common';
import { workflowInfo } from '@temporalio/workflow';

/** `workflowDefinitionOptions` getter: `behavior` on a versioned worker, nothing on an unversioned one. */
export function whenVersioned(behavior: VersioningBehavior): () => WorkflowDefinitionOptions {
  return () => (workflowInfo().currentDeploymentVersion?.deploymentName ? { versioningBehavior: behavior } : {});
}
