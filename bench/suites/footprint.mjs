/**
 * Memory and idle CPU of the plugin process, read inside it by the preloaded probe (RSS, V8 heap
 * used, CPU time of all its threads). Floors, side by side in the same windows: the bare grpc-js
 * plugin waiting on the same mock NVML's Xid events (so both pay the mock's event-wait polling), and
 * an idle `node` (the runtime alone, for RSS).
 *
 * After warm-up (500 Allocate + 500 GetPreferredAllocation) and after 10,000 more Allocates (64 in
 * flight), RSS and heap are sampled once a second for a few seconds; idle CPU is the CPU time used
 * per second of wall time, per one-second window, with nothing calling the plugin.
 */

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnPlugin, startPair, stopProcess } from '../lib/rig.mjs';
import { figure } from '../lib/stats.mjs';
import { measureCalls, requests } from './latency.mjs';

const MIB = 2 ** 20;

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

export async function footprintSuite({ quick }) {
  const window = quick ? 3 : 5;
  const idleWindow = quick ? 5 : 15;
  const { agent, floor } = await startPair({ probe: true }, { probe: true, nvml: true });
  const node = await idleNode();
  const figures = [];
  try {
    const bodies = requests(agent.uuids);
    for (const rig of [agent, floor]) {
      await measureCalls(rig.connect(), 'Allocate', bodies.Allocate, 1, 500);
      await measureCalls(rig.connect(), 'GetPreferredAllocation', bodies.GetPreferredAllocation, 1, 500);
    }
    await sleep(1000);
    const warm = await sampleEverySecond([agent, floor, node], window);
    for (const rig of [agent, floor])
      await measureCalls(rig.connect(), 'Allocate', bodies.Allocate, 64, 10_000);
    await sleep(1000);
    const loaded = await sampleEverySecond([agent, floor, node], window);
    const idle = await sampleEverySecond([agent, floor, node], idleWindow);
    const bare = 'bare grpc-js plugin + NVML events';
    figures.push(
      figure('footprint', 'RSS after warm-up', 'MiB', rssMiB(warm.agent), bare, rssMiB(warm.floor)),
      figure(
        'footprint',
        'RSS after warm-up, vs the runtime',
        'MiB',
        rssMiB(warm.agent),
        'node, idle',
        rssMiB(warm.node),
      ),
      figure(
        'footprint',
        'RSS after 10,000 Allocates',
        'MiB',
        rssMiB(loaded.agent),
        bare,
        rssMiB(loaded.floor),
      ),
      figure(
        'footprint',
        'V8 heap used after warm-up',
        'MiB',
        heapMiB(warm.agent),
        bare,
        heapMiB(warm.floor),
      ),
      figure(
        'footprint',
        'V8 heap used after 10,000 Allocates',
        'MiB',
        heapMiB(loaded.agent),
        bare,
        heapMiB(loaded.floor),
      ),
      figure(
        'footprint',
        'idle CPU, per 1 s window',
        '%',
        cpuPercent(idle.agent),
        bare,
        cpuPercent(idle.floor),
        {
          runtimeIdleCpu: cpuPercent(idle.node),
        },
      ),
    );
  } finally {
    await node.stop();
    await agent.stop();
    await floor.stop();
  }
  return figures;
}
