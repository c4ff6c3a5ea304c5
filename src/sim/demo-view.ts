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

/**
 * `GPU 2`, `MIG 0:1 2g.10gb`; a replica or slice ID (`<uuid>::n`, HAMi's `<uuid>-n`) keeps its ID and
 * names its GPU after it.
 */
export function describeDevice(inventory: Inventory, id: string): string {
  const device = deviceOf(inventory, id);
  if (!device) return id;
  return device.uuid === id ? device.label : `${id} (${device.label})`;
}

/** The GPU or MIG device an advertised ID is, or is a share of. */
export function deviceOf(inventory: Inventory, id: string): { uuid: string; label: string } | undefined {
  const isOf = (uuid: string) => id === uuid || id.startsWith(`${uuid}::`) || id.startsWith(`${uuid}-`);
  for (const gpu of inventory.gpus) {
    if (isOf(gpu.uuid)) return { uuid: gpu.uuid, label: `GPU ${gpu.index}` };
    const mig = gpu.migDevices.find((m) => isOf(m.uuid));
    if (mig) return { uuid: mig.uuid, label: `MIG ${mig.index} ${mig.profile}` };
  }
  return undefined;
}

function summarise(ids: string[]): string {
  return ids.length <= 2 ? ids.join(', ') : `${ids[0]} and ${ids.length - 1} more`;
}
