import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Integration tests bind Unix sockets and load the mock NVML library: keep them in separate
    // processes so one test's koffi handles and sockets never leak into another's.
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // expect.poll waits for outcomes, never measures speed: a loaded CI machine must not fail a poll.
    expect: { poll: { timeout: 10_000 } },
    globalSetup: ['test/global-setup.ts'],
    // CI asks for a JSON report to print "N passed, N failed".
    reporters: process.env.VITEST_JSON_REPORT ? ['default', 'json'] : ['default'],
    outputFile: process.env.VITEST_JSON_REPORT ? { json: process.env.VITEST_JSON_REPORT } : {},
  },
});
