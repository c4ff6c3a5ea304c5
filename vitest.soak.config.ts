import { defineConfig } from 'vitest/config';

// `npm run test:soak`: the long fault suites (test/soak/*.soak.ts), kept out of `npm test`. They run
// for SOAK_MINUTES (default 10) and write a report (SOAK_REPORT, default bench/results/soak-latest.md).
const minutes = Number(process.env.SOAK_MINUTES ?? 10);

export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: (minutes + 5) * 60_000,
    hookTimeout: 60_000,
    expect: { poll: { timeout: 10_000 } },
    globalSetup: ['test/global-setup.ts'],
    reporters: process.env.VITEST_JSON_REPORT ? ['default', 'json'] : ['default'],
    outputFile: process.env.VITEST_JSON_REPORT ? { json: process.env.VITEST_JSON_REPORT } : {},
  },
});
