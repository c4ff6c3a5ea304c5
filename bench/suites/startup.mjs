/**
 * Process start → registered with kubelet (Register answered, after kubelet's dial-back and
 * GetDevicePluginOptions), on the simulated 8-GPU node. Floors: `node -e 0` (start → exit: the
 * runtime alone) and the bare grpc-js plugin (start → registered). Trials interleave the three (four
 * with `--baseline`: the build of another commit, started the same way).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { mockNvmlLibraryPath } from '../../dist/paths.js';
import { KubeletSimulator } from '../../dist/sim/kubelet.js';
import { MockNode } from '../../dist/sim/mock-node.js';
import { agentArgs, floorArgs, RESOURCE, spawnPlugin, stopProcess } from '../lib/rig.mjs';
import { figure } from '../lib/stats.mjs';

/** ms from spawn to kubelet's 'register' of RESOURCE; the process is stopped afterwards. */
async function timeToRegistered(kubelet, args, env) {
  const registered = new Promise((resolve) => {
    const onRegister = (resource) => {
      if (resource.resourceName !== RESOURCE) return;
      kubelet.off('register', onRegister);
      resolve(performance.now());
    };
    kubelet.on('register', onRegister);
  });
  const t0 = performance.now();
  const proc = spawnPlugin(args, env);
  const failed = proc.exited.then(({ code, signal }) => {
    throw new Error(`${path.basename(args[0])} exited (${code ?? signal}) before registering`);
  });
  const t1 = await Promise.race([registered, failed]);
  failed.catch(() => undefined);
  await stopProcess(proc);
  return t1 - t0;
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
  try {
    for (let i = 0; i < trials; i++) {
      samples.node.push(await timeToExit(['-e', '0']));
      samples.floor.push(await timeToRegistered(kubelet, floorArgs(pluginDir, uuids), env));
      samples.agent.push(await timeToRegistered(kubelet, agentArgs(node, pluginDir), env));
      if (baseline)
        samples.baseline.push(
          await timeToRegistered(kubelet, agentArgs(node, pluginDir, undefined, baseline.cli), env),
        );
    }
  } finally {
    await kubelet.stop();
    await node.remove();
  }
  const vsBaseline = baseline
    ? [
        figure(
          'start-up',
          'process start → registered, vs another build',
          'ms',
          samples.agent,
          `the agent at ${baseline.ref} (${baseline.commit})`,
          samples.baseline,
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
