/**
 * Another build of the agent to compare with in the same run (`--baseline <git ref>`): the ref's
 * tree is exported with `git archive` into a temporary directory and compiled there with this
 * checkout's node_modules, so a cut can be measured against the commit before it, interleaved, on
 * the same loaded machine (ratios to the floor move with the load; this one moves less).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Builds `ref` and returns { ref, commit, cli (its dist/cli/main.js), remove() }. */
export function buildBaseline(ref) {
  const commit = execFileSync('git', ['rev-parse', '--short', ref], { cwd: root, encoding: 'utf8' }).trim();
  const dir = mkdtempSync(path.join(os.tmpdir(), `vgpu-bench-baseline-${commit}-`));
  try {
    const tar = execFileSync('git', ['archive', '--format=tar', commit], { cwd: root, maxBuffer: 1 << 30 });
    execFileSync('tar', ['-x', '-C', dir], { input: tar });
    symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
    execFileSync(
      process.execPath,
      [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
      {
        cwd: dir,
        stdio: 'inherit',
      },
    );
    const cli = path.join(dir, 'dist/cli/main.js');
    if (!existsSync(cli)) throw new Error(`baseline ${ref}: no dist/cli/main.js after the build`);
    return { ref, commit, cli, remove: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
