import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildInventory, migProfileName } from '../../src/devices/inventory.js';
import { TopologyLevel } from '../../src/nvml/codes.js';
import { mockNodePath } from '../../src/paths.js';
import type { HostPaths } from '../../src/runtime/host.js';
import type { MockNvmlState } from '../../src/sim/mock-node.js';
import { type OpenedMock, openMockNvml, twoGpuState } from '../helpers/mock-nvml.js';

let opened: OpenedMock | undefined;
let hostDir: string | undefined;
afterEach(async () => {
  await opened?.close();
  opened = undefined;
  if (hostDir) await rm(hostDir, { recursive: true, force: true });
  hostDir = undefined;
});

/** A ready mock node's state, to change before opening it. */
async function stateOf(node: string): Promise<MockNvmlState> {
  return JSON.parse(await readFile(mockNodePath(node), 'utf8')) as MockNvmlState;
}

/** A fake host /sys and /proc with the files the inventory reads. */
async function fakeHost(numaByBusId: Record<string, string>, migMinors = ''): Promise<HostPaths> {
  hostDir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-host-'));
  for (const [busId, numa] of Object.entries(numaByBusId)) {
    const dir = path.join(hostDir, 'sys/bus/pci/devices', busId);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'numa_node'), `${numa}\n`);
  }
  await mkdir(path.join(hostDir, 'proc/driver/nvidia-caps'), { recursive: true });
  await writeFile(path.join(hostDir, 'proc/driver/nvidia-caps/mig-minors'), migMinors);
  return { sysfsRoot: path.join(hostDir, 'sys'), procRoot: path.join(hostDir, 'proc') };
}

