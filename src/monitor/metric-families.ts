/**
 * A snapshot as Prometheus metric families (pure): names, HELP, labels and values, following
 * Prometheus conventions (base units, `_ratio` 0–1, `_total` counters, `_info` metadata).
 *
 * Device series (`vgpu_gpu_*`, `vgpu_mig_device_info`) and per-container series (`vgpu_container_*`,
 * `vgpu_unallocated_*`) have their own names, so `sum()` over one family never adds a device total
 * to its parts. Memory is per memory domain: a GPU without MIG, or each MIG device of a MIG-enabled
 * GPU (never also the GPU's aggregate). A reading a device does not give has no series. The families
 * and their labels are documented in docs/metrics.md.
 */
import type { ContainerAllocation } from './containers.js';
import type { ContainerUsage, HostUsage, MonitoredDevice, MonitorSnapshot, SplitUsage } from './snapshot.js';

export type MetricType = 'gauge' | 'counter';

export interface FamilyDefinition {
  name: string;
  help: string;
  type: MetricType;
  labelNames: readonly string[];
}

export interface Sample {
  labels: Readonly<Record<string, string>>;
  value: number;
}

export type MetricFamilies = ReadonlyMap<string, readonly Sample[]>;

export const DEVICE_LABELS = ['uuid', 'gpu', 'gpu_instance_id', 'compute_instance_id'] as const;
export const GPU_LABELS = ['uuid', 'gpu'] as const;
const CONTAINER_LABELS = [
  ...DEVICE_LABELS,
  'namespace',
  'pod',
  'container',
  'pod_uid',
  'container_id',
] as const;

/** A gauge's definition: the monitor's own families and the compatibility sets (compat-*.ts) use it. */
export const gauge = (name: string, labelNames: readonly string[], help: string): FamilyDefinition => ({
  name,
  help,
  type: 'gauge',
  labelNames,
});

export const counter = (name: string, labelNames: readonly string[], help: string): FamilyDefinition => ({
  ...gauge(name, labelNames, help),
  type: 'counter',
});

/** Every family the monitor exports, in exposition order. */
export const MONITOR_FAMILIES: readonly FamilyDefinition[] = [
  gauge(
    'vgpu_gpu_info',
    [...GPU_LABELS, 'model', 'pci_bus_id', 'driver_version', 'cuda_version', 'mig_mode'],
    'Always 1 for each GPU: its model, PCI bus id, driver and CUDA versions and MIG mode (enabled, disabled, unsupported)',
  ),
  gauge(
    'vgpu_mig_device_info',
    [...DEVICE_LABELS, 'mig_uuid', 'profile'],
    'Always 1 for each MIG device: its UUID and profile, by GPU and GPU/compute instance id',
  ),
  gauge(
    'vgpu_gpu_up',
    DEVICE_LABELS,
    '1 when NVML read the GPU or MIG device in the last collection, 0 when it failed (lost, reset required)',
  ),
  gauge('vgpu_gpu_memory_total_bytes', DEVICE_LABELS, 'Memory of a GPU without MIG, or of one MIG device'),
  gauge(
    'vgpu_gpu_memory_used_bytes',
    DEVICE_LABELS,
    'Memory allocated by processes on the GPU or MIG device',
  ),
  gauge('vgpu_gpu_memory_free_bytes', DEVICE_LABELS, 'Memory neither allocated nor reserved'),
  gauge(
    'vgpu_gpu_memory_reserved_bytes',
    DEVICE_LABELS,
    'Memory the driver and firmware reserve for themselves (drivers with nvmlDeviceGetMemoryInfo_v2)',
  ),
  gauge(
    'vgpu_gpu_utilization_ratio',
    GPU_LABELS,
    "Share of NVML's last sample period (1/6 s to 1 s) during which a kernel ran, 0-1 (GPUs without MIG)",
  ),
  gauge(
    'vgpu_gpu_memory_controller_utilization_ratio',
    GPU_LABELS,
    "Share of NVML's last sample period during which device memory was read or written, 0-1 (GPUs without MIG)",
  ),
  gauge('vgpu_gpu_temperature_celsius', GPU_LABELS, 'GPU die temperature'),
  gauge(
    'vgpu_gpu_power_watts',
    GPU_LABELS,
    'Power draw of the board as NVML reports it (averaged or instant, by GPU)',
  ),
  counter(
    'vgpu_gpu_energy_joules_total',
    GPU_LABELS,
    'Energy the GPU consumed since the driver was loaded (resets when it reloads); Volta and newer',
  ),
  gauge('vgpu_gpu_sm_clock_hertz', GPU_LABELS, 'Current SM clock'),
  gauge('vgpu_gpu_memory_clock_hertz', GPU_LABELS, 'Current memory clock'),
  gauge(
    'vgpu_container_memory_used_bytes',
    CONTAINER_LABELS,
    "GPU memory used by a container's processes on a GPU or MIG device",
  ),
  gauge(
    'vgpu_container_sm_utilization_ratio',
    CONTAINER_LABELS,
    "Estimated share of the GPU's SMs a container used over the last collection interval, 0-1: the sum of " +
      "NVML's per-process samples (a process without a sample counts 0), capped at 1; not available on MIG",
  ),
  gauge('vgpu_container_processes', CONTAINER_LABELS, "A container's processes on a GPU or MIG device"),
  gauge(
    'vgpu_container_memory_limit_bytes',
    CONTAINER_LABELS,
    "A split-slice container's memory limit on a GPU (its slices' memory added up), enforced by HAMi-core",
  ),
  gauge(
    'vgpu_container_sm_limit_ratio',
    CONTAINER_LABELS,
    "A split-slice container's compute limit on a GPU, 0-1: the share of SMs HAMi-core lets it use",
  ),
  gauge(
    'vgpu_container_hami_memory_used_bytes',
    CONTAINER_LABELS,
    "GPU memory HAMi-core counts for a split-slice container's processes (its own accounting, from the " +
      "shared region; vgpu_container_memory_used_bytes is NVML's figure)",
  ),
  gauge(
    'vgpu_container_allocation_info',
    [...DEVICE_LABELS, 'namespace', 'pod', 'container', 'resource', 'device_id'],
    "Always 1 for each device ID kubelet allocated to a container (PodResources), with the resource and the GPU or MIG device behind it (a replica's or slice's own GPU)",
  ),
  gauge(
    'vgpu_unallocated_memory_used_bytes',
    [...CONTAINER_LABELS, 'kind'],
    'GPU memory used outside any device allocation: by a container kubelet did not allocate the device ' +
      '(kind="container", also in vgpu_container_*), or by processes in no Kubernetes pod (kind="host")',
  ),
  gauge(
    'vgpu_unallocated_processes',
    [...CONTAINER_LABELS, 'kind'],
    'Processes using a GPU or MIG device outside any device allocation (kind="container" or "host")',
  ),
];

