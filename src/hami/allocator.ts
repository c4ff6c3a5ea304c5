/**
 * Allocate in HAMi mode: kubelet's replica IDs only carry a count; HAMi's scheduler has written which
 * GPU and how much of it each container gets. As HAMi's plugin does: find the pod being bound (the
 * node lock names it; else HAMi's fallback, a Pending pod on this node in bind phase allocating),
 * take the next container's entry of `hami.io/vgpu-devices-to-allocate` (init containers first),
 * answer with those GPUs and HAMi-core's limits, write the entry back consumed and, once nothing is
 * left, set bind phase success and release the lock. Any failure sets bind phase failed and releases
 * the lock, so the scheduler retries elsewhere; kubelet gets an error naming the pod and the reason.
 * Calls are serialized: the protocol is node-global.
 */
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { HamiSettings } from '../config/schema.js';
import type { HealthState } from '../devices/health-state.js';
import type { DeviceTarget } from '../devices/resource-types.js';
import { errorMessage } from '../errors.js';
import type { HamiKubeClient, HamiPod, KubeContainer } from '../kube/client.js';
import { KubeApiError } from '../kube/errors.js';
import type { ContainerAllocateResponse } from '../kubelet-api/proto.js';
import { type AllocateSettings, containerAllocateResponse } from '../plugin/allocate-response.js';
import { RequestError } from '../plugin/request-error.js';
import type { SplitAllocator } from '../plugin/split-allocation.js';
import { releaseNodeLock } from './node-lock.js';
import {
  ASSIGNED_NODE_ANNOTATION,
  BIND_PHASE_ANNOTATION,
  BIND_TIME_ANNOTATION,
  type BindPhase,
  type ContainerDevice,
  decodePodDevices,
  encodePodDevices,
  goTrue,
  NODE_LOCK_ANNOTATION,
  ProtocolError,
  parseNodeLock,
  TO_ALLOCATE_ANNOTATION,
  workLeft,
} from './protocol.js';

/** What an Allocate needs, read at the call: a config reload may change it. */
export interface HamiAllocateContext {
  settings: HamiSettings;
  allocate: AllocateSettings;
  health: HealthState;
  /** this resource's GPUs by UUID */
  gpus: ReadonlyMap<string, DeviceTarget>;
  /** mounts HAMi-core (shared with split slices) */
  hamiCore: SplitAllocator;
}

export interface HamiAllocatorOptions {
  client: HamiKubeClient;
  nodeName: string;
  logger: Logger;
  /** for tests: the time the lock's age is measured against */
  now?: () => Date;
  /** bound on each API call */
  apiTimeoutMs?: number;
}

/** A failure of one Allocate, with the pod when it is known: that pod is marked failed. */
class AllocateFailure extends Error {
  constructor(
    message: string,
    readonly pod: HamiPod | undefined,
    readonly code: status = status.FAILED_PRECONDITION,
  ) {
    super(message);
  }
}

const podName = (pod: HamiPod) => `${pod.metadata.namespace}/${pod.metadata.name}`;

export class HamiAllocator {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly logger: Logger;

  constructor(private readonly options: HamiAllocatorOptions) {
    this.logger = options.logger.child({ node: options.nodeName, hami: 'allocate' });
  }

  /** One Allocate call (each element: one container's replica IDs); one at a time, in call order. */
  allocate(
    requests: readonly (readonly string[])[],
    context: HamiAllocateContext,
  ): Promise<ContainerAllocateResponse[]> {
    const run = this.queue.then(() => this.allocateNow(requests, context));
    this.queue = run.catch(() => {});
    return run;
  }

  private async allocateNow(
    requests: readonly (readonly string[])[],
    context: HamiAllocateContext,
  ): Promise<ContainerAllocateResponse[]> {
    let pod: HamiPod | undefined;
    try {
      pod = await this.pendingPod(context.settings);
      const entries = decodeEntries(pod);
      const responses: ContainerAllocateResponse[] = [];
      for (const ids of requests) responses.push(await this.serveContainer(pod, entries, ids, context));
      const patched = await this.api((signal) =>
        this.options.client.patchPodAnnotations(
          pod!.metadata.namespace,
          pod!.metadata.name,
          { [TO_ALLOCATE_ANNOTATION]: encodePodDevices(entries) },
          signal,
        ),
      );
      if (!workLeft(patched.metadata.annotations?.[TO_ALLOCATE_ANNOTATION]))
        await this.finish(pod, 'success');
      this.logger.info({ pod: podName(pod), containers: requests.length }, 'HAMi allocation served');
      return responses;
    } catch (err) {
      const failure = asFailure(err, pod);
      if (failure.pod) await this.finish(failure.pod, 'failed');
      const where = failure.pod ? `pod ${podName(failure.pod)}` : `node ${this.options.nodeName}`;
      this.logger.warn(
        { pod: failure.pod && podName(failure.pod), err: failure.message },
        'HAMi allocation failed',
      );
      throw new RequestError(failure.code, `HAMi allocation for ${where} failed: ${failure.message}`);
    }
  }

