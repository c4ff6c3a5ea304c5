/**
 * The device plugin end to end: mock NVML through koffi, the kubelet simulator, real Unix sockets.
 */
import { describe, expect, it } from 'vitest';
import type { MockNvmlState } from '../../src/sim/mock-node.js';
import { fixtureNode } from '../helpers/fixture-nodes.js';
import { usePluginNodes } from '../helpers/plugin-node.js';

const start = usePluginNodes();

const GPU = 'nvidia.com/gpu';
const registered =
  (name: string, count?: number) => (s: Map<string, { connected: boolean; devices: unknown[] }>) =>
    s.get(name)?.connected === true && (count === undefined || s.get(name)!.devices.length === count);

/** Four GPUs: NVLink pairs (0,1) and (2,3), NUMA 0 for 0-1 and 1 for 2-3. */
function fourGpuState(): MockNvmlState {
  const gpu = (i: number, peer: number) => ({
    uuid: `GPU-${i}${i}${i}${i}${i}${i}${i}${i}-0000-0000-0000-000000000000`,
    name: 'NVIDIA H100 80GB HBM3',
    minor: i,
    pciBusId: `00000000:${(0x10 + i).toString(16).toUpperCase()}:00.0`,
    memoryTotalMiB: 81559,
    computeCapability: [9, 0] as [number, number],
    numaNode: i < 2 ? 0 : 1,
    pcieSwitch: i,
    nvlinkPeers: [peer, peer, peer, peer],
  });
  return {
    driverVersion: '580.95.05',
    cudaDriverVersion: 13000,
    devices: [gpu(0, 1), gpu(1, 0), gpu(2, 3), gpu(3, 2)],
  };
}
const uuid = (i: number) => `GPU-${String(i).repeat(8)}-0000-0000-0000-000000000000`;

describe('registration and ListAndWatch', () => {
  it('registers each resource and lists its devices with NUMA topology', async () => {
    const { kubelet, logs, node } = await start('dgx-a100');
    const state = await kubelet.waitFor(registered(GPU, 8));
    const devices = state.get(GPU)!.devices;
    expect(devices.map((d) => d.ID)).toEqual(node.state.devices.map((d) => d.uuid));
    expect(devices.every((d) => d.health === 'Healthy')).toBe(true);
    expect(devices.map((d) => d.topology?.nodes.map((n) => Number(n.ID)))).toEqual(
      node.state.devices.map((d) => [d.numaNode]),
    );
    expect(state.get(GPU)!.endpoint).toBe('vgpu-gpu.sock');
    expect(state.get(GPU)!.options.get_preferred_allocation_available).toBe(true);
    expect(logs.filter((l) => l.msg === 'registered with kubelet')).toHaveLength(1);
  });

  it('waits for kubelet when it is absent at start, then registers', async () => {
    const pluginNode = await start('single-t4', { kubeletAbsent: true });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(pluginNode.agent.manager.ready).toBe(false);
    const kubelet = await pluginNode.startKubelet();
    await kubelet.waitFor(registered(GPU, 1), { timeoutMs: 10_000 });
    expect(pluginNode.agent.manager.ready).toBe(true);
  });

  it('advertises MIG devices per profile with migStrategy mixed', async () => {
    const { kubelet, node } = await start('mixed-mig', { config: 'flags: {migStrategy: mixed}' });
    const migs = node.state.devices[0]!.migDevices!;
    const profiles = [...new Set(migs.map((m) => m.profile))];
    const state = await kubelet.waitFor(
      (s) =>
        registered(GPU, 1)(s) &&
        profiles.every((p) => (s.get(`nvidia.com/mig-${p}`)?.devices.length ?? 0) > 0),
    );
    for (const profile of profiles) {
      expect(
        state
          .get(`nvidia.com/mig-${profile}`)!
          .devices.map((d) => d.ID)
          .sort(),
      ).toEqual(
        migs
          .filter((m) => m.profile === profile)
          .map((m) => m.uuid)
          .sort(),
      );
    }
    expect(state.get(GPU)!.devices.map((d) => d.ID)).toEqual([node.state.devices[1]!.uuid]);
  });
});

