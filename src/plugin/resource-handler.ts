import type { ContainerAllocateResponse, Device } from '../kubelet-api/proto.js';

/**
 * What a device plugin server asks of the resource it serves. The server only translates between
 * kubelet and this interface; all device logic lives behind it.
 */
export interface ResourceHandler {
  readonly resourceName: string;
  /** The full list kubelet should see now (ID, health, NUMA topology). */
  listDevices(): Device[];
  /**
   * Exactly `size` IDs from `available`, must-include first. Rejects with RequestError a request that
   * does not fit the resource (unknown or repeated IDs, sizes that do not add up).
   */
  preferredAllocation(available: readonly string[], mustInclude: readonly string[], size: number): string[];
  /** Rejects with RequestError for IDs it cannot allocate (unknown, unhealthy, too many). */
  allocate(ids: readonly string[]): Promise<ContainerAllocateResponse>;
  /**
   * A whole Allocate call at once (one ID list per container), for resources whose answer depends on
   * the pod rather than on the IDs (HAMi mode). Without it, `allocate` answers each container.
   */
  readonly allocateContainers?:
    | ((requests: readonly (readonly string[])[]) => Promise<ContainerAllocateResponse[]>)
    | undefined;
}
