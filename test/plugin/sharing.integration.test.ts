/**
 * Sharing configs end to end on the mock NVML (koffi, kubelet simulator, real sockets), where
 * test/devices/resources.test.ts checks them on plain inventories: time-slicing of MIG devices, and
 * renamed time-sliced and split resources next to the GPUs left whole, with Allocate and health
 * following each device to its own GPU or MIG device.
 */
import { describe, expect, it } from 'vitest';
import type { KubeletState } from '../../src/sim/kubelet.js';
import { usePluginNodes } from '../helpers/plugin-node.js';

const start = usePluginNodes();
const GPU = 'nvidia.com/gpu';

const idsOf = (state: KubeletState, name: string) => state.get(name)?.devices.map((d) => d.ID) ?? [];
const unhealthyOf = (state: KubeletState, name: string) =>
  state
    .get(name)
    ?.devices.filter((d) => d.health === 'Unhealthy')
    .map((d) => d.ID) ?? [];
const replicas = (uuid: string, count: number) => Array.from({ length: count }, (_, n) => `${uuid}::${n}`);

describe('time-slicing MIG devices (migStrategy mixed)', () => {
  it('replicates one profile, leaves the others whole, and maps each replica to its MIG device', async () => {
    const { kubelet, node } = await start('mixed-mig', {
      config: `
flags: {migStrategy: mixed, plugin: {deviceIDStrategy: index}}
sharing: {timeSlicing: {resources: [{name: nvidia.com/mig-2g.10gb, replicas: 3}]}}
`,
    });
    const [migGpu, plainGpu] = node.state.devices;
    const [mig3g, mig2gFirst, mig2gSecond] = migGpu!.migDevices!;
    const state = await kubelet.waitFor(
      (s) =>
        idsOf(s, 'nvidia.com/mig-2g.10gb').length === 6 &&
        idsOf(s, 'nvidia.com/mig-3g.20gb').length === 1 &&
        idsOf(s, GPU).length === 1,
    );
    expect(idsOf(state, 'nvidia.com/mig-2g.10gb')).toEqual([
      ...replicas(mig2gFirst!.uuid, 3),
      ...replicas(mig2gSecond!.uuid, 3),
    ]);
    expect(idsOf(state, 'nvidia.com/mig-3g.20gb')).toEqual([mig3g!.uuid]);
    expect(idsOf(state, GPU)).toEqual([plainGpu!.uuid]);

    // Two replicas for one container land on one MIG device, named once by its index.
    const { deviceIds, response } = await kubelet.allocate('nvidia.com/mig-2g.10gb', 2);
    expect(new Set(deviceIds.map((id) => id.split('::')[0])).size).toBe(1);
    const migIndex = deviceIds[0]!.startsWith(mig2gFirst!.uuid) ? '0:1' : '0:2';
    expect(response.envs).toEqual({ NVIDIA_VISIBLE_DEVICES: migIndex });
  });

  it('an Xid naming one MIG instance marks only its replicas; one on the GPU marks every MIG device', async () => {
    const { kubelet, node } = await start('mixed-mig', {
      config: `
flags: {migStrategy: mixed}
sharing: {timeSlicing: {resources: [{name: nvidia.com/mig-2g.10gb, replicas: 2}]}}
`,
    });
    const migGpu = node.state.devices[0]!;
    const [mig3g, mig2gFirst, mig2gSecond] = migGpu.migDevices!;
    await kubelet.waitFor(
      (s) =>
        idsOf(s, 'nvidia.com/mig-2g.10gb').length === 4 && idsOf(s, 'nvidia.com/mig-3g.20gb').length === 1,
    );

    await node.injectEvent({ uuid: migGpu.uuid, xid: 94, giId: mig2gSecond!.giId, ciId: mig2gSecond!.ciId });
    await kubelet.waitFor((s) => unhealthyOf(s, 'nvidia.com/mig-2g.10gb').length > 0, { timeoutMs: 10_000 });
    let state = kubelet.resources();
    expect(unhealthyOf(state, 'nvidia.com/mig-2g.10gb')).toEqual(replicas(mig2gSecond!.uuid, 2));
    expect(unhealthyOf(state, 'nvidia.com/mig-3g.20gb')).toEqual([]);
    await expect(kubelet.allocateIds('nvidia.com/mig-2g.10gb', [`${mig2gSecond!.uuid}::0`])).rejects.toThrow(
      /FAILED_PRECONDITION/,
    );

    await node.injectEvent({ uuid: migGpu.uuid, xid: 79 });
    state = await kubelet.waitFor((s) => unhealthyOf(s, 'nvidia.com/mig-3g.20gb').length === 1, {
      timeoutMs: 10_000,
    });
    expect(unhealthyOf(state, 'nvidia.com/mig-2g.10gb')).toEqual([
      ...replicas(mig2gFirst!.uuid, 2),
      ...replicas(mig2gSecond!.uuid, 2),
    ]);
    expect(unhealthyOf(state, 'nvidia.com/mig-3g.20gb')).toEqual([mig3g!.uuid]);
    expect(unhealthyOf(state, GPU)).toEqual([]);
  });
});

