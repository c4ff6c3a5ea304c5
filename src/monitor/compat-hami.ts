/**
 * `--compat hami`: the series HAMi's vGPU monitor exports and HAMi-WebUI reads (`hami_*`, with their
 * labels and the `zone="vGPU"` label HAMi adds), computed from the same snapshot (pure).
 *
 * Units stay HAMi's, so that HAMi-WebUI's panels keep meaning what they meant: the `_ratio` families
 * hold percentages (0-100), and the last-kernel family is an elapsed time. The figures are ours: memory
 * used is NVML's per container (HAMi reports HAMi-core's own accounting, which users find disagreeing
 * with the GPU's), utilisation our per-process estimate capped at 100 (HAMi sums HAMi-core's last samples,
 * which stay at a past peak once a process goes idle and add up past 100), and every container using a
 * GPU is reported, not only those under HAMi-core. A container's series need its names, so containers
 * known only by pod UID are left out. docs/metrics.md has the mapping table.
 */

import type { ContainerNames } from './containers.js';
import {
  FamilyBuilder,
  type FamilyDefinition,
  type FamilySet,
  gauge,
  type Labels,
  scaled,
} from './metric-families.js';
import type { ContainerUsage, GpuFacts, MonitorSnapshot, SplitUsage } from './snapshot.js';

export interface HamiCompatContext {
  /** the node's name, for the `node` label (HAMi's NODE_NAME) */
  nodeName?: string;
}

const HOST_LABELS = ['zone', 'node', 'device_index', 'device_uuid', 'device_type'] as const;
const CONTAINER_LABELS = ['zone', 'namespace', 'pod', 'container', 'vdevice_index', 'device_uuid'] as const;

export const HAMI_FAMILIES: readonly FamilyDefinition[] = [
  gauge('hami_host_gpu_memory_used_bytes', HOST_LABELS, 'GPU memory used on the node (HAMi compatible)'),
  gauge(
    'hami_host_gpu_utilization_ratio',
    HOST_LABELS,
    'GPU utilization in percent, 0-100 (HAMi compatible)',
  ),
  gauge(
    'hami_host_gpu_memory_controller_utilization_ratio',
    HOST_LABELS.filter((l) => l !== 'node'),
    'GPU memory controller utilization in percent, 0-100 (HAMi compatible)',
  ),
  gauge('hami_vgpu_memory_used_bytes', CONTAINER_LABELS, "GPU memory a container's processes use (NVML)"),
  gauge('hami_container_device_memory_bytes', CONTAINER_LABELS, 'Same value as hami_vgpu_memory_used_bytes'),
  gauge('hami_vgpu_memory_limit_bytes', CONTAINER_LABELS, "A split-slice container's memory limit"),
  gauge(
    'hami_container_device_utilization_ratio',
    CONTAINER_LABELS,
    "A container's estimated SM utilization in percent, 0-100 (HAMi compatible)",
  ),
  gauge('hami_vgpu_memory_context_bytes', CONTAINER_LABELS, 'CUDA context memory HAMi-core counts'),
  gauge('hami_vgpu_memory_module_bytes', CONTAINER_LABELS, 'CUDA module memory HAMi-core counts'),
  gauge('hami_vgpu_memory_buffer_bytes', CONTAINER_LABELS, 'Buffer (data) memory HAMi-core counts'),
  gauge(
    'hami_container_last_kernel_elapsed_seconds',
    CONTAINER_LABELS,
    'Seconds since a process of the container last launched a kernel, at collection time (HAMi-core)',
  ),
  gauge(
    'hami_mig_device_info',
    [...CONTAINER_LABELS, 'mig_uuid', 'profile', 'gpu_instance_id', 'compute_instance_id'],
    'Always 1: the MIG device a container uses',
  ),
];

export function hamiFamilySet(context: HamiCompatContext = {}): FamilySet {
  return { definitions: HAMI_FAMILIES, families: (snapshot) => hamiFamilies(snapshot, context) };
}

export function hamiFamilies(snapshot: MonitorSnapshot, context: HamiCompatContext = {}) {
  const out = new FamilyBuilder();
  addHostSeries(out, snapshot, context);
  const indexOf = containerDeviceIndex(snapshot);
  for (const usage of snapshot.containers) {
    if (!usage.names) continue;
    const labels = containerLabels(
      usage.names,
      indexOf(usage.names, usage.device.gpuUuid),
      usage.device.gpuUuid,
    );
    out.add('hami_vgpu_memory_used_bytes', labels, usage.memoryUsedBytes);
    out.add('hami_container_device_memory_bytes', labels, usage.memoryUsedBytes);
    out.add('hami_container_device_utilization_ratio', labels, scaled(usage.smUtilizationRatio, 100), 100);
    const mig = usage.device.mig;
    if (mig)
      out.add(
        'hami_mig_device_info',
        {
          ...labels,
          mig_uuid: usage.device.uuid,
          profile: mig.profile,
          gpu_instance_id: String(mig.gpuInstanceId),
          compute_instance_id: String(mig.computeInstanceId),
        },
        1,
      );
  }
  for (const split of snapshot.splits ?? []) addSplitSeries(out, split, snapshot.takenAtMs);
  return out.build();
}

