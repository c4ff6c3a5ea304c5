/** Xid events and lost GPUs → Unhealthy devices (fanned out to everything derived from the GPU) → recovery. */
import { describe, expect, it } from 'vitest';
import type { KubeletSimulator, KubeletState } from '../../src/sim/kubelet.js';
import { metricValue, usePluginNodes } from '../helpers/plugin-node.js';

const start = usePluginNodes();

type Devices = { ID: string; health: string }[];
const devicesOf = (kubelet: KubeletSimulator, name: string): Devices => kubelet.resource(name)?.devices ?? [];
const health = (devices: Devices) => Object.fromEntries(devices.map((d) => [d.ID, d.health]));
const GPU = 'nvidia.com/gpu';

describe('health', () => {
  it('an Xid marks every replica of that GPU Unhealthy at once, and it recovers after recoverAfterSeconds', async () => {
    const pluginNode = await start('dgx-a100', {
      config: `
sharing:
  timeSlicing:
    resources: [{name: nvidia.com/gpu, replicas: 4}]
health:
  recoverAfterSeconds: 1
`,
    });
    const { kubelet, node } = pluginNode;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    const victim = node.state.devices[3]!.uuid;
    await node.injectEvent({ uuid: victim, xid: 48 });
    await kubelet.waitFor((s) => s.get(GPU)!.devices.filter((d) => d.health === 'Unhealthy').length === 4);
    const after = health(devicesOf(kubelet, GPU));
    for (let n = 0; n < 4; n++) expect(after[`${victim}::${n}`]).toBe('Unhealthy');
    expect(Object.values(after).filter((h) => h === 'Healthy')).toHaveLength(28);
    expect(
      await metricValue(pluginNode, /^vgpu_agent_health_events_total\{xid="48",action="unhealthy"\}/),
    ).toBe(1);
    expect(
      pluginNode.logs.some((l) => l.msg === 'device marked Unhealthy' && l.device === victim && l.xid === 48),
    ).toBe(true);

    // NVML answers for the GPU again: after recoverAfterSeconds it is Healthy again.
    await kubelet.waitFor((s) => s.get(GPU)!.devices.every((d) => d.health === 'Healthy'), {
      timeoutMs: 5000,
    });
    expect(pluginNode.logs.some((l) => l.msg === 'device recovered: Healthy' && l.device === victim)).toBe(
      true,
    );
  });

  it('ignores every default application Xid (13, 31, 43, 45, 68, 109) and counts each', async () => {
    const pluginNode = await start('single-t4');
    const { kubelet, node } = pluginNode;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    const uuid = node.state.devices[0]!.uuid;
    const ignored = [13, 31, 43, 45, 68, 109];
    for (const xid of ignored) await node.injectEvent({ uuid, xid });
    const counted = (xid: number, action: string) =>
      metricValue(
        pluginNode,
        new RegExp(`^vgpu_agent_health_events_total\\{xid="${xid}",action="${action}"\\}`),
      );
    for (const xid of ignored) await expect.poll(() => counted(xid, 'ignored')).toBe(1);
    expect(devicesOf(kubelet, GPU)[0]!.health).toBe('Healthy');
    // Events arrive in order: a device Xid after them is acted on, so none of the above was lost.
    await node.injectEvent({ uuid, xid: 48 });
    await kubelet.waitFor((s) => s.get(GPU)!.devices[0]!.health === 'Unhealthy', { timeoutMs: 10_000 });
    for (const xid of ignored) expect(await counted(xid, 'unhealthy')).toBeUndefined();
    expect(pluginNode.logs.filter((l) => l.msg === 'device marked Unhealthy').map((l) => l.xid)).toEqual([
      48,
    ]);
  });

  it('DP_DISABLE_HEALTHCHECKS=all turns Xid checks off', async () => {
    const pluginNode = await start('single-t4', { env: { DP_DISABLE_HEALTHCHECKS: 'all' } });
    const { kubelet, node } = pluginNode;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    await node.injectEvent({ uuid: node.state.devices[0]!.uuid, xid: 48 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(devicesOf(kubelet, GPU)[0]!.health).toBe('Healthy');
  });

  it('an Xid on a MIG GPU marks all its MIG devices; one naming a GI/CI marks only that MIG device', async () => {
    const { kubelet, node } = await start('mixed-mig', { config: 'flags: {migStrategy: mixed}' });
    const parent = node.state.devices[0]!;
    const migs = parent.migDevices!;
    const names = [...new Set(migs.map((m) => `nvidia.com/mig-${m.profile}`))];
    await kubelet.waitFor((s) => names.every((n) => (s.get(n)?.devices.length ?? 0) > 0));
    const migHealth = () => Object.assign({}, ...names.map((n) => health(devicesOf(kubelet, n))));

    await node.injectEvent({ uuid: parent.uuid, xid: 94, giId: migs[1]!.giId, ciId: migs[1]!.ciId });
    await expect.poll(migHealth).toEqual({
      [migs[0]!.uuid]: 'Healthy',
      [migs[1]!.uuid]: 'Unhealthy',
      [migs[2]!.uuid]: 'Healthy',
    });

    await node.injectEvent({ uuid: parent.uuid, xid: 79 });
    await expect.poll(migHealth).toEqual(Object.fromEntries(migs.map((m) => [m.uuid, 'Unhealthy'])));
    expect(devicesOf(kubelet, GPU).map((d) => d.health)).toEqual(['Healthy']);
  });

  it('probes treat only device failures as Unhealthy, not a query the GPU does not support', async () => {
    const { kubelet, node } = await start('dgx-a100');
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 8);
    const [unsupported, broken] = [node.state.devices[2]!.uuid, node.state.devices[6]!.uuid];
    await node.update((state) => {
      state.devices[2]!.failures = { nvmlDeviceGetMemoryInfo: 'NOT_SUPPORTED' };
      state.devices[6]!.failures = { nvmlDeviceGetMemoryInfo: 'RESET_REQUIRED' };
    });
    await kubelet.waitFor((s) => s.get(GPU)!.devices.some((d) => d.health === 'Unhealthy'));
    // Several more probe rounds (100 ms apart in tests): the NOT_SUPPORTED GPU stays Healthy.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const now = health(devicesOf(kubelet, GPU));
    expect(now[broken]).toBe('Unhealthy');
    expect(now[unsupported]).toBe('Healthy');
  });

  it('a lost GPU leaves the shared event set: the Xid of another GPU still reaches kubelet, and the lost one is watched again once it answers', async () => {
    const pluginNode = await start('dgx-a100', { config: 'health: {recoverAfterSeconds: 1}' });
    const { kubelet, node } = pluginNode;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 8);
    const [gpu3, gpu7] = [node.state.devices[3]!.uuid, node.state.devices[7]!.uuid];
    const healthOf = (uuid: string) => (s: KubeletState) =>
      s.get(GPU)!.devices.find((d) => d.ID === uuid)!.health;

    await node.setLost(gpu7, true);
    await kubelet.waitFor((s) => healthOf(gpu7)(s) === 'Unhealthy');
    // With GPU 7 in the set every wait fails at once with GPU_IS_LOST: GPU 3's Xid would never arrive.
    await node.injectEvent({ uuid: gpu3, xid: 48 });
    await kubelet.waitFor((s) => healthOf(gpu3)(s) === 'Unhealthy', { timeoutMs: 10_000 });
    expect(node.state.devices[7]!.lost).toBe(true);
    expect(
      pluginNode.logs
        .filter((l) => l.msg === 'GPU taken out of the event set; probing it on its own')
        .map((l) => l.gpu),
    ).toEqual([gpu7]);

    // GPU 7 answers again: back in the set, so an Xid on it is acted on (after it recovered).
    await node.setLost(gpu7, false);
    await expect
      .poll(() => pluginNode.logs.some((l) => l.msg === 'GPU back in the event set' && l.gpu === gpu7), {
        timeout: 10_000,
      })
      .toBe(true);
    await kubelet.waitFor((s) => healthOf(gpu7)(s) === 'Healthy', { timeoutMs: 10_000 });
    await node.injectEvent({ uuid: gpu7, xid: 48 });
    await kubelet.waitFor((s) => healthOf(gpu7)(s) === 'Unhealthy', { timeoutMs: 10_000 });
    expect(
      pluginNode.logs.some((l) => l.msg === 'device marked Unhealthy' && l.device === gpu7 && l.xid === 48),
    ).toBe(true);
  });

  it('a lost GPU turns Unhealthy without an event, the rest are unaffected, and it recovers once NVML answers', async () => {
    const { kubelet, node } = await start('dgx-a100', { config: 'health: {recoverAfterSeconds: 1}' });
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 8);
    const lost = node.state.devices[5]!.uuid;
    await node.setLost(lost, true);
    await kubelet.waitFor((s) => s.get(GPU)!.devices.some((d) => d.health === 'Unhealthy'));
    expect(
      devicesOf(kubelet, GPU)
        .filter((d) => d.health === 'Unhealthy')
        .map((d) => d.ID),
    ).toEqual([lost]);
    await node.setLost(lost, false);
    await kubelet.waitFor((s) => s.get(GPU)!.devices.every((d) => d.health === 'Healthy'), {
      timeoutMs: 5000,
    });
  });
});
