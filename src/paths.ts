/** Where the package's own files (proto/, native/) are, whether running from src/ (tests) or dist/. */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new Error(`vgpu-agent: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  root = dir;
  return dir;
}

/** The mock NVML library built by `npm run build:mock-nvml`. */
export function mockNvmlLibraryPath(variant: 'current' | 'legacy' = 'current'): string {
  const build = path.join(packageRoot(), 'native/mock-nvml/build');
  return path.join(variant === 'legacy' ? path.join(build, 'legacy') : build, 'libnvidia-ml.so.1');
}

/** A ready state file of the mock NVML (`dgx-a100`, `mixed-mig`, `single-t4`). */
export function mockNodePath(node: string): string {
  return path.join(packageRoot(), 'native/mock-nvml/nodes', `${node}.json`);
}

/** The ready simulated nodes: one per state file in native/mock-nvml/nodes (read once, at start-up). */
export function mockNodeNames(): string[] {
  return readdirSync(path.join(packageRoot(), 'native/mock-nvml/nodes'))
    .filter((file) => file.endsWith('.json'))
    .map((file) => file.slice(0, -'.json'.length))
    .sort();
}