function addHostSeries(out: FamilyBuilder, snapshot: MonitorSnapshot, context: HamiCompatContext): void {
  for (const gpu of snapshot.gpus) {
    const devices = snapshot.devices.filter((d) => d.up && d.device.gpuUuid === gpu.uuid);
    if (devices.length === 0) continue;
    const labels = hostLabels(gpu, context);
    // A MIG-enabled GPU's memory is its MIG devices' (the GPU itself has no reading).
    const used = devices.map((d) => d.readings.memoryUsedBytes).filter((v) => v !== undefined);
    out.add(
      'hami_host_gpu_memory_used_bytes',
      labels,
      used.length ? used.reduce((a, b) => a + b, 0) : undefined,
    );
    const whole = devices.find((d) => !d.device.mig)?.readings;
    out.add('hami_host_gpu_utilization_ratio', labels, scaled(whole?.gpuUtilizationRatio, 100));
    const { node: _node, ...withoutNode } = labels;
    out.add(
      'hami_host_gpu_memory_controller_utilization_ratio',
      withoutNode,
      scaled(whole?.memoryControllerUtilizationRatio, 100),
    );
  }
}

function addSplitSeries(out: FamilyBuilder, split: SplitUsage, takenAtMs: number): void {
  const labels = containerLabels(split.names, split.deviceIndex, split.device.gpuUuid);
  out.add('hami_vgpu_memory_limit_bytes', labels, split.memoryLimitBytes);
  const hami = split.hami;
  if (!hami) return;
  out.add('hami_vgpu_memory_context_bytes', labels, hami.contextBytes);
  out.add('hami_vgpu_memory_module_bytes', labels, hami.moduleBytes);
  out.add('hami_vgpu_memory_buffer_bytes', labels, hami.dataBytes);
  if (hami.lastKernelTimeSeconds !== undefined)
    out.add(
      'hami_container_last_kernel_elapsed_seconds',
      labels,
      Math.max(0, Math.floor(takenAtMs / 1000) - hami.lastKernelTimeSeconds),
    );
}

function hostLabels(gpu: GpuFacts, context: HamiCompatContext): Labels {
  const labels: Labels = { zone: 'vGPU' };
  if (context.nodeName) labels.node = context.nodeName;
  return {
    ...labels,
    device_index: String(gpu.index),
    device_uuid: gpu.uuid,
    device_type: `NVIDIA-${gpu.model}`, // HAMi's monitor prefixes NVML's name, whatever it is
  };
}

function containerLabels(names: ContainerNames, index: number, gpuUuid: string): Labels {
  return { zone: 'vGPU', ...names, vdevice_index: String(index), device_uuid: gpuUuid };
}

/**
 * A container's index for each of its GPUs (HAMi's `vdevice_index`): a split container's own device
 * order; otherwise the GPUs it uses, by NVML index.
 */
function containerDeviceIndex(snapshot: MonitorSnapshot): (names: ContainerNames, gpuUuid: string) => number {
  const key = (n: ContainerNames) => `${n.namespace}/${n.pod}/${n.container}`;
  const order = new Map<string, Map<string, number>>();
  for (const split of snapshot.splits ?? []) {
    const own = order.get(key(split.names)) ?? new Map<string, number>();
    own.set(split.device.gpuUuid, split.deviceIndex);
    order.set(key(split.names), own);
  }
  const used = new Map<string, ContainerUsage[]>();
  for (const u of snapshot.containers)
    if (u.names) used.set(key(u.names), [...(used.get(key(u.names)) ?? []), u]);
  return (names, gpuUuid) => {
    const fromSplit = order.get(key(names))?.get(gpuUuid);
    if (fromSplit !== undefined) return fromSplit;
    const gpus = [...new Map((used.get(key(names)) ?? []).map((u) => [u.device.gpuUuid, u.device.gpuIndex]))];
    gpus.sort((a, b) => a[1] - b[1]);
    return Math.max(
      0,
      gpus.findIndex(([uuid]) => uuid === gpuUuid),
    );
  };
}
