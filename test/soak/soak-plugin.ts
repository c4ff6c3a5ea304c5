/**
 * The plugin under soak: `vgpu-agent plugin` as a process (dist/cli/main.js, with the chart's
 * NODE_OPTIONS) on a simulated node, following a ConfigMap volume, serving /metrics on a free port,
 * with test/soak/probe.mjs preloaded to read its RSS, heap, open descriptors and event-loop delay.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { parse } from 'yaml';
import { mockNvmlLibraryPath, packageRoot } from '../../src/paths.js';
import type { MockNode } from '../../src/sim/mock-node.js';

const CLI = path.join(packageRoot(), 'dist/cli/main.js');
const PROBE = path.join(packageRoot(), 'test/soak/probe.mjs');

export interface ProbeSample {
  rss: number;
  heapUsed: number;
  fds: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

export interface SoakPlugin {
  child: ChildProcess;
  /** every JSON log line the plugin wrote */
  lines: Record<string, unknown>[];
  probe(): Promise<ProbeSample>;
  /** the value of the first /metrics sample line matching `line` (0 when absent) */
  metric(line: RegExp): Promise<number>;
  stop(): Promise<number | null>;
}

/** The Node.js flags the chart gives the plugin (`plugin.nodeOptions`). */
export function chartNodeOptions(): string {
  const values = parse(readFileSync(path.join(packageRoot(), 'charts/vgpu-agent/values.yaml'), 'utf8'));
  return values.plugin.nodeOptions ?? '';
}

export async function startSoakPlugin(
  node: MockNode,
  pluginDir: string,
  configDir: string,
): Promise<SoakPlugin> {
  const probeFile = path.join(node.dir, 'probe');
  const args = ['--import', PROBE, CLI, 'plugin', '--device-plugin-dir', pluginDir, '--config', configDir];
  args.push('--metrics-address', '127.0.0.1:0', '--host-sys', node.hostPaths.sysfsRoot);
  args.push('--host-proc', node.hostPaths.procRoot);
  const child = spawn(process.execPath, args, {
    env: {
      PATH: process.env.PATH,
      NODE_OPTIONS: chartNodeOptions(),
      MOCK_NVML_STATE: node.statePath,
      NVML_LIBRARY: mockNvmlLibraryPath(),
      SOAK_PROBE_FILE: probeFile,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines = collectLines(child);
  await expect.poll(() => portOf(lines), { timeout: 30_000 }).toBeDefined();
  const base = `http://127.0.0.1:${portOf(lines)}`;
  let probes = 0;
  return {
    child,
    lines,
    async probe() {
      const file = `${probeFile}.${++probes}`;
      child.kill('SIGUSR2');
      for (let i = 0; i < 1000 && !existsSync(file); i++) await sleep(10);
      return JSON.parse(await readFile(file, 'utf8')) as ProbeSample;
    },
    async metric(line) {
      const text = await (await fetch(`${base}/metrics`)).text();
      const found = text.split('\n').find((l) => line.test(l));
      return found ? Number(found.slice(found.lastIndexOf(' ') + 1)) : 0;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

function collectLines(child: ChildProcess): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const line of parts) if (line.trim()) lines.push(JSON.parse(line));
  });
  return lines;
}

function portOf(lines: Record<string, unknown>[]): number | undefined {
  return lines.find((l) => l.msg === 'serving /metrics, /healthz, /readyz')?.port as number | undefined;
}
