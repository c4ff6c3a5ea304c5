/**
 * Memory and idle CPU of the plugin process, read inside it by the preloaded probe (RSS, V8 heap
 * used, CPU time of all its threads). Floors, side by side in the same windows: the bare grpc-js
 * plugin waiting on the same mock NVML's Xid events (so both pay the mock's event-wait polling), and
 * an idle `node` (the runtime alone, for RSS).
 *
 * After warm-up (500 Allocate + 500 GetPreferredAllocation) and after 10,000 more Allocates (64 in
 * flight), RSS and heap are sampled once a second for a few seconds; idle CPU is the CPU time used
 * per second of wall time, per one-second window, with nothing calling the plugin.
 *
 * Next to them, through the same steps: the agent with the chart's NODE_OPTIONS (heap flags, from
 * charts/vgpu-agent/values.yaml), compared with the same floor, and with `--baseline` the build of
 * another commit (the RSS figures again, agent vs that build).
 */

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { spawnPlugin, startPair, startRig, stopProcess } from '../lib/rig.mjs';
import { figure } from '../lib/stats.mjs';
import { measureCalls, requests } from './latency.mjs';

const MIB = 2 ** 20;
const VALUES = fileURLToPath(new URL('../../charts/vgpu-agent/values.yaml', import.meta.url));

/** The Node.js flags the chart gives the plugin (`plugin.nodeOptions`). */
export function chartNodeOptions() {
  return parse(readFileSync(VALUES, 'utf8')).plugin.nodeOptions ?? '';
}

/** Another agent rig, sampled under its own name. */
async function variantRig(kind, options) {
  const rig = await startRig('agent', { probe: true, ...options });
  return { ...rig, kind };
}

/** An idle Node process with the probe: the runtime's own footprint. */
async function idleNode() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-bench-node-'));
  const file = path.join(dir, 'probe');
  const proc = spawnPlugin(
    ['-e', 'setInterval(() => {}, 1 << 30)'],
    { PATH: process.env.PATH, BENCH_PROBE_FILE: file },
    true,
  );
  let probes = 0;
  await sleep(500);
  return {
    kind: 'node',
    async probe() {
      const out = `${file}.${++probes}`;
      proc.child.kill('SIGUSR2');
      for (let i = 0; i < 500 && !existsSync(out); i++) await sleep(10);
      return JSON.parse(readFileSync(out, 'utf8'));
    },
    async stop() {
      await stopProcess(proc);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `seconds` samples of every process, one a second: { kind: [probe, …] }. */
async function sampleEverySecond(processes, seconds) {
  const samples = Object.fromEntries(processes.map((p) => [p.kind, []]));
  for (let i = 0; i <= seconds; i++) {
    for (const p of processes) samples[p.kind].push(await p.probe());
    if (i < seconds) await sleep(1000);
  }
  return samples;
}

const rssMiB = (list) => list.map((s) => s.rss / MIB);
const heapMiB = (list) => list.map((s) => s.heapUsed / MIB);

/** CPU % of one core in each window between consecutive probes. */
function cpuPercent(list) {
  const out = [];
  for (let i = 1; i < list.length; i++) {
    const cpu = list[i].cpuUserUs + list[i].cpuSystemUs - list[i - 1].cpuUserUs - list[i - 1].cpuSystemUs;
    const wall = (list[i].uptimeS - list[i - 1].uptimeS) * 1e6;
    out.push((cpu / wall) * 100);
  }
  return out;
}

/** The rigs a run samples: the agent, its floor, the flagged agent, the baseline build if any. */
async function startRigs(baseline) {
  const { agent, floor } = await startPair({ probe: true }, { probe: true, nvml: true });
  const rigs = [agent, floor];
  try {
    const nodeOptions = chartNodeOptions();
    if (nodeOptions) rigs.push(await variantRig('flagged', { env: { NODE_OPTIONS: nodeOptions } }));
    if (baseline) rigs.push(await variantRig('baseline', { cli: baseline.cli }));
  } catch (err) {
    for (const rig of rigs) await rig.stop();
    throw err;
  }
  return rigs;
}

/** Allocate and GetPreferredAllocation 500 times each, then 10,000 Allocates, on every rig. */
async function warmUp(rigs, bodies) {
  for (const rig of rigs) {
    await measureCalls(rig.connect(), 'Allocate', bodies.Allocate, 1, 500);
    await measureCalls(rig.connect(), 'GetPreferredAllocation', bodies.GetPreferredAllocation, 1, 500);
  }
}

async function load(rigs, bodies) {
  for (const rig of rigs) await measureCalls(rig.connect(), 'Allocate', bodies.Allocate, 64, 10_000);
}

const BARE = 'bare grpc-js plugin + NVML events';

function memoryFigures(warm, loaded, agent = 'agent', label = '', floor = 'floor', floorName = BARE) {
  return [
    figure(
      'footprint',
      `RSS after warm-up${label}`,
      'MiB',
      rssMiB(warm[agent]),
      floorName,
      rssMiB(warm[floor]),
    ),
    figure(
      'footprint',
      `RSS after 10,000 Allocates${label}`,
      'MiB',
      rssMiB(loaded[agent]),
      floorName,
      rssMiB(loaded[floor]),
    ),
    figure(
      'footprint',
      `V8 heap used after warm-up${label}`,
      'MiB',
      heapMiB(warm[agent]),
      floorName,
      heapMiB(warm[floor]),
    ),
    figure(
      'footprint',
      `V8 heap used after 10,000 Allocates${label}`,
      'MiB',
      heapMiB(loaded[agent]),
      floorName,
      heapMiB(loaded[floor]),
    ),
  ];
}

export async function footprintSuite({ quick, baseline }) {
  const window = quick ? 3 : 5;
  const idleWindow = quick ? 5 : 15;
  const rigs = await startRigs(baseline);
  const [agent] = rigs;
  const node = await idleNode();
  const sampled = [...rigs, node];
  try {
    const bodies = requests(agent.uuids);
    await warmUp(rigs, bodies);
    await sleep(1000);
    const warm = await sampleEverySecond(sampled, window);
    await load(rigs, bodies);
    await sleep(1000);
    const loaded = await sampleEverySecond(sampled, window);
    const idle = await sampleEverySecond(sampled, idleWindow);
    const figures = memoryFigures(warm, loaded);
    figures.splice(
      1,
      0,
      figure(
        'footprint',
        'RSS after warm-up, vs the runtime',
        'MiB',
        rssMiB(warm.agent),
        'node, idle',
        rssMiB(warm.node),
      ),
    );
    figures.push(
      figure(
        'footprint',
        'idle CPU, per 1 s window',
        '%',
        cpuPercent(idle.agent),
        BARE,
        cpuPercent(idle.floor),
        {
          runtimeIdleCpu: cpuPercent(idle.node),
        },
      ),
    );
    if (warm.flagged)
      figures.push(...memoryFigures(warm, loaded, 'flagged', `, NODE_OPTIONS="${chartNodeOptions()}"`));
    if (warm.baseline) {
      const name = `the agent at ${baseline.ref} (${baseline.commit})`;
      figures.push(
        ...memoryFigures(warm, loaded, 'agent', ', vs another build', 'baseline', name).slice(0, 2),
      );
    }
    return figures;
  } finally {
    await node.stop();
    for (const rig of rigs) await rig.stop();
  }
}