export type Labels = Record<string, string>;

/** A reading in another unit (`scaled(watts, 1000)`); undefined stays undefined (no series). */
export function scaled(value: number | undefined, factor: number): number | undefined {
  return value === undefined ? undefined : value * factor;
}

/**
 * Families and how to compute them from a snapshot: the monitor's own (MONITOR_FAMILY_SET), and the
 * opt-in compatibility sets (compat.ts).
 */
export interface FamilySet {
  definitions: readonly FamilyDefinition[];
  families(snapshot: MonitorSnapshot): MetricFamilies;
}

/** Collects samples per family, adding up those with identical labels (a restarted container's two IDs). */
export class FamilyBuilder {
  private readonly families = new Map<string, Map<string, Sample>>();

  add(name: string, labels: Labels, value: number | undefined, cap = Number.POSITIVE_INFINITY): void {
    if (value === undefined) return;
    const family = this.families.get(name) ?? new Map<string, Sample>();
    this.families.set(name, family);
    const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
    const previous = family.get(key)?.value ?? 0;
    family.set(key, { labels, value: Math.min(previous + value, cap) });
  }

  build(): MetricFamilies {
    return new Map([...this.families].map(([name, samples]) => [name, [...samples.values()]]));
  }
}

export function metricFamilies(snapshot: MonitorSnapshot): MetricFamilies {
  const out = new FamilyBuilder();
  addGpuInfo(out, snapshot);
  for (const { device, up, readings: r } of snapshot.devices) {
    const labels = deviceLabels(device);
    out.add('vgpu_gpu_up', labels, up ? 1 : 0);
    if (device.mig)
      out.add('vgpu_mig_device_info', { ...labels, mig_uuid: device.uuid, profile: device.mig.profile }, 1);
    out.add('vgpu_gpu_memory_total_bytes', labels, r.memoryTotalBytes);
    out.add('vgpu_gpu_memory_used_bytes', labels, r.memoryUsedBytes);
    out.add('vgpu_gpu_memory_free_bytes', labels, r.memoryFreeBytes);
    out.add('vgpu_gpu_memory_reserved_bytes', labels, r.memoryReservedBytes);
    out.add('vgpu_gpu_utilization_ratio', labels, r.gpuUtilizationRatio);
    out.add('vgpu_gpu_memory_controller_utilization_ratio', labels, r.memoryControllerUtilizationRatio);
    out.add('vgpu_gpu_temperature_celsius', labels, r.temperatureCelsius);
    out.add('vgpu_gpu_power_watts', labels, r.powerWatts);
    out.add('vgpu_gpu_energy_joules_total', labels, r.energyJoules);
    out.add('vgpu_gpu_sm_clock_hertz', labels, r.smClockHertz);
    out.add('vgpu_gpu_memory_clock_hertz', labels, r.memoryClockHertz);
  }
  for (const usage of snapshot.containers) addContainer(out, usage);
  for (const usage of snapshot.host) addHost(out, usage);
  for (const split of snapshot.splits ?? []) addSplit(out, split);
  addAllocations(out, snapshot);
  return out.build();
}

