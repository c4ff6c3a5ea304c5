/**
 * One collection's result: what every monitored device read and who used it. A snapshot is built
 * once, frozen, and then only read (by /metrics and anything else), so scrapes never call NVML and
 * never see a half-built collection. Units are in the names; a reading a device does not give is
 * absent (undefined), never 0.
 */
import type { PodContainerRef } from './cgroup.js';
import type { ContainerAllocation, ContainerNames } from './containers.js';

/** A monitored device: a whole GPU, or one MIG device of a GPU. */
export interface MonitoredDevice {
  /** its own UUID (`GPU-…` or `MIG-…`) */
  uuid: string;
  /** the physical GPU's UUID and NVML index (the same as above for a whole GPU) */
  gpuUuid: string;
  gpuIndex: number;
  /** set for a MIG device */
  mig?: { gpuInstanceId: number; computeInstanceId: number; profile: string };
}

/** Static facts about a physical GPU, for the `_info` series. */
export interface GpuFacts {
  uuid: string;
  index: number;
  model: string;
  /** sysfs form, `0000:07:00.0` */
  busId: string;
  migMode: 'enabled' | 'disabled' | 'unsupported';
}

export interface DeviceReadings {
  memoryTotalBytes?: number;
  memoryUsedBytes?: number;
  memoryFreeBytes?: number;
  memoryReservedBytes?: number;
  /** share of the last sample period with a kernel running, 0–1 */
  gpuUtilizationRatio?: number;
  /** share of the last sample period with device memory being read or written, 0–1 */
  memoryControllerUtilizationRatio?: number;
  temperatureCelsius?: number;
  powerWatts?: number;
  /** since the driver was loaded (a counter) */
  energyJoules?: number;
  smClockHertz?: number;
  memoryClockHertz?: number;
}

export interface ProcessUsage {
  pid: number;
  usedMemoryBytes?: number;
  /**
   * Its SM utilisation over the last interval, 0–1 (NVML's per-process samples; 0 when it had none).
   * Absent where the device gives no per-process samples (MIG, older drivers).
   */
  smUtilizationRatio?: number;
  /** undefined: the process is in no Kubernetes pod */
  owner: PodContainerRef | undefined;
}

export interface DeviceSnapshot {
  device: MonitoredDevice;
  /** false when NVML could not read the device this time (lost, reset required, ...) */
  up: boolean;
  /** why it is down */
  error?: string;
  readings: DeviceReadings;
  processes: readonly ProcessUsage[];
}

/** Whether kubelet allocated the device to the container using it. */
export type AllocationState = 'allocated' | 'not-allocated' | 'unknown';

/** One container's use of one device. */
export interface ContainerUsage {
  device: MonitoredDevice;
  podUid: string;
  containerId?: string;
  names?: ContainerNames;
  allocation: AllocationState;
  memoryUsedBytes?: number;
  /** Σ of its processes' ratios, clamped to 1; absent where the device gives no samples */
  smUtilizationRatio?: number;
  processCount: number;
}

/** Processes on one device that belong to no Kubernetes pod. */
export interface HostUsage {
  device: MonitoredDevice;
  memoryUsedBytes?: number;
  processCount: number;
}

/** HAMi-core's own figures for one device of a split container, from its shared region. */
export interface HamiCoreUsage {
  /** HAMi-core's device index in the container (CUDA_DEVICE_MEMORY_LIMIT_<i>) */
  deviceIndex: number;
  /** Σ of its processes' allocations as HAMi-core counts them */
  memoryUsedBytes: number;
  contextBytes: number;
  moduleBytes: number;
  dataBytes: number;
  /** Σ of HAMi-core's last per-process SM samples, 0-100 each (an idle process keeps its last value) */
  smUtilPercent: number;
  /** processes the region lists */
  processCount: number;
  /** when the container last launched a kernel, seconds since the epoch; absent: never */
  lastKernelTimeSeconds?: number;
}

/** A split-slice container's limits on one GPU, from the plugin's allocation directory. */
export interface SplitUsage {
  /** the physical GPU (split slices are always whole-GPU shares) */
  device: MonitoredDevice;
  names: ContainerNames;
  /** the allocation directory's name under `<hookPath>/containers/` */
  allocation: string;
  /**
   * kubelet's device IDs that stand for this GPU: a slice's own (`<uuid>::<n>`); in HAMi mode, where
   * kubelet's IDs (`<uuid>-<n>`) only count replicas, the one at the GPU's position in the directory
   */
  deviceIds: readonly string[];
  /** the GPU's position in the container (NVIDIA_VISIBLE_DEVICES order, CUDA_DEVICE_MEMORY_LIMIT_<i>) */
  deviceIndex: number;
  /** Σ of its slices' memory on this GPU; absent when neither allocation.json nor the region gives it */
  memoryLimitBytes?: number;
  /** Σ of its slices' compute share, 0-1 */
  smLimitRatio?: number;
  /** absent until a process of the container used the GPU through HAMi-core (no region file yet) */
  hami?: HamiCoreUsage;
}

export interface MonitorSnapshot {
  /** when the collection started, ms since the epoch */
  takenAtMs: number;
  durationSeconds: number;
  driverVersion: string;
  /** e.g. `13.0`; null without libcuda */
  cudaDriverVersion: string | null;
  gpus: readonly GpuFacts[];
  devices: readonly DeviceSnapshot[];
  containers: readonly ContainerUsage[];
  host: readonly HostUsage[];
  /** processes NVML listed that the host /proc does not show (exited meanwhile, or no hostPID) */
  processesNotInProc: number;
  /** split-slice containers' limits and HAMi-core usage; absent when the monitor has no hook path */
  splits?: readonly SplitUsage[];
  /** every device ID kubelet gave a container, when the allocation source lists them (PodResources) */
  allocations?: readonly ContainerAllocation[];
}

/** Freezes a plain-data snapshot all the way down. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
