/** Plain-data inventories for unit tests of the pure core (no NVML). */
import type { Gpu, Inventory, MigDevice } from '../../src/devices/inventory-types.js';
import { TopologyLevel } from '../../src/nvml/codes.js';

export function uuidOf(index: number): string {
  return `GPU-${String(index).padStart(8, '0')}-0000-0000-0000-000000000000`;
}

export function gpu(index: number, overrides: Partial<Gpu> = {}): Gpu {
  return {
    uuid: uuidOf(index),
    index,
    name: 'NVIDIA A100-SXM4-80GB',
    minor: index,
    memoryMiB: 81920,
    busId: `0000:${(index + 7).toString(16).padStart(2, '0')}:00.0`,
    numaNode: index < 4 ? 0 : 1,
    computeCapability: { major: 8, minor: 0 },
    deviceNodes: [`/dev/nvidia${index}`],
    migCapable: true,
    migEnabled: false,
    migDevices: [],
    links: [],
    ...overrides,
  };
}

export function mig(parent: Gpu, slot: number, profile: string, memoryMiB: number): MigDevice {
  return {
    uuid: `MIG-${parent.index}${slot}000000-0000-0000-0000-000000000000`,
    parentUuid: parent.uuid,
    parentIndex: parent.index,
    slot,
    index: `${parent.index}:${slot}`,
    gpuInstanceId: slot + 1,
    computeInstanceId: 0,
    profile,
    memoryMiB,
    multiprocessorCount: 14,
    gpuInstanceSlices: Number(profile[0]),
    computeInstanceSlices: Number(profile[0]),
    engines: { copy: Number(profile[0]), decoder: 0, encoder: 0, jpeg: 0, ofa: 0 },
    deviceNodes: [...parent.deviceNodes],
    numaNode: parent.numaNode,
  };
}

/**
 * GPUs linked as given: `nvlinks[i][j]` links between GPU i and j; PCIe level SINGLE within pairs
 * (0,1), (2,3)..., NODE within a NUMA node, SYSTEM across.
 */
export function linkedInventory(
  count: number,
  nvlinks: (a: number, b: number) => number = () => 0,
): Inventory {
  const gpus = Array.from({ length: count }, (_, i) => gpu(i));
  for (const a of gpus) {
    a.links = gpus
      .filter((b) => b !== a)
      .map((b) => ({
        peerUuid: b.uuid,
        nvlinks: nvlinks(a.index, b.index),
        pcieLevel:
          Math.floor(a.index / 2) === Math.floor(b.index / 2)
            ? TopologyLevel.SINGLE
            : a.numaNode === b.numaNode
              ? TopologyLevel.NODE
              : TopologyLevel.SYSTEM,
      }));
  }
  return { driverVersion: '580.95.05', cudaDriverVersion: '13.0', gpus, problems: [] };
}
