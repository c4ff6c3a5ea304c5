// @ts-check
/**
 * Mutation testing of the core with StrykerJS: `npm run test:mutation` (not in CI: a whole-core run takes
 * hours on 2 cores). The tests it runs are those of vitest.mutation.config.ts. See docs/testing.md.
 */
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  mutate: [
    // (config, inventory) → resources, health state and monitor, MIG strategy, list sizes, inventory
    'src/devices/**/*.ts',
    // Allocate, its checks and answers, preferred allocation, the HAMi-core contract
    'src/plugin/resource.ts',
    'src/plugin/allocate-response.ts',
    'src/plugin/allocate-settings.ts',
    'src/plugin/split-allocation.ts',
    'src/plugin/preferred-allocation.ts',
    'src/plugin/preferred-request.ts',
    // The HAMi-core contract read from the host, and the host facts NVML does not give (NUMA, MIG minors)
    'src/runtime/hami-core-host.ts',
    'src/runtime/host.ts',
    // The config's semantic checks: shared resources, device selections, names, health, per-node choice
    'src/config/sharing-schema.ts',
    'src/config/devices.ts',
    'src/config/resource-name.ts',
    'src/config/health-checks.ts',
    'src/config/select.ts',
  ],
  coverageAnalysis: 'perTest',
  // break: just below the score measured on this code (docs/testing.md, Score); below it, exit code 1.
  thresholds: { high: 95, low: 80, break: 95 },
  // Module-level constants run every test again for each of their mutants: hours for little.
  ignoreStatic: true,
  concurrency: 2,
  incremental: true,
  incrementalFile: 'test/mutation/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'json', 'html'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