describe('renamed resources', () => {
  it('a time-sliced rename of two GPUs next to the six left whole, each allocated from its own GPUs', async () => {
    const { kubelet, node } = await start('dgx-a100', {
      config:
        'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, rename: nvidia.com/gpu.shared, devices: [0, 1], replicas: 2}]}}',
    });
    const gpus = node.state.devices.map((d) => d.uuid);
    const state = await kubelet.waitFor(
      (s) => idsOf(s, 'nvidia.com/gpu.shared').length === 4 && idsOf(s, GPU).length === 6,
    );
    expect(idsOf(state, 'nvidia.com/gpu.shared')).toEqual([
      ...replicas(gpus[0]!, 2),
      ...replicas(gpus[1]!, 2),
    ]);
    expect(idsOf(state, GPU)).toEqual(gpus.slice(2));

    const shared = await kubelet.allocate('nvidia.com/gpu.shared', 1);
    expect([gpus[0], gpus[1]]).toContain(shared.response.envs!.NVIDIA_VISIBLE_DEVICES);
    const whole = await kubelet.allocate(GPU, 2);
    expect(gpus.slice(2)).toEqual(expect.arrayContaining(whole.deviceIds));

    // Health follows the GPU into the renamed resource, and no further.
    await node.injectEvent({ uuid: gpus[1]!, xid: 48 });
    const after = await kubelet.waitFor((s) => unhealthyOf(s, 'nvidia.com/gpu.shared').length === 2, {
      timeoutMs: 10_000,
    });
    expect(unhealthyOf(after, 'nvidia.com/gpu.shared')).toEqual(replicas(gpus[1]!, 2));
    expect(unhealthyOf(after, GPU)).toEqual([]);
  });

  it('a split rename of one GPU: its slices carry HAMi-core limits, the GPUs left whole none', async () => {
    const { kubelet, node } = await start('dgx-a100', {
      config:
        'sharing: {split: {resources: [{name: nvidia.com/gpu, rename: nvidia.com/gpu.slice, devices: [2], count: 4}]}}',
    });
    const gpus = node.state.devices.map((d) => d.uuid);
    const state = await kubelet.waitFor(
      (s) => idsOf(s, 'nvidia.com/gpu.slice').length === 4 && idsOf(s, GPU).length === 7,
    );
    expect(idsOf(state, 'nvidia.com/gpu.slice')).toEqual(replicas(gpus[2]!, 4));
    expect(idsOf(state, GPU)).toEqual(gpus.filter((_, i) => i !== 2));

    const slice = await kubelet.allocate('nvidia.com/gpu.slice', 1);
    expect(slice.response.envs).toMatchObject({
      NVIDIA_VISIBLE_DEVICES: gpus[2],
      CUDA_DEVICE_MEMORY_LIMIT_0: '20480m',
      CUDA_DEVICE_SM_LIMIT: '25',
    });
    const whole = await kubelet.allocate(GPU, 1);
    expect(whole.response.envs).toEqual({ NVIDIA_VISIBLE_DEVICES: whole.deviceIds[0] });
  });

  it('renameByDefault: every time-sliced resource is advertised as <name>.shared', async () => {
    const { kubelet, node } = await start('single-t4', {
      config:
        'sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 3}]}}',
    });
    const state = await kubelet.waitFor((s) => idsOf(s, 'nvidia.com/gpu.shared').length === 3);
    expect(idsOf(state, 'nvidia.com/gpu.shared')).toEqual(replicas(node.state.devices[0]!.uuid, 3));
    expect(state.has(GPU)).toBe(false);
    expect(state.get('nvidia.com/gpu.shared')!.endpoint).toBe('vgpu-gpu.shared.sock');
  });
});