describe('MIG single', () => {
  it('advertises identical MIG devices as nvidia.com/gpu and allocates them by MIG UUID (index i:j)', async () => {
    const state: MockNvmlState = {
      driverVersion: '580.95.05',
      devices: [
        {
          uuid: 'GPU-aaaaaaaa-0000-0000-0000-000000000000',
          name: 'NVIDIA A100-SXM4-40GB',
          minor: 0,
          pciBusId: '00000000:07:00.0',
          memoryTotalMiB: 40960,
          computeCapability: [8, 0],
          migEnabled: true,
          migDevices: [1, 2].map((gi) => ({
            uuid: `MIG-${gi}${gi}${gi}${gi}${gi}${gi}${gi}${gi}-0000-0000-0000-000000000000`,
            giId: gi,
            ciId: 0,
            profile: '3g.20gb',
            memoryMiB: 19968,
            multiprocessors: 42,
          })),
        },
      ],
    };
    const { kubelet } = await start(state, {
      config: 'flags: {migStrategy: single, plugin: {deviceIDStrategy: index}}',
    });
    const devices = (await kubelet.waitFor(registered(GPU, 2))).get(GPU)!.devices.map((d) => d.ID);
    expect(devices).toEqual([
      'MIG-11111111-0000-0000-0000-000000000000',
      'MIG-22222222-0000-0000-0000-000000000000',
    ]);
    const { response } = await kubelet.allocateIds(GPU, [devices[1]!]);
    expect(response.envs).toEqual({ NVIDIA_VISIBLE_DEVICES: '0:1' });
  });

  it('refuses to start on a node MIG single cannot describe, with NVIDIA’s error', async () => {
    await expect(start('mixed-mig', { config: 'flags: {migStrategy: single}' })).rejects.toThrow(
      'all devices on the node must be configured with the same migEnabled value',
    );
  });
});

describe('Allocate', () => {
  it.each([
    [
      'envvar + uuid',
      'flags: {plugin: {deviceListStrategy: envvar}}',
      (u: string) => ({ envs: { NVIDIA_VISIBLE_DEVICES: u } }),
    ],
    [
      'envvar + index',
      'flags: {plugin: {deviceIDStrategy: index}}',
      () => ({ envs: { NVIDIA_VISIBLE_DEVICES: '0' } }),
    ],
    [
      'volume-mounts',
      'flags: {plugin: {deviceListStrategy: volume-mounts}}',
      (u: string) => ({
        envs: { NVIDIA_VISIBLE_DEVICES: '/var/run/nvidia-container-devices' },
        mounts: [
          {
            container_path: `/var/run/nvidia-container-devices/${u}`,
            host_path: '/dev/null',
            read_only: false,
          },
        ],
      }),
    ],
    [
      'cdi-cri',
      'flags: {plugin: {deviceListStrategy: cdi-cri}}',
      (u: string) => ({ envs: {}, cdi_devices: [{ name: `nvidia.com/gpu=${u}` }] }),
    ],
    [
      'cdi-annotations',
      'flags: {plugin: {deviceListStrategy: [cdi-annotations]}}',
      (u: string) => ({ envs: {}, annotations: { [`cdi.k8s.io/vgpu-agent_${u}`]: `nvidia.com/gpu=${u}` } }),
    ],
  ])('%s', async (_name, config, expected) => {
    const { kubelet, node } = await start('single-t4', { config });
    await kubelet.waitFor(registered(GPU, 1));
    const { deviceIds, response } = await kubelet.allocate(GPU, 1);
    const gpuUuid = node.state.devices[0]!.uuid;
    expect(deviceIds).toEqual([gpuUuid]);
    expect(response).toMatchObject(expected(gpuUuid));
  });

  it('passDeviceSpecs: control nodes present under the dev root, plus the GPU node', async () => {
    const { kubelet, node } = await start('single-t4', {
      config: 'flags: {plugin: {passDeviceSpecs: true}}',
      fakeDevRoot: true,
    });
    await kubelet.waitFor(registered(GPU, 1));
    const { response } = await kubelet.allocate(GPU, 1);
    const root = `${node.dir}/driver-root`;
    expect(response.devices).toEqual([
      { container_path: '/dev/nvidiactl', host_path: `${root}/dev/nvidiactl`, permissions: 'rw' },
      { container_path: '/dev/nvidia-uvm', host_path: `${root}/dev/nvidia-uvm`, permissions: 'rw' },
      { container_path: '/dev/nvidia0', host_path: `${root}/dev/nvidia0`, permissions: 'rw' },
    ]);
  });

  it('failRequestsGreaterThanOne refuses a container asking two replicas, with NVIDIA’s text', async () => {
    const { kubelet } = await start('single-t4', {
      config:
        'sharing: {timeSlicing: {failRequestsGreaterThanOne: true, resources: [{name: nvidia.com/gpu, replicas: 4}]}}',
    });
    await kubelet.waitFor(registered(GPU, 4));
    await expect(kubelet.allocate(GPU, 2)).rejects.toThrow(
      /INVALID_ARGUMENT.*invalid request: maximum request size for shared resources is 1; found 2/,
    );
    await expect(kubelet.allocate(GPU, 1)).resolves.toMatchObject({
      deviceIds: [expect.stringMatching(/::\d$/)],
    });
  });

  it.each([
    ['distributed', [0, 1]],
    ['packed', [0, 0]],
  ] as const)(
    'sharedDevicesAllocationPolicy %s places two one-replica pods on GPUs %j',
    async (policy, expected) => {
      const { kubelet, node } = await start(fourGpuState(), {
        config: `flags: {plugin: {sharedDevicesAllocationPolicy: ${policy}}}\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4, devices: [0, 1]}]}}`,
      });
      await kubelet.waitFor((s) => (s.get(GPU)?.devices.length ?? 0) === 10);
      const uuids = node.state.devices.map((d) => d.uuid);
      const first = await kubelet.allocate(GPU, 1, { mustInclude: [`${uuid(0)}::0`] });
      const second = await kubelet.allocate(GPU, 1);
      const gpuIndex = (id: string) => uuids.indexOf(id.split('::')[0]!);
      expect([first.deviceIds[0]!, second.deviceIds[0]!].map(gpuIndex)).toEqual(expected);
    },
  );

  it('refuses unknown IDs with INVALID_ARGUMENT naming them, and keeps serving', async () => {
    const { kubelet, logs } = await start('single-t4');
    await kubelet.waitFor(registered(GPU, 1));
    await expect(kubelet.allocateIds(GPU, ['GPU-not-here'])).rejects.toThrow(
      /INVALID_ARGUMENT.*unknown device GPU-not-here for resource nvidia.com\/gpu/,
    );
    expect(logs.some((l) => l.msg === 'Allocate refused')).toBe(true);
    await expect(kubelet.allocate(GPU, 1)).resolves.toMatchObject({
      deviceIds: [expect.stringMatching(/^GPU-/)],
    });
  });
});

