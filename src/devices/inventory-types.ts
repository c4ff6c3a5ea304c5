/** The node's GPUs as the rest of the agent sees them: plain data, built once from NVML. */
import type { ComputeCapability } from '../nvml/types.js';

export interface GpuLink {
  /** UUID of the other GPU */
  peerUuid: string;
  /** active NVLinks between the two GPUs (0 when they only share PCIe) */
  nvlinks: number;
  /** nvmlGpuTopologyLevel_t of their closest common PCIe/CPU ancestor (lower is closer) */
  pcieLevel: number;
}

export interface MigDevice {
  uuid: string;
  parentUuid: string;
  parentIndex: number;
  /** position among the parent's MIG devices, as NVIDIA's `i:j` index */
  slot: number;
  /** `<parentIndex>:<slot>` */
  index: string;
  gpuInstanceId: number;
  computeInstanceId: number;
  /** `3g.40gb`, `1c.3g.40gb` when the compute instance is smaller than its GPU instance */
  profile: string;
  memoryMiB: number;
  multiprocessorCount: number;
  gpuInstanceSlices: number;
  computeInstanceSlices: number;
  /** engines the GPU instance shares among its compute instances (GFD's `engines.*` labels) */
  engines: MigEngines;
  /** parent /dev/nvidiaN plus the /dev/nvidia-caps nodes giving access to this GI/CI */
  deviceNodes: string[];
  numaNode: number | null;
}

export interface MigEngines {
  copy: number;
  decoder: number;
  encoder: number;
  jpeg: number;
  ofa: number;
}

export interface Gpu {
  uuid: string;
  index: number;
  name: string;
  minor: number;
  memoryMiB: number;
  /** sysfs form, `0000:07:00.0` */
  busId: string;
  numaNode: number | null;
  computeCapability: ComputeCapability | null;
  /** `/dev/nvidia<minor>`: paths as the container sees them; the plugin maps them to the host's dev root */
  deviceNodes: string[];
  migCapable: boolean;
  migEnabled: boolean;
  migDevices: MigDevice[];
  /** every other GPU on the node, with how it is connected to this one */
  links: GpuLink[];
}

export interface InventoryProblem {
  /** `GPU 3` or `GPU-…` or `GPU-… MIG slot 2` */
  where: string;
  message: string;
}

export interface Inventory {
  driverVersion: string;
  /** e.g. `13.0`; null when libcuda is absent */
  cudaDriverVersion: string | null;
  gpus: Gpu[];
  /** GPUs or MIG devices that could not be read; the rest of the node is still usable */
  problems: InventoryProblem[];
}
