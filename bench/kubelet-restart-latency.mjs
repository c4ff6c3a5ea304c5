/**
 * How long the plugin takes to be back with kubelet after a kubelet restart: the plugin process
 * (dist/cli/main.js) on the simulated 8×A100 node, the kubelet simulator restarted N times, first as
 * kubelet restarts (every socket deleted, kubelet.sock re-created), then keeping the plugin's socket
 * (kubelet.sock alone tells the plugin). Timed from the moment the new kubelet.sock exists to the
 * moment the simulator holds the plugin's device list again. Run `npm run build` first, then
 * `node bench/kubelet-restart-latency.mjs [restarts]`.
 * A measurement, not a test: nothing here asserts a limit.
 */
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { mockNvmlLibraryPath, packageRoot } from '../dist/paths.js';
import { KubeletSimulator } from '../dist/sim/kubelet.js';
import { MockNode } from '../dist/sim/mock-node.js';

const RESTARTS = Number(process.argv[2] ?? 30);
const GPU = 'nvidia.com/gpu';

const node = await MockNode.create('dgx-a100');
const pluginDir = path.join(node.dir, 'device-plugins');
await mkdir(pluginDir, { recursive: true });
const kubelet = await KubeletSimulator.start({ dir: pluginDir });
const cli = path.join(packageRoot(), 'dist/cli/main.js');
const plugin = spawn(
  process.execPath,
  [cli, 'plugin', '--device-plugin-dir', pluginDir, '--metrics-address', ''],
  {
    env: { PATH: process.env.PATH, MOCK_NVML_STATE: node.statePath, NVML_LIBRARY: mockNvmlLibraryPath() },
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);
const exited = new Promise((resolve) => plugin.on('exit', resolve));
const backWith = (registrations) => (state) =>
  state.get(GPU)?.registrations === registrations && state.get(GPU)?.devices.length === 8;

/** Restarts kubelet `RESTARTS` times; returns each re-registration time in ms. */
async function measure(keepPluginSockets) {
  const times = [];
  for (let i = 0; i < RESTARTS; i++) {
    await sleep(200); // let the previous registration settle, so every restart is measured on its own
    const registrations = kubelet.resource(GPU).registrations;
    await kubelet.restart({ keepPluginSockets });
    const started = performance.now();
    await kubelet.waitFor(backWith(registrations + 1), { timeoutMs: 10_000 });
    times.push(performance.now() - started);
  }
  return times;
}

function report(what, times) {
  const sorted = [...times].sort((a, b) => a - b);
  const median =
    (sorted[Math.floor((sorted.length - 1) / 2)] + sorted[Math.ceil((sorted.length - 1) / 2)]) / 2;
  const ms = (t) => `${t.toFixed(1)} ms`;
  console.log(`${RESTARTS} ${what}: median ${ms(median)}, best ${ms(sorted[0])}, worst ${ms(sorted.at(-1))}`);
}

try {
  await kubelet.waitFor(backWith(1), { timeoutMs: 20_000 });
  report('kubelet restarts (sockets deleted) → device list back', await measure(false));
  report('kubelet restarts keeping the plugin socket → device list back', await measure(true));
} finally {
  plugin.kill('SIGTERM');
  await exited;
  await kubelet.stop();
  await node.remove();
}
