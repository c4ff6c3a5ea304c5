/**
 * Builds the node Inventory from NVML. Each GPU is read on its own: one that fails (lost, no
 * permission) is reported in `problems` and left out, and the others are still returned.
 */

import { errorMessage } from '../errors.js';
import { NVLINK_MAX_LINKS, TopologyLevel } from '../nvml/codes.js';
import { isNotSupported } from '../nvml/errors.js';
import type { Nvml } from '../nvml/nvml.js';
import type { DeviceHandle, MigDeviceAttributes } from '../nvml/types.js';
import { DEFAULT_HOST_PATHS, type HostPaths, readMigMinors, readNumaNode } from '../runtime/host.js';
import type { Gpu, GpuLink, Inventory, InventoryProblem, MigDevice } from './inventory-types.js';

const MIB = 1024 * 1024;

interface ReadGpu {
  gpu: Gpu;
  handle: DeviceHandle;
}

export async function buildInventory(
  nvml: Nvml,
  hostPaths: HostPaths = DEFAULT_HOST_PATHS,
): Promise<Inventory> {
  const problems: InventoryProblem[] = [];
  const migMinors = await readMigMinors(hostPaths.procRoot);
  const read: ReadGpu[] = [];
  const count = nvml.deviceCount();
  for (let index = 0; index < count; index++) {
    try {
      read.push(await readGpu(nvml, index, hostPaths, migMinors, problems));
    } catch (err) {
      problems.push({ where: `GPU ${index}`, message: errorMessage(err) });
    }
  }
  linkGpus(nvml, read, problems);
  return {
    driverVersion: nvml.driverVersion(),
    cudaDriverVersion: readCudaVersion(nvml),
    gpus: read.map((r) => r.gpu),
    problems,
  };
}

function readCudaVersion(nvml: Nvml): string | null {
  try {
    const { major, minor } = nvml.cudaDriverVersion();
    return `${major}.${minor}`;
  } catch {
    return null; // no libcuda on this node: NVML answers LIBRARY_NOT_FOUND
  }
}

async function readGpu(
  nvml: Nvml,
  index: number,
  hostPaths: HostPaths,
  migMinors: Map<string, number>,
  problems: InventoryProblem[],
): Promise<ReadGpu> {
  const handle = nvml.deviceByIndex(index);
  const uuid = nvml.uuid(handle);
  const minor = nvml.minorNumber(handle);
  const busId = nvml.pciInfo(handle).busId;
  const memoryMiB = Math.floor(nvml.memoryInfo(handle).totalBytes / MIB);
  const mig = optional(() => nvml.migMode(handle));
  const gpu: Gpu = {
    uuid,
    index,
    name: nvml.name(handle),
    minor,
    memoryMiB,
    busId,
    numaNode: await readNumaNode(hostPaths.sysfsRoot, busId),
    computeCapability: optional(() => nvml.computeCapability(handle)),
    deviceNodes: [`/dev/nvidia${minor}`],
    migCapable: mig !== null,
    migEnabled: mig?.current ?? false,
    migDevices: [],
    links: [],
  };
  if (gpu.migEnabled) gpu.migDevices = readMigDevices(nvml, handle, gpu, migMinors, problems);
  return { gpu, handle };
}

function readMigDevices(
  nvml: Nvml,
  parent: DeviceHandle,
  gpu: Gpu,
  migMinors: Map<string, number>,
  problems: InventoryProblem[],
): MigDevice[] {
  const devices: MigDevice[] = [];
  const max = nvml.maxMigDeviceCount(parent);
  for (let slot = 0; slot < max; slot++) {
    try {
      const handle = nvml.migDeviceByIndex(parent, slot);
      if (handle === null) continue;
      devices.push(
        migDeviceOf(gpu, {
          uuid: nvml.uuid(handle),
          slot,
          gpuInstanceId: nvml.gpuInstanceId(handle),
          computeInstanceId: nvml.computeInstanceId(handle),
          attributes: nvml.migAttributes(handle),
          migMinors,
        }),
      );
    } catch (err) {
      problems.push({ where: `${gpu.uuid} MIG slot ${slot}`, message: errorMessage(err) });
    }
  }
  return devices;
}

/** What NVML says about one MIG device, as read from the driver (or a mock state file). */
export interface MigDeviceFacts {
  uuid: string;
  slot: number;
  gpuInstanceId: number;
  computeInstanceId: number;
  attributes: MigDeviceAttributes;
  migMinors: ReadonlyMap<string, number>;
}