  /** The pod the scheduler is binding here: the node lock's, else HAMi's fallback. */
  private async pendingPod(settings: HamiSettings): Promise<HamiPod> {
    const { client, nodeName } = this.options;
    const node = await this.api((signal) => client.getNode(nodeName, signal));
    const value = node.metadata.annotations?.[NODE_LOCK_ANNOTATION];
    if (value === undefined) return this.fallbackPod();
    let lock: ReturnType<typeof parseNodeLock>;
    try {
      lock = parseNodeLock(value);
    } catch (err) {
      // Garbage would keep the node locked for every pod: clear it.
      await this.releaseLock(undefined);
      throw err;
    }
    if (lock.pod === '') return this.fallbackPod();
    const pod = await this.lockedPod(lock.namespace, lock.pod);
    const ageMs = (this.options.now?.() ?? new Date()).getTime() - lock.time.getTime();
    if (ageMs > settings.nodeLockTimeoutSeconds * 1000) {
      throw new AllocateFailure(
        `node lock ${NODE_LOCK_ANNOTATION}=${value} expired (older than ${settings.nodeLockTimeoutSeconds} s): the scheduler may have given the node to another pod`,
        pod,
      );
    }
    return pod;
  }

  /** The pod the lock names; a lock naming no existing pod is released (the scheduler does the same). */
  private async lockedPod(namespace: string, name: string): Promise<HamiPod> {
    try {
      return await this.api((signal) => this.options.client.getPod(namespace, name, signal));
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 404)) throw err;
      await this.releaseLock(undefined);
      throw new AllocateFailure(
        `the node lock names pod ${namespace}/${name}, which does not exist`,
        undefined,
      );
    }
  }

  /**
   * HAMi's fallback: a Pending pod bound here whose bind phase is allocating (or success), and, unlike
   * HAMi, with GPUs left to hand out. A pod just served stays Pending (success) until its containers
   * start; an Allocate racing it (several in flight while the lock named one pod) would otherwise
   * pick it again, find nothing left and overwrite its success with failed.
   */
  private async fallbackPod(): Promise<HamiPod> {
    const { client, nodeName } = this.options;
    const pods = await this.api((signal) => client.listPodsOnNode(nodeName, signal));
    const pod = pods.find((p) => {
      const a = p.metadata.annotations ?? {};
      const phase = a[BIND_PHASE_ANNOTATION];
      return (
        p.status?.phase === 'Pending' &&
        a[BIND_TIME_ANNOTATION] !== undefined &&
        (phase === 'allocating' || phase === 'success') &&
        a[ASSIGNED_NODE_ANNOTATION] === nodeName &&
        workLeft(a[TO_ALLOCATE_ANNOTATION])
      );
    });
    if (!pod) {
      throw new AllocateFailure(
        `no pod being bound: no ${NODE_LOCK_ANNOTATION} naming a pod, and no Pending pod assigned to this node with ${BIND_PHASE_ANNOTATION}=allocating and GPUs left in ${TO_ALLOCATE_ANNOTATION}`,
        undefined,
      );
    }
    return pod;
  }

  /** One container: its entry, checked against kubelet's request and this node's GPUs. */
  private async serveContainer(
    pod: HamiPod,
    entries: ContainerDevice[][],
    ids: readonly string[],
    context: HamiAllocateContext,
  ): Promise<ContainerAllocateResponse> {
    const { container, devices } = popNextContainer(pod, entries);
    if (devices.length !== ids.length) {
      throw new AllocateFailure(
        `device number not matched: ${TO_ALLOCATE_ANNOTATION} gives container ${container.name} ${devices.length} GPU(s), kubelet allocates ${ids.length}`,
        pod,
      );
    }
    const targets = devices.map((d) => checkedTarget(d, container, context));
    const response = containerAllocateResponse(
      targets.map((target) => ({ id: target.uuid, target })),
      context.allocate,
    );
    response.envs = { ...response.envs, ...hamiCoreEnvs(devices, container, context.settings) };
    await context.hamiCore.attach(response, {
      containerDir: `${pod.metadata.uid}_${container.name}`,
      record: {
        pod: podName(pod),
        container: container.name,
        devices,
        allocatedAt: new Date().toISOString(),
        // the split slices' fields: the monitor joins the directory to its container through kubelet's
        // IDs and reports the limits (0 cores, or disableCoreLimit: no compute limit, 100 %)
        resource: context.settings.resourceCountName,
        deviceIds: ids,
        limits: devices.map((d) => ({
          uuid: d.uuid,
          memoryMiB: d.memoryMiB,
          corePercent: d.cores === 0 || context.settings.disableCoreLimit ? 100 : d.cores,
        })),
      },
      preload: !goTrue(container.env?.find((e) => e.name === 'CUDA_DISABLE_CONTROL')?.value),
    });
    return response;
  }

  /** Bind phase, then the lock; failures are logged (the scheduler's timeouts cover them). */
  private async finish(pod: HamiPod, phase: BindPhase): Promise<void> {
    const { namespace, name } = pod.metadata;
    try {
      await this.api((signal) =>
        this.options.client.patchPodAnnotations(namespace, name, { [BIND_PHASE_ANNOTATION]: phase }, signal),
      );
    } catch (err) {
      this.logger.error({ err, pod: podName(pod), phase }, 'cannot set the HAMi bind phase');
    }
    await this.releaseLock(pod);
  }

  private async releaseLock(pod: HamiPod | undefined): Promise<void> {
    try {
      await releaseNodeLock(this.options.client, this.options.nodeName, pod?.metadata, (call) =>
        this.api(call),
      );
    } catch (err) {
      this.logger.error({ err, pod: pod && podName(pod) }, 'cannot release the HAMi node lock');
    }
  }

  private api<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return call(AbortSignal.timeout(this.options.apiTimeoutMs ?? 10_000));
  }
}

