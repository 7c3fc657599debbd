import { defineConfig } from 'vitest/config';

/** `npm run test:faults`: real processes killed and restarted on 127.0.0.1; one file at a time. */
export default defineConfig({
  test: {
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
    fileParallelism: false,
    globalSetup: ['test/global-setup.ts'],
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
  },
});
