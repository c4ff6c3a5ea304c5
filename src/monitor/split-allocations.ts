/**
 * kubelet's allocations read through the plugin's container directories (pure). A device ID usually
 * names its GPU (`<uuid>`, `<uuid>::<n>`), but in HAMi mode kubelet's `<uuid>-<n>` only counts
 * replicas: HAMi's scheduler chose the GPUs, and the container's directory lists them (SplitUsage's
 * deviceIds say which ID stands for which GPU). For a container joined to its directory, the
 * allocation source then answers with those GPUs, so its use of them is allocated and the allocation
 * `_info` series name them; every other container and ID is answered as the source answers.
 */
import type { AllocationSource, ContainerAllocation, ContainerNames } from './containers.js';
import type { SplitUsage } from './snapshot.js';

/** `source`, with the device IDs the split directories bind to a GPU mapped to that GPU. */
export function withSplitDeviceIds(
  source: AllocationSource,
  splits: readonly SplitUsage[] | undefined,
): AllocationSource {
  const bound = new Map<string, string>();
  for (const split of splits ?? []) {
    for (const id of split.deviceIds) bound.set(idKey(split.names, id), split.device.uuid);
  }
  if (bound.size === 0 || !source.allocations) return source;
  const allocations = source.allocations().map((a): ContainerAllocation => {
    const uuid = bound.get(idKey(a.names, a.deviceId));
    return uuid === undefined || uuid === a.uuid ? a : { ...a, uuid };
  });
  const rebound = new Map<string, Set<string>>();
  for (const a of allocations) {
    if (bound.has(idKey(a.names, a.deviceId))) rebound.set(nameKey(a.names), new Set());
  }
  for (const a of allocations) rebound.get(nameKey(a.names))?.add(a.uuid);
  return {
    devicesOf: (container) => rebound.get(nameKey(container)) ?? source.devicesOf(container),
    allocations: () => allocations,
  };
}

function nameKey(names: ContainerNames): string {
  return `${names.namespace}/${names.pod}/${names.container}`;
}

function idKey(names: ContainerNames, deviceId: string): string {
  return `${nameKey(names)}\n${deviceId}`;
}
