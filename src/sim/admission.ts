/**
 * One container's admission, as kubelet's device manager makes it: pick from the healthy free devices
 * (after the ones it must reuse), ask GetPreferredAllocation when the plugin offers it, then call
 * Allocate with exactly one container request. A failed call is recorded as the endpoint's last error.
 */
import { errorMessage } from '../errors.js';
import { type ContainerAllocateResponse__Output, HEALTHY } from '../kubelet-api/proto.js';
import type { ResourceEntry } from './kubelet-state.js';
import type { PluginEndpoint } from './plugin-endpoint.js';

export interface AllocationResult {
  deviceIds: string[];
  response: ContainerAllocateResponse__Output;
}

/** Picks `count` devices of the resource and has the plugin allocate them. */
export async function admitContainer(
  entry: ResourceEntry,
  endpoint: PluginEndpoint,
  count: number,
  reused: readonly string[],
): Promise<AllocationResult> {
  const { resourceName } = entry;
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`allocate ${resourceName}: count must be a positive integer, got ${count}`);
  }
  const mustInclude = [...new Set(reused)];
  const known = new Set(entry.devices.map((d) => d.ID));
  const unknown = mustInclude.filter((id) => !known.has(id));
  if (unknown.length > 0) {
    throw new Error(`allocate ${resourceName}: mustInclude has unknown devices ${unknown.join(', ')}`);
  }
  const free = entry.devices
    .filter((d) => d.health === HEALTHY && !entry.allocated.has(d.ID) && !mustInclude.includes(d.ID))
    .map((d) => d.ID);
  const available = [...mustInclude, ...free];
  if (available.length < count) {
    throw new Error(
      `requested number of devices unavailable for ${resourceName}. ` +
        `Requested: ${count}, Available: ${available.length}`,
    );
  }
  const chosen = mustInclude.slice(0, count);
  if (chosen.length < count && entry.options.get_preferred_allocation_available) {
    const preferred = await endpointCall(entry, 'GetPreferredAllocation', () =>
      endpoint.getPreferredAllocation(available, mustInclude, count),
    );
    fillFrom(chosen, preferred, free, count);
  }
  fillFrom(chosen, free, free, count);
  return allocateExactly(entry, endpoint, chosen);
}

/** Calls Allocate with exactly `ids` (no checks, no preferred allocation). */
export async function allocateExactly(
  entry: ResourceEntry,
  endpoint: PluginEndpoint,
  ids: string[],
): Promise<AllocationResult> {
  const response = await endpointCall(entry, 'Allocate', () => endpoint.allocate(ids));
  return { deviceIds: [...ids], response };
}

async function endpointCall<T>(entry: ResourceEntry, rpc: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const message = `${rpc} for ${entry.resourceName} failed: ${errorMessage(err)}`;
    entry.lastError = message;
    throw new Error(message, { cause: err });
  }
}

/** Moves IDs from `source` that are also in `allowed` into `chosen` until it holds `count`. */
function fillFrom(
  chosen: string[],
  source: readonly string[],
  allowed: readonly string[],
  count: number,
): void {
  for (const id of source) {
    if (chosen.length >= count) return;
    if (allowed.includes(id) && !chosen.includes(id)) chosen.push(id);
  }
}
