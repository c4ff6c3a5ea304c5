/**
 * The demo transcript: the plugin on a simulated GPU node (mock NVML through the real koffi binding,
 * the kubelet simulator, a ConfigMap volume updated the way kubelet does it), narrated for a newcomer.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigSource } from '../config/source.js';
import { formatInventory } from '../devices/format-inventory.js';
import type { Inventory } from '../devices/inventory-types.js';
import { PluginAgent } from '../plugin/agent.js';
import { describeEnforcement, detectHamiCore } from '../plugin/hami-core-host.js';
import { followConfigUpdates, nodeValidator } from '../plugin/live-config.js';
import { ConfigMapVolume } from './configmap-volume.js';
import { KubeletSimulator, type ResourceState } from './kubelet.js';
import { MockNode } from './mock-node.js';

export interface DemoOptions {
  node: string;
  /** seconds to keep running at the end; 0 = until SIGINT/SIGTERM */
  durationSeconds: number;
  out: NodeJS.WritableStream;
  logger: Logger;
  agentVersion: string;
}

const EXCLUSIVE = 'version: v1\n';
const TIME_SLICED = `version: v1
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/gpu
        replicas: 4
`;
const splitConfig = (hookPath: string) => `version: v1
sharing:
  split:
    hookPath: ${hookPath}
    resources:
      - name: nvidia.com/gpu
        count: 2
`;