function addSplit(out: FamilyBuilder, split: SplitUsage): void {
  const labels = { ...deviceLabels(split.device), ...split.names };
  out.add('vgpu_container_memory_limit_bytes', labels, split.memoryLimitBytes);
  out.add('vgpu_container_sm_limit_ratio', labels, split.smLimitRatio, 1);
  out.add('vgpu_container_hami_memory_used_bytes', labels, split.hami?.memoryUsedBytes);
}

function addGpuInfo(out: FamilyBuilder, snapshot: MonitorSnapshot): void {
  for (const gpu of snapshot.gpus) {
    const labels: Labels = {
      uuid: gpu.uuid,
      gpu: String(gpu.index),
      model: gpu.model,
      pci_bus_id: gpu.busId,
      driver_version: snapshot.driverVersion,
      mig_mode: gpu.migMode,
    };
    if (snapshot.cudaDriverVersion !== null) labels.cuda_version = snapshot.cudaDriverVersion;
    out.add('vgpu_gpu_info', labels, 1);
  }
}

function addContainer(out: FamilyBuilder, usage: ContainerUsage): void {
  const labels = { ...deviceLabels(usage.device), ...containerLabels(usage) };
  out.add('vgpu_container_memory_used_bytes', labels, usage.memoryUsedBytes);
  out.add('vgpu_container_sm_utilization_ratio', labels, usage.smUtilizationRatio, 1);
  out.add('vgpu_container_processes', labels, usage.processCount);
  if (usage.allocation !== 'not-allocated') return;
  const unallocated = { ...labels, kind: 'container' };
  out.add('vgpu_unallocated_memory_used_bytes', unallocated, usage.memoryUsedBytes);
  out.add('vgpu_unallocated_processes', unallocated, usage.processCount);
}

function addHost(out: FamilyBuilder, usage: HostUsage): void {
  const labels = { ...deviceLabels(usage.device), kind: 'host' };
  out.add('vgpu_unallocated_memory_used_bytes', labels, usage.memoryUsedBytes);
  out.add('vgpu_unallocated_processes', labels, usage.processCount);
}

export const MONITOR_FAMILY_SET: FamilySet = { definitions: MONITOR_FAMILIES, families: metricFamilies };
/** One series per allocated device ID, labelled like the container series of the device behind it. */
function addAllocations(out: FamilyBuilder, snapshot: MonitorSnapshot): void {
  if (!snapshot.allocations?.length) return;
  const devices = new Map(snapshot.devices.map(({ device }) => [device.uuid, device]));
  for (const allocation of snapshot.allocations) {
    const labels = allocationLabels(allocation, devices.get(allocation.uuid));
    out.add('vgpu_container_allocation_info', labels, 1, 1); // an info series is 1, even listed twice
  }
}

function allocationLabels(allocation: ContainerAllocation, device: MonitoredDevice | undefined): Labels {
  // A device this node's monitor does not watch keeps its UUID, without an index.
  const labels = device ? deviceLabels(device) : { uuid: allocation.uuid };
  return {
    ...labels,
    ...allocation.names,
    resource: allocation.resourceName,
    device_id: allocation.deviceId,
  };
}

/** The physical GPU (uuid, index) and, for a MIG device, its GPU and compute instance ids. */
export function deviceLabels(device: MonitoredDevice): Labels {
  const labels: Labels = { uuid: device.gpuUuid, gpu: String(device.gpuIndex) };
  if (device.mig) {
    labels.gpu_instance_id = String(device.mig.gpuInstanceId);
    labels.compute_instance_id = String(device.mig.computeInstanceId);
  }
  return labels;
}

/** Names when known; otherwise the pod UID and container ID the cgroup gives. */
function containerLabels(usage: ContainerUsage): Labels {
  if (usage.names) return { ...usage.names };
  const labels: Labels = { pod_uid: usage.podUid };
  if (usage.containerId !== undefined) labels.container_id = usage.containerId;
  return labels;
}
