/** The mock NVML library for the mutation runs (no dist/: none of their tests starts the CLI). */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  execFileSync(process.execPath, [path.join(root, 'native/mock-nvml/build.mjs')], { stdio: 'inherit' });
}