export async function runDemo(options: DemoOptions): Promise<void> {
  const say = (line = '') => options.out.write(`${line}\n`);
  const node = await MockNode.create(options.node);
  node.exportEnv();
  const pluginDir = path.join(node.dir, 'device-plugins');
  await mkdir(pluginDir, { recursive: true });
  const configMap = await ConfigMapVolume.create({ default: EXCLUSIVE }, path.join(node.dir, 'config'));
  const kubelet = await KubeletSimulator.start({ dir: pluginDir });
  let agent: PluginAgent | undefined;
  let source: ConfigSource | undefined;
  try {
    say(`vgpu-agent demo: the device plugin on a simulated "${options.node}" node (no GPU needed)`);
    say(`  mock NVML state ${node.statePath}`);
    say(`  kubelet simulator on ${path.join(pluginDir, 'kubelet.sock')}`);
    say();

    const forThisNode = nodeValidator();
    source = await ConfigSource.open({
      path: configMap.dir,
      logger: options.logger,
      debounceMs: 100,
      validate: forThisNode.validate,
    });
    agent = await PluginAgent.start({
      config: source.current.config,
      logger: options.logger,
      nvmlLibrary: node.libraryPath,
      hostPaths: node.hostPaths,
      pluginDir,
      metricsAddress: null,
      env: {},
      agentVersion: options.agentVersion,
      tuning: { healthProbeIntervalMs: 500 },
    });
    forThisNode.bind(agent);
    followConfigUpdates(source, agent, options.logger);

    say('1. What NVML reports (through koffi):');
    for (const line of formatInventory(agent.inventory).split('\n')) say(`   ${line.trim()}`);
    say();

    const state = await kubelet.waitFor(allServing(agent), { timeoutMs: 10_000 });
    say('2. The plugin registered with kubelet; kubelet sees (config "default": whole GPUs):');
    for (const line of describeResources(state)) say(`   ${line}`);
    say();

    const gpuName = (id: string) => describeDevice(agent!.inventory, id);
    say('3. Pods ask for GPUs: kubelet calls GetPreferredAllocation, then Allocate for each container:');
    const resource = [...state.keys()][0]!;
    for (const [pod, count] of [
      ['train-a', 2],
      ['infer-b', 1],
    ] as const) {
      const { deviceIds, response } = await kubelet.allocate(resource, count);
      say(`   pod ${pod}: ${count} × ${resource} → ${deviceIds.map(gpuName).join(', ')}`);
      for (const [key, value] of Object.entries(response.envs ?? {})) say(`     env ${key}=${value}`);
    }
    say();

    const victim = agent.inventory.gpus.at(-1)!;
    say(`4. The driver reports Xid 79 (GPU has fallen off the bus) on GPU ${victim.index}:`);
    await node.injectEvent({ uuid: victim.uuid, xid: 79 });
    const afterXid = await kubelet.waitFor((s) =>
      [...s.values()].some((r) => r.devices.some((d) => d.health === 'Unhealthy')),
    );
    for (const line of describeResources(afterXid)) say(`   ${line}`);
    say('   (it turns Healthy again after health.recoverAfterSeconds once NVML answers for it)');
    say();

    say('5. The ConfigMap is edited to time-slice every GPU 4 ways. No restart: the plugin reloads it.');
    const started = performance.now();
    await configMap.write({ default: TIME_SLICED });
    const sliced = await kubelet.waitFor(
      (s) => (s.get('nvidia.com/gpu')?.devices.length ?? 0) === agent!.inventory.gpus.length * 4,
    );
    say(`   kubelet saw the new list ${Math.round(performance.now() - started)} ms after the update:`);
    for (const line of describeResources(sliced)) say(`   ${line}`);
    const shared = await kubelet.allocate('nvidia.com/gpu', 1);
    say(`   pod notebook-c: 1 × nvidia.com/gpu → ${shared.deviceIds.join(', ')}`);
    for (const [key, value] of Object.entries(shared.response.envs ?? {})) say(`     env ${key}=${value}`);
    say();

    say('6. Edited again: split each GPU in 2 slices, each with half its memory and SMs (HAMi-core limits):');
    await configMap.write({ default: splitConfig(path.join(node.dir, 'hami-core')) });
    const split = await kubelet.waitFor(
      (s) => (s.get('nvidia.com/gpu')?.devices.length ?? 0) === agent!.inventory.gpus.length * 2,
    );
    for (const line of describeResources(split)) say(`   ${line}`);
    const sliceAllocation = await kubelet.allocate('nvidia.com/gpu', 1);
    say(`   pod llm-d: 1 × nvidia.com/gpu → ${sliceAllocation.deviceIds.join(', ')}`);
    for (const [key, value] of Object.entries(sliceAllocation.response.envs ?? {}))
      say(`     env ${key}=${value}`);
    const hamiCore = await detectHamiCore(path.join(node.dir, 'hami-core'));
    say(`   (${describeEnforcement(hamiCore)}: see vgpu_agent_split_limits_enforced and the agent's log)`);
    say();

    say('7. A broken edit (replicas: 1) is rejected; the last good config keeps being served:');
    const rejection = new Promise<string[]>((resolve) =>
      source!.once('invalid', ({ issues }) => resolve(issues)),
    );
    await configMap.write({ default: TIME_SLICED.replace('replicas: 4', 'replicas: 1') });
    const rejected = await rejection;
    for (const issue of rejected) say(`   ${issue}`);
    say();

    if (options.durationSeconds > 0) {
      say(`Running for ${options.durationSeconds} s more.`);
      await new Promise((resolve) => setTimeout(resolve, options.durationSeconds * 1000));
    } else {
      say('The agent keeps running on the simulated node. Ctrl+C to stop (or pass --duration <seconds>).');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
    say('Stopping: sockets removed, temp files deleted.');
  } finally {
    await source?.close();
    await agent?.stop();
    await kubelet.stop();
    await configMap.remove();
    await node.remove();
  }
}

function allServing(agent: PluginAgent) {
  return (s: Map<string, ResourceState>) =>
    agent.manager
      .resourceNames()
      .every((name) => (s.get(name)?.devices.length ?? 0) > 0 && s.get(name)!.connected);
}

function describeResources(state: Map<string, ResourceState>): string[] {
  return [...state.values()].map((r) => {
    const unhealthy = r.devices.filter((d) => d.health !== 'Healthy');
    return (
      `${r.resourceName.padEnd(26)} ${String(r.devices.length).padStart(3)} devices, ${r.devices.length - unhealthy.length} healthy` +
      (unhealthy.length ? `  (Unhealthy: ${summarise(unhealthy.map((d) => d.ID))})` : '')
    );
  });
}

function summarise(ids: string[]): string {
  return ids.length <= 2 ? ids.join(', ') : `${ids[0]} and ${ids.length - 1} more`;
}

function describeDevice(inventory: Inventory, id: string): string {
  const gpu = inventory.gpus.find((g) => g.uuid === id.split('::')[0]);
  return gpu ? `GPU ${gpu.index}` : id;
}
