import { defineConfig } from 'vitest/config';

// `npm run test:image`: the container image test only (test/image/*.e2e.ts), kept out of `npm test`
// because it builds images with buildah and runs them with podman (minutes, root, Debian packages).
export default defineConfig({
  test: {
    include: ['test/image/**/*.e2e.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 1_200_000,
    globalSetup: ['test/global-setup.ts'],
    reporters: process.env.VITEST_JSON_REPORT ? ['default', 'json'] : ['default'],
    outputFile: process.env.VITEST_JSON_REPORT ? { json: process.env.VITEST_JSON_REPORT } : {},
  },
});
