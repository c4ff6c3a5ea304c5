/**
 * `vgpu-agent` (dist/cli/main.js, built by `npm run build:ts`) as a child process, for tests of what
 * only a real process shows: signals, exit codes, its JSON log lines and the environment it reads.
 * Each child is killed after the test (SIGKILL if it is still running).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { packageRoot } from '../../src/paths.js';

const CLI = path.join(packageRoot(), 'dist/cli/main.js');

export interface CliProcess {
  child: ChildProcess;
  /** its stdout, one parsed JSON log line each */
  lines: Record<string, unknown>[];
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the CLI with PATH and `env` only; registers its cleanup with `cleanups`. */
export function runCliProcess(
  args: string[],
  env: NodeJS.ProcessEnv,
  cleanups: (() => Promise<void>)[],
): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env } });
  const run: CliProcess = {
    child,
    lines: [],
    stderr: '',
    exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
  };
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const line of parts) if (line.trim()) run.lines.push(JSON.parse(line));
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    run.stderr += chunk.toString();
  });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await run.exited;
  });
  return run;
}
