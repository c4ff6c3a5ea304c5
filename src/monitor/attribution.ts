/**
 * From attributed processes to usage per container and per device (pure).
 *
 * Each process on a device counts for the container its cgroup names, or for the host when it is in
 * no pod. A container's memory is the sum of its processes'; its SM share the sum of theirs, clamped
 * to 1 (per-process samples are estimates and can add up past the device's own figure). Names and
 * allocations come from the given sources; a container whose allocation does not include the device
 * it uses is "not-allocated" (a pod that escaped its quota, for example with
 * NVIDIA_VISIBLE_DEVICES=all).
 */
import type { AllocationSource, ContainerNamer, ContainerNames } from './containers.js';
import type {
  AllocationState,
  ContainerUsage,
  DeviceSnapshot,
  HostUsage,
  MonitoredDevice,
  ProcessUsage,
} from './snapshot.js';

export interface UsageSummary {
  containers: ContainerUsage[];
  host: HostUsage[];
}

export function summarizeUsage(
  devices: readonly DeviceSnapshot[],
  namer: ContainerNamer,
  allocations: AllocationSource,
): UsageSummary {
  const containers: ContainerUsage[] = [];
  const host: HostUsage[] = [];
  for (const { device, processes } of devices) {
    const byContainer = new Map<string, ProcessUsage[]>();
    const outside: ProcessUsage[] = [];
    for (const p of processes) {
      if (!p.owner) {
        outside.push(p);
        continue;
      }
      const key = `${p.owner.podUid}/${p.owner.containerId ?? ''}`;
      byContainer.set(key, [...(byContainer.get(key) ?? []), p]);
    }
    for (const members of byContainer.values()) {
      containers.push(containerUsage(device, members, namer, allocations));
    }
    if (outside.length > 0) host.push({ device, ...totals(outside) });
  }
  return { containers, host };
}

function containerUsage(
  device: MonitoredDevice,
  members: readonly ProcessUsage[],
  namer: ContainerNamer,
  allocations: AllocationSource,
): ContainerUsage {
  const { podUid, containerId } = members[0]!.owner!;
  const names = namer.namesOf(podUid, containerId);
  const usage: ContainerUsage = {
    device,
    podUid,
    allocation: allocationOf(device, names, allocations),
    ...totals(members),
  };
  if (containerId !== undefined) usage.containerId = containerId;
  if (names) usage.names = { ...names };
  const sm = sumDefined(members.map((p) => p.smUtilizationRatio));
  if (sm !== undefined) usage.smUtilizationRatio = Math.min(roundRatio(sm), 1);
  return usage;
}

function allocationOf(
  device: MonitoredDevice,
  names: ContainerNames | undefined,
  allocations: AllocationSource,
): AllocationState {
  const devices = names ? allocations.devicesOf(names) : undefined;
  if (!devices) return 'unknown';
  // A MIG device is covered by its own allocation, or by one of its whole GPU.
  return devices.has(device.uuid) || devices.has(device.gpuUuid) ? 'allocated' : 'not-allocated';
}

function totals(processes: readonly ProcessUsage[]): { memoryUsedBytes?: number; processCount: number } {
  const memory = sumDefined(processes.map((p) => p.usedMemoryBytes));
  return memory === undefined
    ? { processCount: processes.length }
    : { memoryUsedBytes: memory, processCount: processes.length };
}

/**
 * NVML's whole percents as ratios add up with binary noise (0.35 + 0.05 = 0.39999999999999997):
 * six decimals keep every figure NVML can give and drop the noise.
 */
function roundRatio(ratio: number): number {
  return Math.round(ratio * 1e6) / 1e6;
}

/** The sum of the values given; undefined when none is. */
function sumDefined(values: readonly (number | undefined)[]): number | undefined {
  let sum: number | undefined;
  for (const v of values) if (v !== undefined) sum = (sum ?? 0) + v;
  return sum;
}
