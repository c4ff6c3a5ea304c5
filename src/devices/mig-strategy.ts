/**
 * NVIDIA's MIG strategies: which physical targets are advertised under which resource name before
 * any sharing applies. Same names and same refusals as k8s-device-plugin, so their users get the
 * same answers.
 */
import type { Gpu, Inventory, MigDevice } from './inventory-types.js';
import type { DeviceTarget } from './resource-types.js';

export type MigStrategy = 'none' | 'single' | 'mixed';

export const GPU_RESOURCE = 'nvidia.com/gpu';

/** The node's MIG layout contradicts the strategy; the message is NVIDIA's. */
export class MigStrategyError extends Error {
  override readonly name = 'MigStrategyError';
}

export function gpuTarget(gpu: Gpu): DeviceTarget {
  return {
    kind: 'gpu',
    uuid: gpu.uuid,
    index: String(gpu.index),
    gpuUuid: gpu.uuid,
    deviceNodes: gpu.deviceNodes,
    numaNode: gpu.numaNode,
    memoryMiB: gpu.memoryMiB,
  };
}

export function migTarget(mig: MigDevice): DeviceTarget {
  return {
    kind: 'mig',
    uuid: mig.uuid,
    index: mig.index,
    gpuUuid: mig.parentUuid,
    deviceNodes: mig.deviceNodes,
    numaNode: mig.numaNode,
    memoryMiB: mig.memoryMiB,
  };
}

/** `nvidia.com/mig-1g.10gb`; NVIDIA writes `+` attributes (`+me`) as `.me`. */
export function migResourceName(profile: string): string {
  return `nvidia.com/mig-${profile.replaceAll('+', '.')}`;
}

function add(map: Map<string, DeviceTarget[]>, name: string, target: DeviceTarget): void {
  const list = map.get(name);
  if (list) list.push(target);
  else map.set(name, [target]);
}

/** Resource name → targets, in GPU index order (then MIG slot order). */
export function targetsByResource(inventory: Inventory, strategy: MigStrategy): Map<string, DeviceTarget[]> {
  const resources = new Map<string, DeviceTarget[]>();
  const gpus = [...inventory.gpus].sort((a, b) => a.index - b.index);
  switch (strategy) {
    case 'none':
      for (const gpu of gpus) add(resources, GPU_RESOURCE, gpuTarget(gpu));
      break;
    case 'single': {
      const enabled = gpus.filter((g) => g.migEnabled);
      if (enabled.length === 0) {
        for (const gpu of gpus) add(resources, GPU_RESOURCE, gpuTarget(gpu));
        break;
      }
      if (enabled.length !== gpus.length) {
        throw new MigStrategyError(
          'all devices on the node must be configured with the same migEnabled value',
        );
      }
      const empty = enabled.find((g) => g.migDevices.length === 0);
      if (empty) throw new MigStrategyError(`device ${empty.index} has no MIG devices configured`);
      const profiles = new Set(enabled.flatMap((g) => g.migDevices.map((m) => m.profile)));
      if (profiles.size > 1) {
        throw new MigStrategyError(
          `more than one MIG device type present on node (${[...profiles].sort().join(', ')})`,
        );
      }
      for (const gpu of enabled)
        for (const mig of gpu.migDevices) add(resources, GPU_RESOURCE, migTarget(mig));
      break;
    }
    case 'mixed':
      for (const gpu of gpus) {
        if (!gpu.migEnabled) add(resources, GPU_RESOURCE, gpuTarget(gpu));
        else for (const mig of gpu.migDevices) add(resources, migResourceName(mig.profile), migTarget(mig));
      }
      break;
  }
  return resources;
}
