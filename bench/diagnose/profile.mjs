#!/usr/bin/env node
/**
 * Where the plugin's start-up time and memory go, on the simulated 8-GPU node:
 *   - phases of start-up from the plugin's own log lines (pino's `time`, against the spawn time):
 *     modules loaded and config read → NVML inventory → serving → registered, median of 5 starts;
 * and profiles summed by where the code comes from (an npm package, a directory of dist/, Node's
 * internals, V8's own work):
 *   - CPU (--cpu-prof): start → registered with kubelet, then SIGTERM (so the stop is included);
 *   - heap (--heap-prof, V8's sampling heap profiler: live objects at exit, by allocation site) after
 *     warm-up (500 Allocate + 500 GetPreferredAllocation);
 *   - RSS by mapping (/proc/<pid>/smaps) at the same moment: V8 heap and other anonymous memory, the
 *     node binary, shared libraries, koffi's addon.
 * Needs `npm run build`. A measurement, not a test.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mockNvmlLibraryPath } from '../../dist/paths.js';
import { KubeletSimulator } from '../../dist/sim/kubelet.js';
import { MockNode } from '../../dist/sim/mock-node.js';
import { agentArgs, RESOURCE, startRig } from '../lib/rig.mjs';
import { summarize } from '../lib/stats.mjs';
import { measureCalls, requests } from '../suites/latency.mjs';

/** Where a script URL comes from: `pkg:<name>`, `dist/<dir>`, `node internals`, or itself. */
function origin(url, functionName) {
  if (!url) return functionName.startsWith('(') ? functionName : '(native / V8)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return `pkg:${pkg[1]}`;
  const dist = /\/dist\/([^/]+)\//.exec(url);
  if (dist) return `agent: dist/${dist[1]}`;
  if (url.startsWith('node:')) return 'node internals';
  return url.replace(/^file:\/\//, '');
}

function top(map, total, unit, limit = 14) {
  return [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, v]) => `| ${name} | ${v.toFixed(1)} ${unit} | ${((v / total) * 100).toFixed(0)}% |`)
    .join('\n');
}

function summarizeCpu(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  profile.samples.forEach((id, i) => {
    const n = byId.get(id);
    const key = origin(n.callFrame.url, n.callFrame.functionName);
    self.set(key, (self.get(key) ?? 0) + profile.timeDeltas[i] / 1000);
  });
  const idle = self.get('(idle)') ?? 0;
  self.delete('(idle)');
  const busy = [...self.values()].reduce((a, b) => a + b, 0);
  const wall = (profile.endTime - profile.startTime) / 1000;
  return `CPU profile: ${wall.toFixed(0)} ms from profiler start to exit, ${busy.toFixed(0)} ms on the main thread, ${idle.toFixed(0)} ms idle\n\n| self time in | ms | share |\n|---|---|---|\n${top(self, busy, 'ms')}`;
}

function summarizeHeap(profile) {
  const by = new Map();
  const walk = (node) => {
    const key = origin(node.callFrame.url, node.callFrame.functionName);
    by.set(key, (by.get(key) ?? 0) + node.selfSize / 2 ** 20);
    for (const child of node.children) walk(child);
  };
  walk(profile.head);
  const total = [...by.values()].reduce((a, b) => a + b, 0);
  return `Heap profile: ${total.toFixed(1)} MiB live (sampled) at exit\n\n| allocated by | MiB | share |\n|---|---|---|\n${top(by, total, 'MiB')}`;
}

/** RSS of the process by mapping kind, from /proc/<pid>/smaps. */
function rssByMapping(pid) {
  const groups = new Map();
  let current = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      const name = header[1];
      current = !name
        ? 'anonymous (V8 heap, malloc, stacks)'
        : name.startsWith('[')
          ? name
          : path.basename(name);
      if (/\.node$/.test(current)) current = `addon ${current}`;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) groups.set(current, (groups.get(current) ?? 0) + Number(rss[1]) / 1024);
  }
  const total = [...groups.values()].reduce((a, b) => a + b, 0);
  return `RSS by mapping: ${total.toFixed(1)} MiB\n\n| mapping | MiB | share |\n|---|---|---|\n${top(groups, total, 'MiB', 10)}`;
}