describe('inventory', () => {
  it('models each GPU with identity, memory, PCI, NUMA (from sysfs), device nodes and links', async () => {
    opened = await openMockNvml(twoGpuState());
    const host = await fakeHost({ '0000:07:00.0': '0', '0000:0f:00.0': '-1' });
    const inventory = await buildInventory(opened.nvml, host);
    expect(inventory.driverVersion).toBe('580.95.05');
    expect(inventory.cudaDriverVersion).toBe('13.0');
    expect(inventory.problems).toEqual([]);
    expect(inventory.gpus).toEqual([
      {
        uuid: 'GPU-11111111-1111-1111-1111-111111111111',
        index: 0,
        name: 'NVIDIA A100-SXM4-80GB',
        minor: 0,
        memoryMiB: 81920,
        busId: '0000:07:00.0',
        numaNode: 0,
        computeCapability: { major: 8, minor: 0 },
        deviceNodes: ['/dev/nvidia0'],
        migCapable: true,
        migEnabled: false,
        migDevices: [],
        links: [
          {
            peerUuid: 'GPU-22222222-2222-2222-2222-222222222222',
            nvlinks: 2,
            pcieLevel: TopologyLevel.SYSTEM,
          },
        ],
      },
      expect.objectContaining({
        uuid: 'GPU-22222222-2222-2222-2222-222222222222',
        busId: '0000:0f:00.0',
        numaNode: null,
        deviceNodes: ['/dev/nvidia1'],
        links: [
          {
            peerUuid: 'GPU-11111111-1111-1111-1111-111111111111',
            nvlinks: 2,
            pcieLevel: TopologyLevel.SYSTEM,
          },
        ],
      }),
    ]);
  });

  it('enumerates MIG devices with profile, GI/CI ids and capability device nodes', async () => {
    opened = await openMockNvml('mixed-mig');
    const expected = opened.node.state.devices[0]!.migDevices!;
    const first = expected[0]!;
    const host = await fakeHost(
      {},
      `gpu0/gi${first.giId}/access 21\ngpu0/gi${first.giId}/ci${first.ciId}/access 22\nconfig 1\n`,
    );
    const inventory = await buildInventory(opened.nvml, host);
    const [migGpu, plainGpu] = inventory.gpus;
    expect(migGpu!.migEnabled).toBe(true);
    expect(plainGpu!.migEnabled).toBe(false);
    expect(plainGpu!.migDevices).toEqual([]);
    expect(
      migGpu!.migDevices.map((m) => [m.uuid, m.profile, m.gpuInstanceId, m.computeInstanceId, m.memoryMiB]),
    ).toEqual(expected.map((m) => [m.uuid, m.profile, m.giId, m.ciId, m.memoryMiB]));
    expect(migGpu!.migDevices[0]).toMatchObject({
      parentUuid: migGpu!.uuid,
      parentIndex: 0,
      index: '0:0',
      deviceNodes: ['/dev/nvidia0', '/dev/nvidia-caps/nvidia-cap21', '/dev/nvidia-caps/nvidia-cap22'],
    });
    // No mig-minors entry for the others' instances: only the GPU's node, no made-up capability node.
    expect(migGpu!.migDevices[1]!.deviceNodes).toEqual(['/dev/nvidia0']);
    // The empty MIG slots are skipped, not reported.
    expect(inventory.problems).toEqual([]);
  });

  it('reports a MIG device it cannot read, with its GPU and slot, and keeps the others', async () => {
    const state = await stateOf('mixed-mig');
    const migs = state.devices[0]!.migDevices!;
    migs[1]!.failures = { nvmlDeviceGetAttributes_v2: 'UNKNOWN' };
    opened = await openMockNvml(state);
    const inventory = await buildInventory(opened.nvml, await fakeHost({}));
    expect(inventory.gpus[0]!.migDevices.map((m) => m.uuid)).toEqual([migs[0]!.uuid, migs[2]!.uuid]);
    expect(inventory.problems).toEqual([
      { where: `${state.devices[0]!.uuid} MIG slot 1`, message: expect.stringContaining('UNKNOWN') },
    ]);
  });

  it('a GPU that is not MIG-capable and has no NVLink: MIG off, no links counted, nothing reported', async () => {
    opened = await openMockNvml('single-t4');
    const inventory = await buildInventory(opened.nvml, await fakeHost({}));
    expect(inventory.gpus).toEqual([
      expect.objectContaining({ name: 'Tesla T4', migCapable: false, migEnabled: false, migDevices: [] }),
    ]);
    expect(inventory.problems).toEqual([]);
  });

  it('a GPU with MIG disabled is not asked for MIG devices', async () => {
    const state = twoGpuState();
    state.devices[0]!.failures = { nvmlDeviceGetMaxMigDeviceCount: 'UNKNOWN' };
    opened = await openMockNvml(state);
    const inventory = await buildInventory(opened.nvml, await fakeHost({}));
    expect(inventory.gpus.map((g) => [g.index, g.migCapable, g.migEnabled])).toEqual([
      [0, true, false],
      [1, true, false],
    ]);
    expect(inventory.problems).toEqual([]);
  });

  it('an NVML error other than NOT_SUPPORTED on an optional query leaves the GPU out, saying where', async () => {
    const state = twoGpuState();
    state.devices[0]!.failures = { nvmlDeviceGetMigMode: 'UNKNOWN' };
    opened = await openMockNvml(state);
    const inventory = await buildInventory(opened.nvml, await fakeHost({}));
    expect(inventory.gpus.map((g) => g.index)).toEqual([1]);
    expect(inventory.problems).toEqual([{ where: 'GPU 0', message: expect.stringContaining('UNKNOWN') }]);
  });

  it('no libcuda: the CUDA version is null and the GPUs are read', async () => {
    const state = twoGpuState();
    state.failures = { nvmlSystemGetCudaDriverVersion: 'LIBRARY_NOT_FOUND' };
    opened = await openMockNvml(state);
    const inventory = await buildInventory(opened.nvml, await fakeHost({}));
    expect(inventory.cudaDriverVersion).toBeNull();
    expect(inventory.gpus).toHaveLength(2);
  });

  it('PCIe distance from the common ancestor: same switch, same NUMA node, across; SYSTEM when not supported', async () => {
    const state = await stateOf('dgx-a100');
    state.devices[7]!.failures = { nvmlDeviceGetTopologyCommonAncestor: 'NOT_SUPPORTED' };
    opened = await openMockNvml(state);
    const inventory = await buildInventory(opened.nvml, await fakeHost({}));
    const level = (a: number, b: number) =>
      inventory.gpus[a]!.links.find((l) => l.peerUuid === inventory.gpus[b]!.uuid)!.pcieLevel;
    expect([level(0, 1), level(0, 2), level(0, 4), level(7, 6)]).toEqual([
      TopologyLevel.SINGLE,
      TopologyLevel.NODE,
      TopologyLevel.SYSTEM,
      TopologyLevel.SYSTEM,
    ]);
  });

  it('an NVLink it cannot read is reported with its GPU and link, and counts as no NVLink', async () => {
    const state = twoGpuState();
    state.devices[0]!.failures = { nvmlDeviceGetNvLinkRemotePciInfo: 'UNKNOWN' };
    opened = await openMockNvml(state);
    const inventory = await buildInventory(opened.nvml, await fakeHost({}));
    expect(inventory.gpus.map((g) => g.links[0]!.nvlinks)).toEqual([0, 2]);
    expect(inventory.problems).toEqual([
      { where: `${state.devices[0]!.uuid} NVLink 0`, message: expect.stringContaining('UNKNOWN') },
    ]);
  });

  it('leaves out a GPU it cannot read and keeps the others', async () => {
    const state = twoGpuState();
    state.devices[0]!.lost = true;
    opened = await openMockNvml(state);
    const inventory = await buildInventory(opened.nvml, await fakeHost({}));
    expect(inventory.gpus.map((g) => g.index)).toEqual([1]);
    expect(inventory.problems).toEqual([{ where: 'GPU 0', message: expect.stringContaining('GPU_IS_LOST') }]);
  });

  it.each([
    // [G, C, MIG MiB, card MiB, expected]: NVIDIA's names for A100 40GB/80GB and H100 profiles
    [1, 1, 4864, 40960, '1g.5gb'],
    [2, 2, 9856, 40960, '2g.10gb'],
    [3, 3, 19968, 40960, '3g.20gb'],
    [7, 7, 40192, 40960, '7g.40gb'],
    [3, 3, 40192, 81920, '3g.40gb'],
    [1, 1, 9856, 81920, '1g.10gb'],
    [3, 1, 19968, 40960, '1c.3g.20gb'],
  ])('names MIG profile G=%i C=%i %i/%i MiB as %s', (g, c, mib, total, name) => {
    const attributes = {
      multiprocessorCount: 0,
      sharedCopyEngineCount: 0,
      sharedDecoderCount: 0,
      sharedEncoderCount: 0,
      sharedJpegCount: 0,
      sharedOfaCount: 0,
      gpuInstanceSliceCount: g,
      computeInstanceSliceCount: c,
      memoryMiB: mib,
    };
    expect(migProfileName(attributes, total)).toBe(name);
  });
});