describe('Allocate refusals', () => {
  const replicas = 'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}';

  it('refuses a device that turned Unhealthy with FAILED_PRECONDITION naming it, and serves the others', async () => {
    const { kubelet, node } = await start('dgx-a100', { config: replicas });
    await kubelet.waitFor(registered(GPU, 16));
    const [healthy, victim] = [node.state.devices[0]!.uuid, node.state.devices[3]!.uuid];
    await node.injectEvent({ uuid: victim, xid: 48 });
    await kubelet.waitFor((s) => s.get(GPU)!.devices.filter((d) => d.health === 'Unhealthy').length === 2, {
      timeoutMs: 10_000,
    });
    // Kubelet acting on a list from before the Xid: the replica's GPU is Unhealthy, so is the replica.
    await expect(kubelet.allocateIds(GPU, [`${healthy}::0`, `${victim}::1`])).rejects.toThrow(
      new RegExp(`FAILED_PRECONDITION: device ${victim}::1 of nvidia.com/gpu is Unhealthy`),
    );
    expect(kubelet.resource(GPU)!.allocated).toEqual([]);
    const { response } = await kubelet.allocateIds(GPU, [`${healthy}::0`]);
    expect(response.envs).toMatchObject({ NVIDIA_VISIBLE_DEVICES: healthy });
  });

  it('refuses a request naming one device twice with INVALID_ARGUMENT', async () => {
    const { kubelet, node } = await start('single-t4', { config: replicas });
    await kubelet.waitFor(registered(GPU, 2));
    const replica = `${node.state.devices[0]!.uuid}::1`;
    await expect(kubelet.allocateIds(GPU, [replica, `${replica.slice(0, -1)}0`, replica])).rejects.toThrow(
      new RegExp(`INVALID_ARGUMENT: invalid request: device ${replica} requested twice`),
    );
    expect(kubelet.resource(GPU)!.allocated).toEqual([]);
  });
});

