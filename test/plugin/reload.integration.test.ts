/**
 * Live reload: the ConfigMap volume is updated exactly as kubelet's AtomicWriter does it, and the
 * kubelet simulator's ListAndWatch must see the change within 1 s, with no restart.
 */
import { describe, expect, it } from 'vitest';
import { metricLine, type PluginNode, usePluginNodes } from '../helpers/plugin-node.js';

const startNode = usePluginNodes();
const GPU = 'nvidia.com/gpu';
const replicas = (n: number, extra = '') => `
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/gpu
        replicas: ${n}${extra}
`;

async function start(configMap: Record<string, string>) {
  const node = await startNode('dgx-a100', { configMap });
  return node as typeof node & { configMap: NonNullable<PluginNode['configMap']> };
}

describe('live config reload', () => {
  it('a changed replica count reaches ListAndWatch without a restart, IDs of devices that remain are unchanged', async () => {
    const pluginNode = await start({ default: replicas(2) });
    const { kubelet, configMap } = pluginNode;
    const before = await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 16);
    const registrations = before.get(GPU)!.registrations;

    // How fast: bench/config-reload-latency.mjs.
    await configMap.write({ default: replicas(4) });
    const after = await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32, { timeoutMs: 10_000 });

    // The same resource stayed registered: no restart, no re-registration.
    expect(after.get(GPU)!.registrations).toBe(registrations);
    const oldIds = before.get(GPU)!.devices.map((d) => d.ID);
    const newIds = after.get(GPU)!.devices.map((d) => d.ID);
    expect(newIds).toEqual(expect.arrayContaining(oldIds));
    expect(await metricLine(pluginNode, /^vgpu_agent_config_reloads_total\{result="applied"\}/)).toMatch(
      / 1$/,
    );
    expect(await metricLine(pluginNode, /^vgpu_agent_config_info\{/)).toMatch(
      /name="default",hash="[0-9a-f]{12}"} 1$/,
    );
    expect(pluginNode.logs.some((l) => l.msg === 'config reloaded and applied')).toBe(true);
  });

  it('an invalid update leaves devices untouched, is counted, and a later fix applies', async () => {
    const pluginNode = await start({ default: replicas(2) });
    const { kubelet, configMap } = pluginNode;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 16);
    const hashBefore = await metricLine(pluginNode, /^vgpu_agent_config_info\{/);
    let updates = 0;
    kubelet.on('update', () => updates++);

    await configMap.write({ default: replicas(1) });
    await expect
      .poll(() => metricLine(pluginNode, /^vgpu_agent_config_reloads_total\{result="invalid"\}/))
      .toMatch(/ 1$/);
    expect(kubelet.resource(GPU)!.devices).toHaveLength(16);
    expect(updates).toBe(0);
    expect(await metricLine(pluginNode, /^vgpu_agent_config_info\{/)).toBe(hashBefore);
    const rejection = pluginNode.logs.find((l) =>
      String(l.msg).startsWith('config update rejected (1 problem); still serving default'),
    );
    expect(JSON.stringify(rejection?.issues)).toContain(
      'sharing.timeSlicing.resources[0].replicas: number of replicas must be >= 2',
    );

    await configMap.write({ default: replicas(3) });
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 24, { timeoutMs: 10_000 });
  });

  it('an update that cannot apply to this node (a GPU index it lacks) is rejected too', async () => {
    const pluginNode = await start({ default: replicas(2) });
    const { kubelet, configMap } = pluginNode;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 16);
    await configMap.write({
      default: 'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: [9]}]}}',
    });
    await expect
      .poll(() => metricLine(pluginNode, /^vgpu_agent_config_reloads_total\{result="invalid"\}/))
      .toMatch(/ 1$/);
    expect(
      pluginNode.logs.some((l) =>
        JSON.stringify(l.issues ?? []).includes(
          'does not apply to this node: sharing.timeSlicing.resources[0]: no matching device at index 9',
        ),
      ),
    ).toBe(true);
    expect(kubelet.resource(GPU)!.devices).toHaveLength(16);
  });

  it('an update whose device list kubelet could not receive is rejected naming resource, devices, size and limit', async () => {
    const pluginNode = await start({ default: replicas(2) });
    const { kubelet, configMap } = pluginNode;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 16);
    let updates = 0;
    kubelet.on('update', () => updates++);
    await configMap.write({ default: replicas(9000) });
    await expect
      .poll(() => metricLine(pluginNode, /^vgpu_agent_config_reloads_total\{result="invalid"\}/))
      .toMatch(/ 1$/);
    const rejection = pluginNode.logs.find((l) =>
      String(l.msg).startsWith('config update rejected (1 problem); still serving default'),
    );
    expect(JSON.stringify(rejection?.issues)).toContain(
      'does not apply to this node: sharing.timeSlicing.resources[0]: nvidia.com/gpu would have 72000 devices ' +
        '(8 × 9000 replicas), a ListAndWatch message of 4815120 bytes (4.59 MiB); at most 3670016 bytes (3.5 MiB)',
    );
    expect(kubelet.resource(GPU)!.devices).toHaveLength(16);
    expect(updates).toBe(0);
  });

  it('health settings follow a reload: a newly ignored Xid no longer marks a GPU, turning checks off clears marks', async () => {
    const pluginNode = await start({ default: 'version: v1' });
    const { kubelet, configMap, node } = pluginNode;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 8);
    const [first, second] = [node.state.devices[0]!.uuid, node.state.devices[1]!.uuid];
    await node.injectEvent({ uuid: first, xid: 48 });
    await kubelet.waitFor((s) => s.get(GPU)!.devices.filter((d) => d.health === 'Unhealthy').length === 1);

    await configMap.write({ default: 'health: {disabledXids: [13, 48]}' });
    await expect
      .poll(() => metricLine(pluginNode, /^vgpu_agent_config_reloads_total\{result="applied"\}/))
      .toMatch(/ 1$/);
    await node.injectEvent({ uuid: second, xid: 48 });
    await expect
      .poll(() => metricLine(pluginNode, /^vgpu_agent_health_events_total\{xid="48",action="ignored"\}/))
      .toMatch(/ 1$/);
    expect(kubelet.resource(GPU)!.devices.find((d) => d.ID === second)!.health).toBe('Healthy');

    await configMap.write({ default: 'health: {enabled: false}' });
    await kubelet.waitFor((s) => s.get(GPU)!.devices.every((d) => d.health === 'Healthy'), {
      timeoutMs: 10_000,
    });
  });

  it('a renamed resource starts its own server and the old one stops; an unchanged resource sees nothing', async () => {
    const pluginNode = await start({ default: replicas(2) });
    const { kubelet, configMap } = pluginNode;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 16);
    await configMap.write({ default: replicas(2, '\n        rename: nvidia.com/gpu.shared') });
    const state = await kubelet.waitFor(
      (s) => s.get('nvidia.com/gpu.shared')?.devices.length === 16 && s.get(GPU)?.connected === false,
      { timeoutMs: 10_000 },
    );
    expect(state.get('nvidia.com/gpu.shared')!.endpoint).toBe('vgpu-gpu.shared.sock');
    expect(pluginNode.agent.manager.resourceNames()).toEqual(['nvidia.com/gpu.shared']);

    // Same effective config written again: no reload, no ListAndWatch message.
    let updates = 0;
    kubelet.on('update', () => updates++);
    await configMap.write({
      default: `${replicas(2, '\n        rename: nvidia.com/gpu.shared')}\n# a comment changes nothing\n`,
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(updates).toBe(0);
  });
});