function decodeEntries(pod: HamiPod): ContainerDevice[][] {
  const annotation = pod.metadata.annotations?.[TO_ALLOCATE_ANNOTATION];
  if (annotation === undefined)
    throw new AllocateFailure(`the pod has no ${TO_ALLOCATE_ANNOTATION} annotation`, pod);
  try {
    return decodePodDevices(annotation);
  } catch (err) {
    throw new AllocateFailure(errorMessage(err), pod);
  }
}

/** The first entry with devices, emptied in place; its index maps to init containers, then containers. */
function popNextContainer(
  pod: HamiPod,
  entries: ContainerDevice[][],
): { container: KubeContainer; devices: ContainerDevice[] } {
  const inits = pod.spec.initContainers ?? [];
  const index = entries.findIndex((devices) => devices.length > 0);
  if (index < 0)
    throw new AllocateFailure(`${TO_ALLOCATE_ANNOTATION} has no container left to allocate`, pod);
  const devices = entries[index]!;
  entries[index] = [];
  const container = index < inits.length ? inits[index] : pod.spec.containers[index - inits.length];
  if (!container) {
    throw new AllocateFailure(
      `${TO_ALLOCATE_ANNOTATION} entry ${index} has no container (${inits.length} init, ${pod.spec.containers.length} regular)`,
      pod,
    );
  }
  return { container, devices };
}

function checkedTarget(
  device: ContainerDevice,
  container: KubeContainer,
  context: HamiAllocateContext,
): DeviceTarget {
  const target = context.gpus.get(device.uuid);
  if (!target)
    throw new AllocateFailure(
      `GPU ${device.uuid} (container ${container.name}) is not on this node`,
      undefined,
    );
  if (!context.health.isHealthy(target)) {
    throw new AllocateFailure(`GPU ${device.uuid} (container ${container.name}) is Unhealthy`, undefined);
  }
  return target;
}

/** HAMi-core's environment, as HAMi's plugin sets it, plus the priority from the container's limit. */
function hamiCoreEnvs(
  devices: readonly ContainerDevice[],
  container: KubeContainer,
  settings: HamiSettings,
): Record<string, string> {
  const envs: Record<string, string> = {};
  devices.forEach((d, i) => {
    envs[`CUDA_DEVICE_MEMORY_LIMIT_${i}`] = `${d.memoryMiB}m`;
  });
  // HAMi-core takes one SM limit for every device; HAMi sets it from the first.
  envs.CUDA_DEVICE_SM_LIMIT = String(devices[0]!.cores);
  if (settings.deviceMemoryScaling > 1) envs.CUDA_OVERSUBSCRIBE = 'true';
  if (settings.libCudaLogLevel !== null) envs.LIBCUDA_LOG_LEVEL = settings.libCudaLogLevel;
  if (settings.disableCoreLimit) envs.GPU_CORE_UTILIZATION_POLICY = 'disable';
  const priority = container.resources?.limits?.[settings.resourcePriorityName];
  if (priority !== undefined && /^\d+$/.test(String(priority))) envs.CUDA_TASK_PRIORITY = String(priority);
  return envs;
}

/** A pod known at the time of a failure stays attached to it; API failures say the API failed. */
function asFailure(err: unknown, pod: HamiPod | undefined): AllocateFailure {
  if (err instanceof AllocateFailure)
    return err.pod || !pod ? err : new AllocateFailure(err.message, pod, err.code);
  if (err instanceof ProtocolError) return new AllocateFailure(err.message, pod);
  if (err instanceof KubeApiError)
    return new AllocateFailure(`Kubernetes API: ${err.message}`, pod, status.UNAVAILABLE);
  return new AllocateFailure(errorMessage(err), pod, status.INTERNAL);
}
