/**
 * What the monitor needs to know about Kubernetes containers, as two small interfaces the wiring
 * fills: names (from the API server's pods on this node, or the CRI) and device allocations (from
 * kubelet's PodResources). Without them the monitor still attributes GPU use exactly, labelled by pod
 * UID and container ID, and calls nothing "unallocated". An in-memory implementation of both serves
 * tests and the demo.
 */

export interface ContainerNames {
  namespace: string;
  pod: string;
  container: string;
}

/** Names a container from what its cgroup says (pod UID, container ID). */
export interface ContainerNamer {
  /** undefined when the container is not known (yet) */
  namesOf(podUid: string, containerId: string | undefined): ContainerNames | undefined;
}

/** Which devices kubelet allocated to a container. */
export interface AllocationSource {
  /**
   * The GPU and MIG device UUIDs allocated to the container (replicas and slices already mapped to
   * their physical device); an empty set when it was allocated none; undefined when the source does
   * not know the container, so its use is not called unallocated.
   */
  devicesOf(container: ContainerNames): ReadonlySet<string> | undefined;
}

export const NO_NAMES: ContainerNamer = { namesOf: () => undefined };
export const NO_ALLOCATIONS: AllocationSource = { devicesOf: () => undefined };

export interface KnownContainer {
  podUid: string;
  containerId: string;
  names: ContainerNames;
  /** GPU or MIG UUIDs; omit when allocations are unknown */
  devices?: readonly string[];
}

/** Both interfaces from a list a test (or the demo) declares. */
export class InMemoryContainers implements ContainerNamer, AllocationSource {
  private readonly byId = new Map<string, KnownContainer>();
  private readonly devicesByName = new Map<string, ReadonlySet<string>>();

  constructor(containers: readonly KnownContainer[] = []) {
    for (const container of containers) this.add(container);
  }

  /** Declares one more container (the demo's containers start after the monitor). */
  add(container: KnownContainer): void {
    this.byId.set(idKey(container.podUid, container.containerId), container);
    if (container.devices) this.devicesByName.set(nameKey(container.names), new Set(container.devices));
  }

  namesOf(podUid: string, containerId: string | undefined): ContainerNames | undefined {
    return containerId === undefined ? undefined : this.byId.get(idKey(podUid, containerId))?.names;
  }

  devicesOf(container: ContainerNames): ReadonlySet<string> | undefined {
    return this.devicesByName.get(nameKey(container));
  }
}

function idKey(podUid: string, containerId: string): string {
  return `${podUid}/${containerId}`;
}

function nameKey(names: ContainerNames): string {
  return `${names.namespace}/${names.pod}/${names.container}`;
}