/** V8's heap spaces: what each holds and how much memory it has taken (the new space's is reserved). */
function heapSpaces(spaces) {
  const rows = Object.entries(spaces).map(
    ([name, s]) =>
      `| ${name} | ${(s.used / 2 ** 20).toFixed(1)} MiB | ${(s.size / 2 ** 20).toFixed(1)} MiB |`,
  );
  return `V8 heap spaces\n\n| space | used | size |\n|---|---|---|\n${rows.join('\n')}`;
}

async function profiled(flag, dir, warm) {
  const rig = await startRig('agent', { nodeFlags: [flag, `${flag}-dir=${dir}`], probe: warm });
  let smaps = '';
  if (warm) {
    const bodies = requests(rig.uuids);
    await measureCalls(rig.connect(), 'Allocate', bodies.Allocate, 1, 500);
    await measureCalls(rig.connect(), 'GetPreferredAllocation', bodies.GetPreferredAllocation, 1, 500);
    await sleep(1000);
    smaps = `${rssByMapping(rig.proc.child.pid)}\n\n${heapSpaces((await rig.probe()).spaces)}`;
  }
  await rig.stop();
  const file = readdirSync(dir).find((f) =>
    f.endsWith(flag === '--cpu-prof' ? '.cpuprofile' : '.heapprofile'),
  );
  return { profile: JSON.parse(readFileSync(path.join(dir, file), 'utf8')), smaps };
}

/** The log lines that close each phase, and what the phase did. */
const PHASES = [
  ['effective configuration', 'node start, modules loaded, flags and config read'],
  ['NVML inventory', 'NVML opened (koffi), GPUs read'],
  ['serving device plugin', 'resources computed, gRPC server bound'],
  ['registered with kubelet', 'Register sent, kubelet dialled back, answered'],
];

/** ms from spawn to each phase's log line, one start. */
async function phasesOnce(node, pluginDir) {
  const t0 = Date.now();
  const child = spawn(process.execPath, agentArgs(node, pluginDir), {
    env: { PATH: process.env.PATH, MOCK_NVML_STATE: node.statePath, NVML_LIBRARY: mockNvmlLibraryPath() },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
    if (out.includes('"registered with kubelet"')) child.kill('SIGTERM');
  });
  await new Promise((resolve) => child.on('exit', resolve));
  const lines = out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  return PHASES.map(([msg]) => lines.find((l) => l.msg === msg).time - t0);
}

async function phases(starts = 5) {
  const node = await MockNode.create('dgx-a100');
  const pluginDir = path.join(node.dir, 'device-plugins');
  await mkdir(pluginDir, { recursive: true });
  const kubelet = await KubeletSimulator.start({ dir: pluginDir });
  const runs = [];
  try {
    for (let i = 0; i < starts; i++) runs.push(await phasesOnce(node, pluginDir));
  } finally {
    await kubelet.stop();
    await node.remove();
  }
  const at = PHASES.map((_, k) => summarize(runs.map((r) => r[k])).median);
  const rows = PHASES.map(
    ([msg, what], k) =>
      `| ${what} (log: "${msg}") | ${(at[k] - (at[k - 1] ?? 0)).toFixed(0)} ms | ${at[k].toFixed(0)} ms |`,
  );
  return `Start-up phases (median of ${starts} starts, ${RESOURCE})\n\n| phase | took | done at |\n|---|---|---|\n${rows.join('\n')}`;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'vgpu-profile-'));
try {
  console.log(
    `Node ${process.version}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  console.log(`${await phases()}\n`);
  const cpu = await profiled('--cpu-prof', path.join(dir, 'cpu'), false);
  console.log(`${summarizeCpu(cpu.profile)}\n`);
  const heap = await profiled('--heap-prof', path.join(dir, 'heap'), true);
  console.log(`${summarizeHeap(heap.profile)}\n`);
  console.log(heap.smaps);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
