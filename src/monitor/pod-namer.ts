/**
 * Names containers from the pods on this node, followed through the API on the shared list/watch loop
 * (kube/list-watch.ts): a paged list selected by `spec.nodeName`, then a watch from its version, with
 * relists on 410 Gone and backoff while the API is unreachable. Never the cluster's pods.
 *
 * A cgroup gives a pod UID and a container ID; the pod's status gives each container's ID as
 * `<runtime>://<id>` (init and ephemeral containers included), stripped here to the bare ID the cgroup
 * carries. A static pod's cgroup carries kubelet's config hash, not the UID of its mirror pod in the
 * API: the mirror pod's `kubernetes.io/config.hash` annotation is indexed too. A deleted pod is
 * forgotten after a grace period, so the collection after its deletion still names its last
 * processes. Only names are kept, so memory follows the pods on the node (and those deleted within
 * the grace period).
 */
import type { Logger } from 'pino';
import type { KubeContainerStatus, KubePod, ObjectEvent, PodClient } from '../kube/client.js';
import { ListWatch } from '../kube/list-watch.js';
import type { ContainerNamer, ContainerNames } from './containers.js';

/** Where kubelet records a static pod's hash, the UID of its cgroup. */
export const CONFIG_HASH_ANNOTATION = 'kubernetes.io/config.hash';
const DEFAULT_FORGET_AFTER_MS = 30_000;
/** Pods per list page: a page stays far below the client's 8 MiB answer limit even with large pods. */
const LIST_PAGE_SIZE = 100;

export interface PodNamerOptions {
  nodeName: string;
  client: PodClient;
  logger: Logger;
  /** how long a deleted pod's names are kept; at least one collection interval (default 30 s) */
  forgetAfterMs?: number;
  /** backoff between failed attempts: doubles from initialMs up to maxMs, ±20% jitter */
  retry?: { initialMs?: number; maxMs?: number };
  /** how long the API server keeps one watch open; default 5–10 min */
  watchTimeoutSeconds?: number;
  /** monotonic clock, ms (tests) */
  now?: () => number;
}

/** What is kept of a pod: its names and its containers' IDs. */
interface KnownPod {
  uid: string;
  /** the static pod's config hash (its cgroup UID), when it is a mirror pod */
  configHash: string | undefined;
  namespace: string;
  name: string;
  /** container ID (bare) → container name */
  containers: Map<string, string>;
  /** when it was deleted (or missing from a relist); undefined while it exists */
  deletedAtMs: number | undefined;
}

export class PodNamer implements ContainerNamer {
  /** by `metadata.uid` */
  private readonly pods = new Map<string, KnownPod>();
  /** by every UID a cgroup may carry: `metadata.uid` and a static pod's config hash */
  private readonly byCgroupUid = new Map<string, KnownPod>();
  /** deleted pods kept for the grace period, oldest first */
  private readonly deleted = new Set<KnownPod>();
  private readonly listWatch: ListWatch<KubePod>;
  private readonly forgetAfterMs: number;
  private readonly now: () => number;
  private listed = false;

  private constructor(options: PodNamerOptions) {
    const { client, nodeName } = options;
    const fieldSelector = `spec.nodeName=${nodeName}`;
    this.forgetAfterMs = options.forgetAfterMs ?? DEFAULT_FORGET_AFTER_MS;
    this.now = options.now ?? (() => performance.now());
    this.listWatch = new ListWatch<KubePod>({
      source: {
        list: (signal) => listAllPods(client, fieldSelector, signal),
        watch: (request) => client.watchPods({ fieldSelector, ...request }),
      },
      description: `pods on node ${nodeName}`,
      watchName: 'pod watch',
      onList: (pods) => this.replaceAll(pods),
      onEvent: (event) => this.apply(event),
      logger: options.logger.child({ component: 'pod-namer', node: nodeName }),
      retry: options.retry,
      watchTimeoutSeconds: options.watchTimeoutSeconds,
    });
  }

  /**
   * Starts following the pods on the node. Resolves after the first attempt to list them, successful
   * or not (containers are then unnamed until the API answers).
   */
  static async start(options: PodNamerOptions): Promise<PodNamer> {
    const namer = new PodNamer(options);
    await namer.listWatch.start();
    return namer;
  }

  /** Ends the watch and the retries. */
  stop(): Promise<void> {
    return this.listWatch.stop();
  }

