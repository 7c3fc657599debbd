import { defineConfig } from 'vitest/config';

/**
 * `npm run test:hosts`: the several-hosts suite (root only: network namespaces, cgroups). Each file
 * makes its own lab (bridge, hosts, Temporal and S3 servers on the bridge); one file at a time.
 */
export default defineConfig({
  test: {
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
    fileParallelism: false,
    include: ['test/hosts/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
  },
});
