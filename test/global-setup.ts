/** Builds the mock NVML library once before any test loads it (no-op when it is up to date). */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  execFileSync(process.execPath, [path.join(root, 'native/mock-nvml/build.mjs')], { stdio: 'inherit' });
}
