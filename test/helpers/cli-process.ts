/**
 * `node dist/cli/main.js <args>` as a child process, for process-level tests: its JSON log lines from
 * stdout, its stderr, and how it exited. killAll() (for afterEach) SIGKILLs whatever still runs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { mockNvmlLibraryPath, packageRoot } from '../../src/paths.js';
import type { MockNode } from '../../src/sim/mock-node.js';

export const CLI = path.join(packageRoot(), 'dist/cli/main.js');

export interface CliRun {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running: CliRun[] = [];

/** Starts the CLI with only PATH and `env` in its environment. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env } });
  const run: CliRun = {
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
  running.push(run);
  return run;
}

/** The first log line with this message, once it is written. */
export function logLine(run: CliRun, msg: string): Record<string, unknown> | undefined {
  return run.lines.find((l) => l.msg === msg);
}

export async function killAll(): Promise<void> {
  for (const run of running.splice(0)) {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    await run.exited;
  }
}

export type CliProcess = CliRun;

/** runCli, with its cleanup (SIGKILL if still running, then wait) pushed onto the test's `cleanups`. */
export function runCliProcess(
  args: string[],
  env: NodeJS.ProcessEnv,
  cleanups: (() => Promise<void>)[],
): CliProcess {
  const run = runCli(args, env);
  cleanups.push(async () => {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    await run.exited;
  });
  return run;
}

/**
 * `vgpu-agent monitor` on a simulated node: the mock NVML, the node's generated /proc and /sys, an
 * ephemeral port and a 200 ms interval; `env` adds to (or overrides) NODE_NAME=gpu-node-1.
 */
export function runMonitorCli(node: MockNode, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): CliRun {
  return runCli(
    [
      'monitor',
      '--host-proc',
      node.hostPaths.procRoot,
      '--host-sys',
      node.hostPaths.sysfsRoot,
      '--metrics-address',
      '127.0.0.1:0',
      '--interval',
      '200ms',
      ...extraArgs,
    ],
    { MOCK_NVML_STATE: node.statePath, NVML_LIBRARY: mockNvmlLibraryPath(), NODE_NAME: 'gpu-node-1', ...env },
  );
}