describe('Allocate refusals in the log', () => {
  it('a refused 200 KB ID is logged once and cut short, in the log and in the error kubelet gets', async () => {
    const { kubelet, logs } = await start('single-t4');
    await kubelet.waitFor(registered(GPU, 1));
    const huge = `GPU-${'x'.repeat(200_000)}`;
    const from = logs.length;
    const refusal = await kubelet.allocateIds(GPU, [huge, 'GPU-also-unknown']).catch((err: Error) => err);
    expect(refusal).toBeInstanceOf(Error);
    expect((refusal as Error).message).toMatch(
      /unknown devices GPU-x+… \(200004 characters\), GPU-also-unknown/,
    );
    expect((refusal as Error).message.length).toBeLessThan(1000);
    const written = logs.slice(from);
    expect(written.filter((l) => l.msg === 'Allocate refused')).toHaveLength(1);
    // Each ID at most once (cut to 64 characters), whatever the request held.
    expect(JSON.stringify(written).length).toBeLessThan(2000);
    expect(JSON.stringify(written).match(/GPU-also-unknown/g)).toHaveLength(1);
  });

  it('a long request is named by its first IDs and a count of the others', async () => {
    const { kubelet, logs } = await start('single-t4');
    await kubelet.waitFor(registered(GPU, 1));
    const ids = Array.from({ length: 1000 }, (_, i) => `GPU-unknown-${i}`);
    await expect(kubelet.allocateIds(GPU, ids)).rejects.toThrow(/GPU-unknown-7 \(\+992 more\) for resource/);
    const refused = logs.filter((l) => l.msg === 'Allocate refused');
    expect(refused).toHaveLength(1);
    expect(JSON.stringify(refused[0]).length).toBeLessThan(1000);
  });
});

describe('GetPreferredAllocation', () => {
  it('honours must-include and keeps pairs that share NVLink and a NUMA node together', async () => {
    const { kubelet } = await start(fourGpuState());
    await kubelet.waitFor(registered(GPU, 4));
    const first = await kubelet.allocate(GPU, 2, { mustInclude: [uuid(2)] });
    expect(first.deviceIds.sort()).toEqual([uuid(2), uuid(3)]);
    const second = await kubelet.allocate(GPU, 2);
    expect(second.deviceIds.sort()).toEqual([uuid(0), uuid(1)]);
  });

  it('prefers NVLink over a shared PCIe switch and NUMA node (NVLink pairs cross NUMA nodes)', async () => {
    // GPUs 0 and 1 share NUMA node 0 and a PCIe switch, 2 and 3 NUMA node 1 and another switch;
    // the NVLink pairs are (0, 2) and (1, 3): only NVLink can make 0 choose 2.
    const state = await fixtureNode('nvlink-across-numa');
    const gpus = state.devices.map((d) => d.uuid);
    const { kubelet } = await start(state);
    await kubelet.waitFor(registered(GPU, 4));
    const first = await kubelet.allocate(GPU, 2, { mustInclude: [gpus[0]!] });
    expect(first.deviceIds).toEqual([gpus[0], gpus[2]]);
    const second = await kubelet.allocate(GPU, 2);
    expect(second.deviceIds.sort()).toEqual([gpus[1], gpus[3]]);
    kubelet.release(GPU, [...first.deviceIds, ...second.deviceIds]);
    // Nothing must-included: of the six pairs, an NVLinked one.
    const third = await kubelet.allocate(GPU, 2);
    expect([
      [gpus[0], gpus[2]],
      [gpus[1], gpus[3]],
    ]).toContainEqual(third.deviceIds.sort());
  });

  it('still answers when a GPU is lost, and that GPU turns Unhealthy while the others stay Healthy', async () => {
    const { kubelet, node } = await start(fourGpuState());
    await kubelet.waitFor(registered(GPU, 4));
    await node.setLost(uuid(1), true);
    const state = await kubelet.waitFor(
      (s) => s.get(GPU)?.devices.some((d) => d.health === 'Unhealthy') ?? false,
    );
    expect(state.get(GPU)!.devices.map((d) => [d.ID, d.health])).toEqual([
      [uuid(0), 'Healthy'],
      [uuid(1), 'Unhealthy'],
      [uuid(2), 'Healthy'],
      [uuid(3), 'Healthy'],
    ]);
    const { deviceIds } = await kubelet.allocate(GPU, 2, { mustInclude: [uuid(0)] });
    expect(deviceIds).toHaveLength(2);
    expect(deviceIds).not.toContain(uuid(1));
  });
});