/** The inventory's MIG device record: the one place its derived fields (index, profile, nodes) are made. */
export function migDeviceOf(gpu: Gpu, facts: MigDeviceFacts): MigDevice {
  const { attributes, gpuInstanceId, computeInstanceId, slot } = facts;
  return {
    uuid: facts.uuid,
    parentUuid: gpu.uuid,
    parentIndex: gpu.index,
    slot,
    index: `${gpu.index}:${slot}`,
    gpuInstanceId,
    computeInstanceId,
    profile: migProfileName(attributes, gpu.memoryMiB),
    memoryMiB: attributes.memoryMiB,
    multiprocessorCount: attributes.multiprocessorCount,
    gpuInstanceSlices: attributes.gpuInstanceSliceCount,
    computeInstanceSlices: attributes.computeInstanceSliceCount,
    engines: {
      copy: attributes.sharedCopyEngineCount,
      decoder: attributes.sharedDecoderCount,
      encoder: attributes.sharedEncoderCount,
      jpeg: attributes.sharedJpegCount,
      ofa: attributes.sharedOfaCount,
    },
    deviceNodes: [
      ...gpu.deviceNodes,
      ...migCapabilityNodes(gpu.minor, gpuInstanceId, computeInstanceId, facts.migMinors),
    ],
    numaNode: gpu.numaNode,
  };
}

/**
 * NVIDIA's profile naming: `<G>g.<GB>gb`, prefixed `<C>c.` when the compute instance is smaller than
 * its GPU instance. GB is the MIG memory as a fraction of the card rounded up to an eighth, times the
 * card's size in GiB, so an A100-40GB 3-slice instance of 19968 MiB is `3g.20gb`.
 */
export function migProfileName(attributes: MigDeviceAttributes, parentMemoryMiB: number): string {
  const g = attributes.gpuInstanceSliceCount;
  const c = attributes.computeInstanceSliceCount;
  const eighths = Math.ceil((attributes.memoryMiB / parentMemoryMiB) * 8);
  const gb = Math.round((eighths / 8) * Math.ceil(parentMemoryMiB / 1024));
  return `${c !== g ? `${c}c.` : ''}${g}g.${gb}gb`;
}

/** The /dev/nvidia-caps nodes giving access to a MIG device's GPU and compute instance. */
function migCapabilityNodes(
  gpuMinor: number,
  gpuInstanceId: number,
  computeInstanceId: number,
  migMinors: ReadonlyMap<string, number>,
): string[] {
  const capabilities = [
    `gpu${gpuMinor}/gi${gpuInstanceId}/access`,
    `gpu${gpuMinor}/gi${gpuInstanceId}/ci${computeInstanceId}/access`,
  ];
  return capabilities.flatMap((capability) => {
    const minor = migMinors.get(capability);
    return minor === undefined ? [] : [`/dev/nvidia-caps/nvidia-cap${minor}`];
  });
}

/**
 * Pairwise connectivity, read once here so allocation policies never call NVML: NVLink counts from
 * each GPU's active links and their remote bus ids, PCIe distance from the common ancestor.
 */
function linkGpus(nvml: Nvml, read: ReadGpu[], problems: InventoryProblem[]): void {
  const byBusId = new Map(read.map((r) => [r.gpu.busId, r.gpu.uuid]));
  for (const a of read) {
    const nvlinks = countNvlinks(nvml, a, byBusId, problems);
    a.gpu.links = read
      .filter((b) => b !== a)
      .map(
        (b): GpuLink => ({
          peerUuid: b.gpu.uuid,
          nvlinks: nvlinks.get(b.gpu.uuid) ?? 0,
          pcieLevel: optional(() => nvml.topologyCommonAncestor(a.handle, b.handle)) ?? TopologyLevel.SYSTEM,
        }),
      );
  }
}

function countNvlinks(
  nvml: Nvml,
  gpu: ReadGpu,
  uuidByBusId: Map<string, string>,
  problems: InventoryProblem[],
): Map<string, number> {
  const counts = new Map<string, number>();
  for (let link = 0; link < NVLINK_MAX_LINKS; link++) {
    try {
      const state = nvml.nvlinkState(gpu.handle, link);
      if (state === 'absent') break;
      if (state === 'inactive') continue;
      const peer = uuidByBusId.get(nvml.nvlinkRemoteBusId(gpu.handle, link));
      if (peer) counts.set(peer, (counts.get(peer) ?? 0) + 1);
    } catch (err) {
      problems.push({ where: `${gpu.gpu.uuid} NVLink ${link}`, message: errorMessage(err) });
      break;
    }
  }
  return counts;
}

/** The value, or null when NVML says this query is not supported on this device. */
function optional<T>(read: () => T): T | null {
  try {
    return read();
  } catch (err) {
    if (isNotSupported(err)) return null;
    throw err;
  }
}
