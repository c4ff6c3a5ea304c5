/**
 * The CLI turns on V8's compile cache where Node has it (≥ 22.1): a start leaves the compiled modules
 * in <tmpdir>/node-compile-cache for the next one. On Node 20 the call is absent and skipped.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';

const CLI = path.join(packageRoot(), 'dist/cli/main.js');
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const hasCompileCache = major > 22 || (major === 22 && minor >= 1);
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('the compile cache', () => {
  it.skipIf(!hasCompileCache)('is written by a start, under the temporary directory', async () => {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'vgpu-compile-cache-'));
    dirs.push(tmp);
    // No NODE_COMPILE_CACHE: Node would enable the cache by itself, whatever the CLI does.
    await promisify(execFile)(process.execPath, [CLI, 'plugin', '--help'], {
      env: { PATH: process.env.PATH, TMPDIR: tmp },
    });
    const cached = await readdir(path.join(tmp, 'node-compile-cache'), { recursive: true });
    expect(cached.length).toBeGreaterThan(10);
  });

  it('leaves the CLI working where Node has no compile cache', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'version'], {
      env: { PATH: process.env.PATH },
    });
    expect(stdout).toMatch(/\d+\.\d+\.\d+/);
  });
});
