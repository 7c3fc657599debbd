/**
 * The workflow bundle, built one way everywhere: by worker hosts running from the TypeScript
 * sources (tests, benchmarks, `tsx`), by replay tests, and by the `npm run build` step that writes
 * `dist/workflow-bundle.js` so worker processes (and the container image) start without webpack.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DefaultLogger, bundleWorkflowCode, type BundleOptions } from '@temporalio/worker';

/** The language level of tsconfig.json, which the compiled `dist/` bundle is written at. */
const SOURCE_TARGET = 'es2022';

/** The workflow tracing interceptors: `.ts` under vitest/tsx, `.js` when compiled. */
const TRACING_INTERCEPTORS = path.join(__dirname, '..', 'workflows', `tracing${path.extname(__filename)}`);

type WebpackConfig = Parameters<NonNullable<BundleOptions['webpackConfigHook']>>[0];

/**
 * Compiles `.ts` workflow sources at {@link SOURCE_TARGET} instead of the SDK's default es2017,
 * at which swc turns every object spread into a helper call: the fan-out merges options with
 * spreads for every sub-job, and a profile of the workflow thread showed those helpers among its
 * costliest functions. The `dist/` bundle, compiled by tsc, has native spreads; so does this one.
 */
function compileAtSourceTarget(config: WebpackConfig): WebpackConfig {
  for (const rule of config.module?.rules ?? []) {
    if (!rule || typeof rule !== 'object' || !(rule.test instanceof RegExp) || !rule.test.test('x.ts')) continue;
    const use = rule.use as { options?: { jsc?: { target?: string } } } | undefined;
    if (use?.options?.jsc) use.options.jsc.target = SOURCE_TARGET;
  }
  return config;
}

/**
 * Bundles the workflows at `workflowsPath` (the `index` of src/workflows or dist/workflows), with
 * the tracing interceptors of src/workflows/tracing.ts: they act only on runs started with a
 * trace context, so the same bundle (and build ID) serves workers with tracing on and off.
 */
export async function bundleWorkflows(workflowsPath: string): Promise<{ code: string }> {
  return bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules: [TRACING_INTERCEPTORS],
    logger: new DefaultLogger('WARN'),
    webpackConfigHook: compileAtSourceTarget,
  });
}

async function main(): Promise<void> {
  const { code } = await bundleWorkflows(require.resolve('../workflows'));
  const out = path.resolve(__dirname, '..', 'workflow-bundle.js');
  fs.writeFileSync(out, code);
  process.stderr.write(`workflow bundle: ${out} (${(code.length / 1024).toFixed(0)} KiB)\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bundling workflows failed: ${String(err)}\n`);
    process.exit(1);
  });
}
