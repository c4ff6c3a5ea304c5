/**
 * The tests `npm run test:mutation` (StrykerJS) runs against each mutant of the core: the fast unit
 * tests and the integration tests through the mock NVML that cover src/devices, allocation and health
 * in src/plugin, and the config's semantic checks. No process, container or demo tests (they need
 * dist/ or podman and take seconds each).
 *
 * Stryker's vitest runner sets `pool: 'threads'`; the plugin below puts forks back, as in
 * vitest.config.ts: the mock NVML library reads MOCK_NVML_STATE with getenv(), and a worker thread's
 * process.env is a copy that native code never sees.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  plugins: [
    {
      name: 'vgpu-agent:forks-for-native-code',
      configureVitest({ project }) {
        project.config.pool = 'forks';
      },
    },
  ],
  test: {
    include: [
      'src/config/docs.test.ts',
      'src/config/hami-config.test.ts',
      'src/config/health-checks.test.ts',
      'src/config/load.test.ts',
      'src/config/nvidia-compat.test.ts',
      'src/config/select.test.ts',
      'src/plugin/hami-core-host.test.ts',
      'test/devices/*.test.ts',
      'test/plugin/allocate-response.test.ts',
      'test/plugin/allocate-settings.test.ts',
      'test/plugin/preferred-allocation.test.ts',
      'test/plugin/preferred-request.test.ts',
      'test/plugin/resource.test.ts',
      'test/plugin/split-allocation.test.ts',
      'test/plugin/health.integration.test.ts',
      'test/plugin/plugin.integration.test.ts',
      'test/plugin/sharing.integration.test.ts',
      'test/plugin/split.integration.test.ts',
      'test/runtime/host.test.ts',
    ],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    expect: { poll: { timeout: 10_000 } },
    globalSetup: ['test/mutation/global-setup.ts'],
  },
});
