/**
 * Which devices kubelet allocated to which container, from kubelet's PodResources v1 `List` on its
 * Unix socket (`/var/lib/kubelet/pod-resources/kubelet.sock`). Polled on the monitor's interval with
 * a deadline, on grpc-js (nothing blocks the event loop); a poll never overlaps the previous one.
 * When a poll fails, the last good answer stays in use and the failure is logged once per streak.
 *
 * Each device ID of ours is mapped back to the GPU or MIG device behind it with the plugin's own ID
 * grammar (devices/resources.ts `parseDeviceId`): a whole device's UUID, a time-slicing replica's or
 * a split slice's `<uuid>::<n>`. Other plugins' devices are ignored. PodResources names containers
 * by namespace, pod and container name, with no pod UID or container ID: the monitor joins it to the
 * processes it sees through those names, which the API's pods give (pod-namer.ts).
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { parseDeviceId } from '../devices/resources.js';
import { errorMessage } from '../errors.js';
import {
  type ListPodResourcesResponse__Output,
  PodResourcesListerClient,
  unixTarget,
} from '../kubelet-api/proto.js';
import type { AllocationSource, ContainerAllocation, ContainerNames } from './containers.js';
import type { DeviceAssignment, DeviceAssignmentSource } from './split-directories.js';

/** kubelet's PodResources socket (`<root-dir>/pod-resources/kubelet.sock`). */
export const DEFAULT_POD_RESOURCES_SOCKET = '/var/lib/kubelet/pod-resources/kubelet.sock';
const DEFAULT_INTERVAL_MS = 5000;
const DEFAULT_TIMEOUT_MS = 5000;
/** A node with hundreds of pods, each listing CPUs and memory, can pass grpc-js' 4 MiB default. */
const MAX_RECEIVE_BYTES = 16 * 1024 * 1024;

export interface PodResourcesAllocationsOptions {
  /** default: kubelet's, DEFAULT_POD_RESOURCES_SOCKET */
  socketPath?: string;
  /** time between two polls (the monitor's collection interval; default 5 s) */
  intervalMs?: number;
  /** deadline of one List call (default 5 s) */
  timeoutMs?: number;
  /**
   * The node's GPU and MIG device UUIDs (from the inventory): an ID naming another device is not
   * ours. Without it, any ID of the plugin's form (`GPU-…`, `MIG-…`, `::<n>`) counts.
   */
  knownUuids?: ReadonlySet<string>;
  logger: Logger;
}

/** What one List said, indexed for the collector. */
interface Answer {
  byContainer: Map<string, Set<string>>;
  allocations: ContainerAllocation[];
}

export class PodResourcesAllocations implements AllocationSource, DeviceAssignmentSource {
  private readonly client: PodResourcesListerClient;
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private answer: Answer | undefined;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<boolean> | undefined;
  private stopped = false;

