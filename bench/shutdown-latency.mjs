/**
 * How long `vgpu-agent plugin` takes to exit on SIGTERM on the simulated single-T4 node: registered
 * with the kubelet simulator, and with a kubelet that accepts Register and never answers (the
 * Register in flight is cancelled, not waited out: its deadline is 5 s). Timed from the signal to the
 * process's exit. Run `npm run build` first, then `node bench/shutdown-latency.mjs [runs]`.
 * A measurement, not a test: nothing here asserts a limit.
 */
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { mockNvmlLibraryPath, packageRoot } from '../dist/paths.js';
import { KUBELET_SOCKET_NAME, registrationService, unixTarget } from '../dist/plugin/proto.js';
import { KubeletSimulator } from '../dist/sim/kubelet.js';
import { MockNode } from '../dist/sim/mock-node.js';

const RUNS = Number(process.argv[2] ?? 5);
const cli = path.join(packageRoot(), 'dist/cli/main.js');

/** A kubelet.sock whose Register never answers; `received` resolves on the first call. */
async function silentKubelet(dir) {
  const server = new grpc.Server();
  let onCall;
  const received = new Promise((resolve) => {
    onCall = resolve;
  });
  server.addService(registrationService, { Register: () => onCall() });
  await new Promise((resolve, reject) =>
    server.bindAsync(
      unixTarget(path.join(dir, KUBELET_SOCKET_NAME)),
      grpc.ServerCredentials.createInsecure(),
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  return { ready: () => received, stop: async () => server.forceShutdown() };
}

async function simulatedKubelet(dir) {
  const kubelet = await KubeletSimulator.start({ dir });
  return {
    ready: () => kubelet.waitFor((s) => s.get('nvidia.com/gpu')?.devices.length === 1, { timeoutMs: 20_000 }),
    stop: () => kubelet.stop(),
  };
}

/** One run: start the plugin next to `startKubelet`'s kubelet, wait until it is `ready`, time SIGTERM → exit. */
async function shutdownTime(startKubelet) {
  const node = await MockNode.create('single-t4');
  const pluginDir = path.join(node.dir, 'device-plugins');
  await mkdir(pluginDir, { recursive: true });
  const kubelet = await startKubelet(pluginDir);
  const plugin = spawn(
    process.execPath,
    [cli, 'plugin', '--device-plugin-dir', pluginDir, '--metrics-address', ''],
    {
      env: { PATH: process.env.PATH, MOCK_NVML_STATE: node.statePath, NVML_LIBRARY: mockNvmlLibraryPath() },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const exited = new Promise((resolve) => plugin.on('exit', resolve));
  try {
    await kubelet.ready();
    const started = performance.now();
    plugin.kill('SIGTERM');
    await exited;
    return performance.now() - started;
  } finally {
    if (plugin.exitCode === null && plugin.signalCode === null) plugin.kill('SIGKILL');
    await kubelet.stop();
    await node.remove();
  }
}

async function report(what, startKubelet) {
  const times = [];
  for (let i = 0; i < RUNS; i++) times.push(await shutdownTime(startKubelet));
  const ms = (t) => `${t.toFixed(0)} ms`;
  const sorted = [...times].sort((a, b) => a - b);
  console.log(`SIGTERM → exit, ${what}, ${RUNS} runs: best ${ms(sorted[0])}, worst ${ms(sorted.at(-1))}`);
}

await report('registered with kubelet', simulatedKubelet);
await report('Register in flight to a kubelet that never answers', silentKubelet);
