#!/usr/bin/env node
// Builds the mock NVML library with the machine's C compiler (no other dependency):
//   build/libnvidia-ml.so.1         a current driver
//   build/legacy/libnvidia-ml.so.1  an old driver (-DMOCK_NVML_LEGACY): no _v3 process query,
//                                   no process utilization, no TemperatureV, no CudaDriverVersion_v2
// Skips a variant whose output is newer than every source. Exits 1 with the compiler's output on failure.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = join(here, 'build');
const compiler = process.env.CC || 'cc';

const sourceFiles = readdirSync(here)
  .filter((name) => name.endsWith('.c') || name.endsWith('.h'))
  .sort()
  .map((name) => join(here, name));
const cFiles = sourceFiles.filter((file) => file.endsWith('.c'));
// Editing this script (flags) must rebuild too, and so must adding or removing a source file, which
// changes the directory's own mtime.
const inputs = [...sourceFiles, fileURLToPath(import.meta.url), here];

const variants = [
  { output: join(buildDir, 'libnvidia-ml.so.1'), defines: [] },
  { output: join(buildDir, 'legacy', 'libnvidia-ml.so.1'), defines: ['-DMOCK_NVML_LEGACY'] },
];

const flags = [
  '-shared',
  '-fPIC',
  '-O2',
  '-pthread',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-std=c11',
  // only the NVML entry points (marked visibility("default")) are exported
  '-fvisibility=hidden',
];
if (process.platform === 'linux') flags.push('-Wl,-soname,libnvidia-ml.so.1', '-Wl,-z,defs');

function mtimeMs(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

const newestInput = Math.max(...inputs.map((file) => mtimeMs(file) ?? Number.POSITIVE_INFINITY));

for (const { output, defines } of variants) {
  const shown = relative(process.cwd(), output) || output;
  const built = mtimeMs(output);
  if (built !== undefined && built > newestInput) {
    console.log(`mock-nvml: up to date ${shown}`);
    continue;
  }
  mkdirSync(dirname(output), { recursive: true });
  // Compile to a temporary name and rename: a process that has the old library mapped (a test
  // running meanwhile) keeps its copy, and nobody ever loads a half-written file.
  const temporary = `${output}.tmp-${process.pid}`;
  const result = spawnSync(compiler, [...flags, ...defines, '-o', temporary, ...cFiles, '-lpthread'], {
    encoding: 'utf8',
  });
  if (result.error || result.status !== 0) {
    rmSync(temporary, { force: true });
    const reason = result.error ? `${compiler}: ${result.error.message}` : `${result.stdout}${result.stderr}`;
    console.error(`mock-nvml: building ${shown} failed:\n${reason.trimEnd()}`);
    process.exit(1); // the other variant compiles the same sources: its errors would only repeat these
  }
  renameSync(temporary, output);
  console.log(`mock-nvml: built ${shown}`);
}