  private constructor(private readonly options: PodResourcesAllocationsOptions) {
    const socketPath = options.socketPath ?? DEFAULT_POD_RESOURCES_SOCKET;
    this.intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.logger = options.logger.child({ component: 'pod-resources', socket: socketPath });
    this.client = new PodResourcesListerClient(unixTarget(socketPath), grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
    });
  }

  /** Polls once (resolves when that poll is done, successful or not), then every interval until stop(). */
  static async start(options: PodResourcesAllocationsOptions): Promise<PodResourcesAllocations> {
    const source = new PodResourcesAllocations(options);
    await source.poll();
    source.scheduleNext();
    return source;
  }

  /** Stops polling and closes the channel. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.polling;
    this.client.close();
  }

  /** Whether kubelet has answered at least once. */
  get synced(): boolean {
    return this.answer !== undefined;
  }

  devicesOf(container: ContainerNames): ReadonlySet<string> | undefined {
    return this.answer?.byContainer.get(nameKey(container));
  }

  allocations(): readonly ContainerAllocation[] {
    return this.answer?.allocations ?? [];
  }

  /**
   * Every container's device IDs, per resource, for the split directories' join and their garbage
   * collection: only while kubelet's last List answered. An answer kept through an outage could miss
   * a container started since, and its directory must not be taken for an orphan.
   */
  async assignments(): Promise<readonly DeviceAssignment[] | undefined> {
    if (!this.answer || this.failures > 0) return undefined;
    return groupAssignments(this.answer.allocations);
  }

  /** One List now (joins the one in flight); true when kubelet answered. */
  poll(): Promise<boolean> {
    this.polling ??= this.list()
      .then((response) => {
        this.answer = indexAnswer(response, this.options.knownUuids);
        this.recovered();
        return true;
      })
      .catch((error: unknown) => {
        this.failed(error);
        return false;
      })
      .finally(() => {
        this.polling = undefined;
      });
    return this.polling;
  }

  private scheduleNext(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.poll().then(() => this.scheduleNext());
    }, this.intervalMs);
  }

  private list(): Promise<ListPodResourcesResponse__Output> {
    return new Promise((resolve, reject) => {
      this.client.List({}, { deadline: Date.now() + this.timeoutMs }, (err, response) =>
        err || !response ? reject(err ?? new Error('empty answer')) : resolve(response),
      );
    });
  }

  private failed(error: unknown): void {
    this.failures++;
    const err = errorMessage(error);
    if (this.failures > 1) {
      this.logger.debug({ err, failures: this.failures }, 'PodResources List still failing');
      return;
    }
    this.logger.warn(
      { err },
      this.answer
        ? 'cannot list PodResources from kubelet; keeping its last answer (next log when it recovers)'
        : 'cannot list PodResources from kubelet; allocations unknown until it answers (next log when it recovers)',
    );
  }

  private recovered(): void {
    if (this.failures === 0) return;
    this.logger.info({ failures: this.failures }, 'PodResources answers again');
    this.failures = 0;
  }
}

/**
 * Every container's devices of ours, by name; containers listed without any get an empty set. A device
 * on several NUMA nodes is listed once per node: it counts once.
 */
function indexAnswer(response: ListPodResourcesResponse__Output, knownUuids?: ReadonlySet<string>): Answer {
  const byContainer = new Map<string, Set<string>>();
  const allocations: ContainerAllocation[] = [];
  for (const pod of response.pod_resources) {
    for (const container of pod.containers) {
      const names = { namespace: pod.namespace, pod: pod.name, container: container.name };
      const devices = new Set<string>();
      const seen = new Set<string>();
      byContainer.set(nameKey(names), devices);
      for (const { resource_name: resourceName, device_ids: deviceIds } of container.devices) {
        for (const deviceId of deviceIds) {
          const parsed = parseDeviceId(deviceId, knownUuids);
          const key = `${resourceName}\n${deviceId}`;
          if (!parsed || (knownUuids && !knownUuids.has(parsed.uuid)) || seen.has(key)) continue;
          seen.add(key);
          devices.add(parsed.uuid);
          allocations.push({ names, resourceName, deviceId, uuid: parsed.uuid });
        }
      }
    }
  }
  return { byContainer, allocations };
}

/** Allocations (one per device ID) grouped per container and resource, in kubelet's order. */
export function groupAssignments(allocations: readonly ContainerAllocation[]): DeviceAssignment[] {
  const grouped = new Map<string, { names: ContainerNames; resource: string; deviceIds: string[] }>();
  for (const { names, resourceName, deviceId } of allocations) {
    const key = `${nameKey(names)}\n${resourceName}`;
    let entry = grouped.get(key);
    if (!entry) {
      entry = { names, resource: resourceName, deviceIds: [] };
      grouped.set(key, entry);
    }
    entry.deviceIds.push(deviceId);
  }
  return [...grouped.values()];
}

function nameKey(names: ContainerNames): string {
  return `${names.namespace}/${names.pod}/${names.container}`;
}
