/**
 * How long a ConfigMap edit takes to reach kubelet: the plugin process (dist/cli/main.js) on the
 * simulated 8×A100 node follows a ConfigMap volume that is updated the way kubelet's AtomicWriter does
 * (one rename of `..data`); the time is taken from the start of each update to the moment the kubelet
 * simulator holds the new device list. Run `npm run build` first, then `node bench/config-reload-latency.mjs [swaps]`.
 * A measurement, not a test: nothing here asserts a limit.
 */
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { mockNvmlLibraryPath, packageRoot } from '../dist/paths.js';
import { ConfigMapVolume } from '../dist/sim/configmap-volume.js';
import { KubeletSimulator } from '../dist/sim/kubelet.js';
import { MockNode } from '../dist/sim/mock-node.js';

const SWAPS = Number(process.argv[2] ?? 20);
const GPUS = 8;
const timeSliced = (replicas) =>
  `version: v1\nsharing:\n  timeSlicing:\n    resources:\n      - name: nvidia.com/gpu\n        replicas: ${replicas}\n`;
const deviceCount = (replicas) => (state) => state.get('nvidia.com/gpu')?.devices.length === GPUS * replicas;

const node = await MockNode.create('dgx-a100');
const pluginDir = path.join(node.dir, 'device-plugins');
await mkdir(pluginDir, { recursive: true });
const kubelet = await KubeletSimulator.start({ dir: pluginDir });
const volume = await ConfigMapVolume.create({ default: timeSliced(2) }, path.join(node.dir, 'config'));
const cli = path.join(packageRoot(), 'dist/cli/main.js');
const plugin = spawn(
  process.execPath,
  [cli, 'plugin', '--config', volume.dir, '--device-plugin-dir', pluginDir, '--metrics-address', ''],
  {
    env: { PATH: process.env.PATH, MOCK_NVML_STATE: node.statePath, NVML_LIBRARY: mockNvmlLibraryPath() },
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);
const exited = new Promise((resolve) => plugin.on('exit', resolve));

try {
  await kubelet.waitFor(deviceCount(2), { timeoutMs: 20_000 });
  const times = [];
  for (let i = 0; i < SWAPS; i++) {
    const replicas = 3 + (i % 2);
    await sleep(400); // let the previous update settle, so every swap is measured on its own
    const started = performance.now();
    await volume.write({ default: timeSliced(replicas) });
    await kubelet.waitFor(deviceCount(replicas), { timeoutMs: 10_000 });
    times.push(performance.now() - started);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median =
    (sorted[Math.floor((sorted.length - 1) / 2)] + sorted[Math.ceil((sorted.length - 1) / 2)]) / 2;
  const ms = (t) => `${t.toFixed(1)} ms`;
  console.log(
    `${SWAPS} ConfigMap swaps → kubelet device list: median ${ms(median)}, best ${ms(sorted[0])}, worst ${ms(sorted.at(-1))}`,
  );
  console.log(`all: ${times.map((t) => t.toFixed(0)).join(' ')}`);
} finally {
  plugin.kill('SIGTERM');
  await exited;
  await kubelet.stop();
  await volume.remove();
  await node.remove();
}
