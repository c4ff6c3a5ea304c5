/**
 * A rig: one plugin process (the agent's `plugin` command, or the bare floor plugin) on its own
 * simulated node (mock NVML state, host /sys and /proc) with its own kubelet simulator, over real
 * Unix sockets. Rigs run side by side so a suite can interleave the agent and its floor.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { mockNvmlLibraryPath } from '../../dist/paths.js';
import { ConfigMapVolume } from '../../dist/sim/configmap-volume.js';
import { KubeletSimulator } from '../../dist/sim/kubelet.js';
import { MockNode } from '../../dist/sim/mock-node.js';
import { DevicePluginClient, grpc, unixTarget } from './device-plugin-proto.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const AGENT_CLI = path.join(root, 'dist/cli/main.js');
export const BARE_PLUGIN = path.join(root, 'bench/floors/bare-plugin.mjs');
const PROBE = path.join(root, 'bench/lib/memory-probe.mjs');
export const RESOURCE = 'nvidia.com/gpu';
const AGENT_SOCKET = 'vgpu-gpu.sock';
const FLOOR_SOCKET = 'bare.sock';

/** The environment a plugin gets: the mock NVML, nothing else from ours. */
function pluginEnv(node, probeFile) {
  return {
    PATH: process.env.PATH,
    MOCK_NVML_STATE: node.statePath,
    NVML_LIBRARY: mockNvmlLibraryPath(),
    ...(probeFile ? { BENCH_PROBE_FILE: probeFile } : {}),
  };
}

/** Arguments of the agent's plugin command on `node`, serving into `pluginDir` (`cli`: another build). */
export function agentArgs(node, pluginDir, configDir, cli = AGENT_CLI) {
  const args = [cli, 'plugin', '--device-plugin-dir', pluginDir, '--metrics-address', ''];
  args.push('--host-sys', node.hostPaths.sysfsRoot, '--host-proc', node.hostPaths.procRoot);
  if (configDir) args.push('--config', configDir);
  return args;
}

/** Arguments of the floor plugin; `uuids` are the devices it lists unless it reads them from NVML. */
export function floorArgs(pluginDir, uuids, features = {}) {
  const args = [BARE_PLUGIN, '--dir', pluginDir, '--socket', FLOOR_SOCKET, '--devices', uuids.join(',')];
  if (features.configDir) args.push('--watch-config', features.configDir);
  if (features.nvml) args.push('--nvml', mockNvmlLibraryPath());
  if (features.watchKubelet) args.push('--watch-kubelet');
  return args;
}

/** Spawns `node [flags] args`; `probe` preloads the memory probe. */
export function spawnPlugin(args, env, probe, nodeFlags = []) {
  const argv = [...nodeFlags, ...(probe ? ['--import', PROBE] : []), ...args];
  const child = spawn(process.execPath, argv, { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited };
}

/** SIGTERM, then SIGKILL after 5 s. */
export async function stopProcess({ child, exited }) {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts a rig and waits until kubelet lists the plugin's devices.
 * kind: 'agent' | 'floor'; options: { node: 'dgx-a100', config (YAML of a ConfigMap key 'default'),
 * nvml, watchKubelet (floor features), probe (preload the memory probe), nodeFlags, env (added to the
 * plugin's), cli (the agent's entry point, default dist/cli/main.js) }.
 */
export async function startRig(kind, options = {}) {
  const node = await MockNode.create(options.node ?? 'dgx-a100');
  const pluginDir = path.join(node.dir, 'device-plugins');
  await mkdir(pluginDir, { recursive: true });
  const kubelet = await KubeletSimulator.start({ dir: pluginDir });
  const configMap = options.config
    ? await ConfigMapVolume.create({ default: options.config }, path.join(node.dir, 'config'))
    : undefined;
  const uuids = node.state.devices.map((d) => d.uuid);
  const probeFile = options.probe ? path.join(node.dir, 'probe') : undefined;
  const args =
    kind === 'agent'
      ? agentArgs(node, pluginDir, configMap?.dir, options.cli)
      : floorArgs(pluginDir, uuids, {
          configDir: configMap?.dir,
          nvml: options.nvml,
          watchKubelet: options.watchKubelet,
        });
  const env = { ...pluginEnv(node, probeFile), ...options.env };
  const proc = spawnPlugin(args, env, options.probe, options.nodeFlags);
  const socketPath = path.join(pluginDir, kind === 'agent' ? AGENT_SOCKET : FLOOR_SOCKET);
  const rig = {
    kind,
    node,
    kubelet,
    configMap,
    uuids,
    pluginDir,
    socketPath,
    proc,
    probes: 0,
    client: undefined,
    /** Memory and CPU of the plugin process, read by its preloaded probe. */
    async probe() {
      const file = `${probeFile}.${++rig.probes}`;
      proc.child.kill('SIGUSR2');
      for (let i = 0; i < 500 && !existsSync(file); i++) await sleep(10);
      return JSON.parse(await readFile(file, 'utf8'));
    },
    /** A kubelet-side client of the plugin's socket, on its own connection. */
    connect() {
      rig.client ??= new DevicePluginClient(unixTarget(socketPath), grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      });
      return rig.client;
    },
    async stop() {
      rig.client?.close();
      await stopProcess(proc);
      await kubelet.stop();
      await node.remove();
    },
  };
  const expected = options.expectDevices ?? uuids.length;
  await kubelet.waitFor(
    (s) => s.get(RESOURCE)?.connected === true && s.get(RESOURCE).devices.length === expected,
    {
      timeoutMs: 30_000,
      description: `${kind} plugin listing ${expected} devices`,
    },
  );
  return rig;
}

/** Starts both rigs of a comparison; stops what started if the other fails. */
export async function startPair(agentOptions, floorOptions) {
  const agent = await startRig('agent', agentOptions);
  try {
    return { agent, floor: await startRig('floor', floorOptions) };
  } catch (err) {
    await agent.stop();
    throw err;
  }
}
