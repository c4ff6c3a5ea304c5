/**
 * Process start → registered with kubelet (Register answered, after kubelet's dial-back and
 * GetDevicePluginOptions), on the simulated 8-GPU node. Floors: `node -e 0` (start → exit: the
 * runtime alone) and the bare grpc-js plugin (start → registered). Trials interleave the three (four
 * with `--baseline`: the build of another commit, started the same way). Also the CPU time each
 * plugin process used until registered: on a loaded machine wall time mostly measures the load.
 */
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { mockNvmlLibraryPath } from '../../dist/paths.js';
import { KubeletSimulator } from '../../dist/sim/kubelet.js';
import { MockNode } from '../../dist/sim/mock-node.js';
import { agentArgs, floorArgs, RESOURCE, spawnPlugin, stopProcess } from '../lib/rig.mjs';
import { figure } from '../lib/stats.mjs';

const TICK_MS = 1000 / 100; // USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s

/** CPU time (user + system, all threads) the process has used so far, from /proc/<pid>/stat. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/**
 * { wall, cpu }: ms from spawn to kubelet's 'register' of RESOURCE, and the CPU time the process had
 * used by then (far less sensitive to a loaded machine than wall time). The process is stopped after.
 */
async function timeToRegistered(kubelet, args, env) {
  let proc;
  const registered = new Promise((resolve) => {
    const onRegister = (resource) => {
      if (resource.resourceName !== RESOURCE) return;
      kubelet.off('register', onRegister);
      resolve({ wall: performance.now() - t0, cpu: cpuMs(proc.child.pid) });
    };
    kubelet.on('register', onRegister);
  });
  const t0 = performance.now();
  proc = spawnPlugin(args, env);
  const failed = proc.exited.then(({ code, signal }) => {
    throw new Error(`${path.basename(args[0])} exited (${code ?? signal}) before registering`);
  });
  const times = await Promise.race([registered, failed]);
  failed.catch(() => undefined);
  await stopProcess(proc);
  return times;
}

async function timeToExit(args) {
  const t0 = performance.now();
  const proc = spawnPlugin(args, { PATH: process.env.PATH });
  await proc.exited;
  return performance.now() - t0;
}

export async function startupSuite({ quick, baseline }) {
  const trials = quick ? 3 : 10;
  const node = await MockNode.create('dgx-a100');
  const pluginDir = path.join(node.dir, 'device-plugins');
  await mkdir(pluginDir, { recursive: true });
  const kubelet = await KubeletSimulator.start({ dir: pluginDir });
  const env = {
    PATH: process.env.PATH,
    MOCK_NVML_STATE: node.statePath,
    NVML_LIBRARY: mockNvmlLibraryPath(),
  };
  const uuids = node.state.devices.map((d) => d.uuid);
  const samples = { node: [], floor: [], agent: [], baseline: [] };
  const cpu = { floor: [], agent: [], baseline: [] };
  const record = (kind, { wall, cpu: used }) => {
    samples[kind].push(wall);
    cpu[kind].push(used);
  };
  try {
    for (let i = 0; i < trials; i++) {
      samples.node.push(await timeToExit(['-e', '0']));
      record('floor', await timeToRegistered(kubelet, floorArgs(pluginDir, uuids), env));
      record('agent', await timeToRegistered(kubelet, agentArgs(node, pluginDir), env));
      if (baseline)
        record(
          'baseline',
          await timeToRegistered(kubelet, agentArgs(node, pluginDir, undefined, baseline.cli), env),
        );
    }
  } finally {
    await kubelet.stop();
    await node.remove();
  }
  const baselineName = baseline && `the agent at ${baseline.ref} (${baseline.commit})`;
  const vsBaseline = baseline
    ? [
        figure(
          'start-up',
          'process start → registered, vs another build',
          'ms',
          samples.agent,
          baselineName,
          samples.baseline,
        ),
        figure(
          'start-up',
          'CPU time to registered, vs another build',
          'ms',
          cpu.agent,
          baselineName,
          cpu.baseline,
        ),
      ]
    : [];
  return [
    ...vsBaseline,
    figure(
      'start-up',
      'process start → registered',
      'ms',
      samples.agent,
      'bare grpc-js plugin',
      samples.floor,
    ),
    figure('start-up', 'CPU time to registered', 'ms', cpu.agent, 'bare grpc-js plugin', cpu.floor),
    figure(
      'start-up',
      'process start → registered, vs the runtime',
      'ms',
      samples.agent,
      'node -e 0',
      samples.node,
    ),
  ];
}
