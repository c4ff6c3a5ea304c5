/**
 * `--compat dcgm`: the `DCGM_FI_DEV_*` series that dcgm-exporter's Grafana dashboard and the
 * dashboards and alerts written for it read, with dcgm-exporter's names, units (MiB, MHz, %, mJ) and
 * labels (`gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`, `Hostname`, `DCGM_FI_DRIVER_VERSION`,
 * MIG `GPU_I_PROFILE`/`GPU_I_ID`, and `namespace`/`pod`/`container`), computed from the same snapshot
 * (pure).
 *
 * The difference is the Kubernetes labels of a shared GPU. dcgm-exporter labels a device's series with
 * one of its pods (time-slicing: a random one) or copies the device's value to each. Here a device used
 * by one container only is labelled with it; on a device several containers use, FB_USED and GPU_UTIL
 * get one series per container with its own share, plus one without pod labels for the rest (host
 * processes, what per-process figures miss), so `sum by (gpu)` is the device's value; the other fields
 * stay one series per device without pod labels. docs/metrics.md has the mapping table.
 */
import {
  counter,
  FamilyBuilder,
  type FamilyDefinition,
  type FamilySet,
  gauge,
  type Labels,
  scaled,
} from './metric-families.js';
import type { ContainerUsage, DeviceSnapshot, GpuFacts, MonitorSnapshot } from './snapshot.js';

export interface DcgmCompatContext {
  /** the node's name, for the `Hostname` label (dcgm-exporter's NODE_NAME); no label when undefined */
  nodeName?: string;
}

const MiB = 1024 * 1024;
const DEVICE_LABELS = [
  'gpu',
  'UUID',
  'pci_bus_id',
  'device',
  'modelName',
  'Hostname',
  'DCGM_FI_DRIVER_VERSION',
  'GPU_I_PROFILE',
  'GPU_I_ID',
  'namespace',
  'pod',
  'container',
  'pod_uid',
] as const;

const field = (name: string, help: string, type: 'gauge' | 'counter' = 'gauge'): FamilyDefinition =>
  (type === 'counter' ? counter : gauge)(`DCGM_FI_DEV_${name}`, DEVICE_LABELS, help);

export const DCGM_FAMILIES: readonly FamilyDefinition[] = [
  field('SM_CLOCK', 'SM clock frequency (in MHz).'),
  field('MEM_CLOCK', 'Memory clock frequency (in MHz).'),
  field('GPU_TEMP', 'GPU temperature (in C).'),
  field('POWER_USAGE', 'Power draw (in W).'),
  field(
    'TOTAL_ENERGY_CONSUMPTION',
    'Total energy consumption since the driver was loaded (in mJ).',
    'counter',
  ),
  field('GPU_UTIL', 'GPU utilization (in %); per container on a shared GPU (an estimate).'),
  field('MEM_COPY_UTIL', 'Memory utilization (in %).'),
  field('FB_FREE', 'Framebuffer memory free (in MiB).'),
  field('FB_USED', 'Framebuffer memory used (in MiB); per container on a shared GPU.'),
  field('FB_RESERVED', 'Framebuffer memory reserved (in MiB).'),
];

export function dcgmFamilySet(context: DcgmCompatContext = {}): FamilySet {
  return { definitions: DCGM_FAMILIES, families: (snapshot) => dcgmFamilies(snapshot, context) };
}

export function dcgmFamilies(snapshot: MonitorSnapshot, context: DcgmCompatContext = {}) {
  const out = new FamilyBuilder();
  const gpus = new Map(snapshot.gpus.map((g) => [g.uuid, g]));
  for (const device of snapshot.devices) {
    if (!device.up) continue;
    const gpu = gpus.get(device.device.gpuUuid);
    if (!gpu) continue;
    const labels = dcgmDeviceLabels(device, gpu, snapshot.driverVersion, context);
    const users = snapshot.containers.filter((c) => c.device.uuid === device.device.uuid);
    const hostUse = snapshot.host.some((h) => h.device.uuid === device.device.uuid);
    const sole = users.length === 1 && !hostUse ? users[0] : undefined;
    addDeviceFields(out, device, sole ? { ...labels, ...podLabels(sole) } : labels);
    if (sole || users.length === 0)
      addSharedFields(out, device, sole ? { ...labels, ...podLabels(sole) } : labels);
    else addSplitFields(out, device, labels, users);
  }
  return out.build();
}

