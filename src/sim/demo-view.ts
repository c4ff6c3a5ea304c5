/**
 * How the demo shows what kubelet sees: one line per advertised resource, device IDs named by the GPU
 * or MIG device behind them. Pure functions of the kubelet simulator's state and the inventory.
 */
import type { Inventory } from '../devices/inventory-types.js';
import type { KubeletState, ResourceState } from './kubelet.js';

/** The resources kubelet has a live endpoint for, by name (a removed resource's entry stays behind). */
export function connectedResources(state: KubeletState): ResourceState[] {
  return [...state.values()]
    .filter((r) => r.connected)
    .sort((a, b) => a.resourceName.localeCompare(b.resourceName));
}

export function describeResources(state: KubeletState): string[] {
  return connectedResources(state).map((r) => {
    const unhealthy = r.devices.filter((d) => d.health !== 'Healthy');
    return (
      `${r.resourceName.padEnd(26)} ${String(r.devices.length).padStart(3)} devices, ${r.devices.length - unhealthy.length} healthy` +
      (unhealthy.length ? `  (Unhealthy: ${summarise(unhealthy.map((d) => d.ID))})` : '')
    );
  });
}

/** Devices kubelet could hand to a new container: healthy and not held by a pod. */
export function freeDevices(resource: ResourceState | undefined): number {
  if (!resource?.connected) return 0;
  const held = new Set(resource.allocated);
  return resource.devices.filter((d) => d.health === 'Healthy' && !held.has(d.ID)).length;
}

/** `GPU 2`, `MIG 0:1 2g.10gb`; a replica or slice ID keeps its `::n` and names its GPU after it. */
export function describeDevice(inventory: Inventory, id: string): string {
  const [uuid, share] = id.split('::');
  const label = deviceLabel(inventory, uuid!);
  if (!label) return id;
  return share === undefined ? label : `${id} (${label})`;
}

function deviceLabel(inventory: Inventory, uuid: string): string | undefined {
  for (const gpu of inventory.gpus) {
    if (gpu.uuid === uuid) return `GPU ${gpu.index}`;
    const mig = gpu.migDevices.find((m) => m.uuid === uuid);
    if (mig) return `MIG ${mig.index} ${mig.profile}`;
  }
  return undefined;
}

function summarise(ids: string[]): string {
  return ids.length <= 2 ? ids.join(', ') : `${ids[0]} and ${ids.length - 1} more`;
}