  /** Whether the pods have been listed at least once. */
  get synced(): boolean {
    return this.listed;
  }

  /** Pods whose names are kept now (live ones and those deleted within the grace period). */
  get knownPods(): number {
    this.forgetExpired();
    return this.pods.size;
  }

  namesOf(podUid: string, containerId: string | undefined): ContainerNames | undefined {
    this.forgetExpired();
    if (containerId === undefined) return undefined;
    const pod = this.byCgroupUid.get(podUid);
    const container = pod?.containers.get(containerId);
    return pod && container !== undefined
      ? { namespace: pod.namespace, pod: pod.name, container }
      : undefined;
  }

  /** A relist is the whole truth: known pods missing from it were deleted meanwhile. */
  private replaceAll(pods: readonly KubePod[]): void {
    this.listed = true;
    const present = new Set(pods.map((pod) => pod.metadata.uid));
    for (const pod of this.pods.values()) if (!present.has(pod.uid)) this.markDeleted(pod);
    for (const pod of pods) this.upsert(pod);
    this.forgetExpired();
  }

  private apply(event: ObjectEvent<KubePod>): void {
    if (event.type === 'DELETED') {
      const known = this.pods.get(event.object.metadata.uid);
      if (known) this.markDeleted(known);
    } else {
      this.upsert(event.object);
    }
    this.forgetExpired();
  }

  private upsert(object: KubePod): void {
    const pod = knownPod(object);
    const previous = this.pods.get(pod.uid);
    if (previous) {
      this.unindex(previous);
      this.deleted.delete(previous);
    }
    this.pods.set(pod.uid, pod);
    this.byCgroupUid.set(pod.uid, pod);
    if (pod.configHash !== undefined) this.byCgroupUid.set(pod.configHash, pod);
  }

  private markDeleted(pod: KnownPod): void {
    if (pod.deletedAtMs !== undefined) return;
    pod.deletedAtMs = this.now();
    this.deleted.add(pod);
  }

  private forgetExpired(): void {
    const now = this.now();
    for (const pod of this.deleted) {
      if (now - pod.deletedAtMs! < this.forgetAfterMs) break; // insertion order: the rest are newer
      this.deleted.delete(pod);
      this.pods.delete(pod.uid);
      this.unindex(pod);
    }
  }

  /** Removes a pod's index entries, unless a newer pod took them (a re-created mirror pod's hash). */
  private unindex(pod: KnownPod): void {
    for (const key of [pod.uid, pod.configHash]) {
      if (key !== undefined && this.byCgroupUid.get(key) === pod) this.byCgroupUid.delete(key);
    }
  }
}

/** Every page of the node's pods; the version is the list's (the same on every page). */
async function listAllPods(
  client: PodClient,
  fieldSelector: string,
  signal: AbortSignal,
): Promise<{ objects: KubePod[]; resourceVersion: string }> {
  const objects: KubePod[] = [];
  let next: string | undefined;
  let resourceVersion = '';
  do {
    const page = await client.listPods({ fieldSelector, limit: LIST_PAGE_SIZE, continue: next, signal });
    objects.push(...(page.items ?? []));
    resourceVersion = page.metadata.resourceVersion;
    next = page.metadata.continue || undefined;
  } while (next !== undefined);
  return { objects, resourceVersion };
}

function knownPod(object: KubePod): KnownPod {
  const { metadata, status } = object;
  const containers = new Map<string, string>();
  const statuses: KubeContainerStatus[] = [
    ...(status?.initContainerStatuses ?? []),
    ...(status?.containerStatuses ?? []),
    ...(status?.ephemeralContainerStatuses ?? []),
  ];
  for (const { name, containerID } of statuses) {
    const id = bareContainerId(containerID);
    if (id !== undefined) containers.set(id, name);
  }
  return {
    uid: metadata.uid,
    configHash: metadata.annotations?.[CONFIG_HASH_ANNOTATION] || undefined,
    namespace: metadata.namespace,
    name: metadata.name,
    containers,
    deletedAtMs: undefined,
  };
}

/** `containerd://<id>`, `cri-o://<id>`, `docker://<id>` → `<id>`; undefined before the container exists. */
export function bareContainerId(containerID: string | undefined): string | undefined {
  if (!containerID) return undefined;
  const separator = containerID.indexOf('://');
  const id = separator < 0 ? containerID : containerID.slice(separator + 3);
  return id === '' ? undefined : id.toLowerCase();
}