/** Fields that belong to the device alone: one series, with pod labels only when one container uses it. */
function addDeviceFields(out: FamilyBuilder, { readings: r }: DeviceSnapshot, labels: Labels): void {
  out.add('DCGM_FI_DEV_SM_CLOCK', labels, scaled(r.smClockHertz, 1e-6));
  out.add('DCGM_FI_DEV_MEM_CLOCK', labels, scaled(r.memoryClockHertz, 1e-6));
  out.add('DCGM_FI_DEV_GPU_TEMP', labels, r.temperatureCelsius);
  out.add('DCGM_FI_DEV_POWER_USAGE', labels, r.powerWatts);
  out.add('DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION', labels, scaled(r.energyJoules, 1000));
  out.add('DCGM_FI_DEV_MEM_COPY_UTIL', labels, scaled(r.memoryControllerUtilizationRatio, 100));
  out.add('DCGM_FI_DEV_FB_FREE', labels, scaled(r.memoryFreeBytes, 1 / MiB));
  out.add('DCGM_FI_DEV_FB_RESERVED', labels, scaled(r.memoryReservedBytes, 1 / MiB));
}

/** FB_USED and GPU_UTIL of a device one container (or none) uses: the device's own figures. */
function addSharedFields(out: FamilyBuilder, { readings: r }: DeviceSnapshot, labels: Labels): void {
  out.add('DCGM_FI_DEV_FB_USED', labels, scaled(r.memoryUsedBytes, 1 / MiB));
  out.add('DCGM_FI_DEV_GPU_UTIL', labels, scaled(r.gpuUtilizationRatio, 100));
}

/** FB_USED and GPU_UTIL of a shared device: each container's share, and the rest without pod labels. */
function addSplitFields(
  out: FamilyBuilder,
  { readings: r }: DeviceSnapshot,
  labels: Labels,
  users: readonly ContainerUsage[],
): void {
  let memory = 0;
  let util = 0;
  for (const usage of users) {
    const own = { ...labels, ...podLabels(usage) };
    out.add('DCGM_FI_DEV_FB_USED', own, scaled(usage.memoryUsedBytes, 1 / MiB));
    memory += usage.memoryUsedBytes ?? 0;
    if (r.gpuUtilizationRatio !== undefined && usage.smUtilizationRatio !== undefined) {
      out.add('DCGM_FI_DEV_GPU_UTIL', own, usage.smUtilizationRatio * 100);
      util += usage.smUtilizationRatio;
    }
  }
  if (r.memoryUsedBytes !== undefined)
    out.add('DCGM_FI_DEV_FB_USED', labels, Math.max(0, r.memoryUsedBytes - memory) / MiB);
  if (r.gpuUtilizationRatio !== undefined)
    out.add('DCGM_FI_DEV_GPU_UTIL', labels, Math.max(0, r.gpuUtilizationRatio - util) * 100);
}

function dcgmDeviceLabels(
  { device }: DeviceSnapshot,
  gpu: GpuFacts,
  driverVersion: string,
  context: DcgmCompatContext,
): Labels {
  const labels: Labels = {
    gpu: String(gpu.index),
    UUID: gpu.uuid,
    pci_bus_id: nvmlBusId(gpu.busId),
    device: `nvidia${gpu.index}`,
    modelName: gpu.model,
  };
  if (context.nodeName) labels.Hostname = context.nodeName;
  labels.DCGM_FI_DRIVER_VERSION = driverVersion;
  if (device.mig) {
    labels.GPU_I_PROFILE = device.mig.profile;
    labels.GPU_I_ID = String(device.mig.gpuInstanceId);
  }
  return labels;
}

/** dcgm-exporter's Kubernetes labels; the pod UID where the names are not known. */
function podLabels(usage: ContainerUsage): Labels {
  return usage.names ? { ...usage.names } : { pod_uid: usage.podUid };
}

/** NVML's bus id form, which DCGM reports: an 8-digit domain, upper-case hex (`00000000:07:00.0`). */
export function nvmlBusId(sysfsBusId: string): string {
  const m = /^([0-9a-f]{4,8}):([0-9a-f]{2}:[0-9a-f]{2}\.[0-7])$/i.exec(sysfsBusId);
  return m ? `${m[1]!.padStart(8, '0')}:${m[2]}`.toUpperCase() : sysfsBusId;
}
