/**
 * A kubelet simulator for integration tests and the demo: it serves `v1beta1.Registration` on
 * `<dir>/kubelet.sock` and talks to device plugins the way kubelet's device manager does
 * (reference: kubelet-nvml-koffi.md §A "Kubelet-side behaviour"), and can serve `v1.PodResourcesLister`
 * from its admissions. The roles are apart: kubelet-registration.ts (Register and the dial-back),
 * plugin-endpoint.ts (the calls kubelet makes on a plugin), admission.ts (one container's devices),
 * pod-resources.ts (the lister), kube/names.ts (which resource names kubelet accepts); this class
 * keeps the state and the lifecycle.
 *
 * - Every ListAndWatch message replaces the device list; when the stream ends the resource's
 *   endpoint is stopped (allocatable 0, capacity kept).
 * - allocate(): one container's admission (GetPreferredAllocation if offered, then one Allocate with
 *   exactly one container request).
 * - restart(): stop, delete every socket in the directory, re-create kubelet.sock.
 */
import { EventEmitter } from 'node:events';
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Device__Output,
  type DevicePluginOptions__Output,
  KUBELET_SOCKET_NAME,
  type RegisterRequest__Output,
} from '../kubelet-api/proto.js';
import { type AllocationResult, admitContainer, allocateExactly } from './admission.js';
import { RegistrationServer } from './kubelet-registration.js';
import {
  type Admission,
  type ContainerRef,
  cloneDevice,
  describeState,
  type KubeletState,
  newEntry,
  type ResourceEntry,
  type ResourceState,
  snapshot,
} from './kubelet-state.js';
import type { PluginEndpoint } from './plugin-endpoint.js';
import { PodResourcesServer } from './pod-resources.js';

export type { AllocationResult } from './admission.js';
export type { ContainerRef, KubeletState, ResourceState } from './kubelet-state.js';

export interface KubeletSimulatorOptions {
  /** Device plugin directory (kubelet's /var/lib/kubelet/device-plugins). Created if missing. */
  dir: string;
  /** Deadline of the dial-back to a registering plugin (kubelet: 10 s). */
  dialTimeoutMs?: number;
  /** Pause between deleting the sockets and re-creating kubelet.sock in restart() (default 50 ms). */
  restartDelayMs?: number;
  /** Serve PodResources (List, Get, GetAllocatableResources) on this socket, from the admissions. */
  podResourcesSocket?: string;
}

export interface DisconnectEvent {
  resourceName: string;
  endpoint: string;
  reason: string;
}

export interface KubeletSimulatorEvents {
  /** Any change of the observable state. */
  update: [];
  /** A registration succeeded (after the dial-back and GetDevicePluginOptions). */
  register: [resource: ResourceState];
  /** An endpoint stopped: its ListAndWatch stream ended, or the kubelet restarted/stopped. */
  disconnect: [event: DisconnectEvent];
  /** kubelet.sock was re-created by restart(). */
  restart: [];
}

export interface WaitForOptions {
  timeoutMs?: number;
  /** Used in the timeout message instead of the predicate's source. */
  description?: string;
}

const DEFAULT_DIAL_TIMEOUT_MS = 10_000;
const DEFAULT_RESTART_DELAY_MS = 50;
const DEFAULT_WAIT_TIMEOUT_MS = 5_000;

/** Simulated kubelet device manager. Create it with `KubeletSimulator.start({ dir })`. */
export class KubeletSimulator extends EventEmitter<KubeletSimulatorEvents> {
  readonly dir: string;
  readonly socketPath: string;
  /** where PodResources is served, when asked for */
  readonly podResourcesSocket: string | undefined;
  private readonly dialTimeoutMs: number;
  private readonly restartDelayMs: number;
  private registration: RegistrationServer | null = null;
  private podResources: PodResourcesServer | null = null;
  private readonly entries = new Map<string, ResourceEntry>();
  /** Register RPCs received per resource name, answered or not (a plugin should send one per restart). */
  private readonly registerCallCounts = new Map<string, number>();
  /** What each admitted container holds, for PodResources; release() takes devices back. */
  private admissions: Admission[] = [];
  private admitted = 0;
  private readonly waiters = new Set<(err: Error) => void>();
  private stopped = false;
  /** Admissions run one at a time, like kubelet's device manager under its mutex. */
  private admission: Promise<unknown> = Promise.resolve();
  private restarting: Promise<unknown> = Promise.resolve();

  private constructor(options: KubeletSimulatorOptions) {
    super();
    this.setMaxListeners(0);
    this.dir = resolve(options.dir);
    this.socketPath = join(this.dir, KUBELET_SOCKET_NAME);
    this.podResourcesSocket = options.podResourcesSocket && resolve(options.podResourcesSocket);
    this.dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    this.restartDelayMs = options.restartDelayMs ?? DEFAULT_RESTART_DELAY_MS;
  }

  /**
   * Creates the directory if needed and serves Registration on `<dir>/kubelet.sock` (and PodResources
   * on its socket, when asked for).
   */
  static async start(options: KubeletSimulatorOptions): Promise<KubeletSimulator> {
    const kubelet = new KubeletSimulator(options);
    await mkdir(kubelet.dir, { recursive: true });
    await kubelet.listen();
    return kubelet;
  }

  /** A snapshot of every resource kubelet knows (including stopped and checkpointed ones). */
  resources(): KubeletState {
    return new Map([...this.entries].map(([name, entry]) => [name, snapshot(entry)]));
  }

  resource(resourceName: string): ResourceState | undefined {
    const entry = this.entries.get(resourceName);
    return entry ? snapshot(entry) : undefined;
  }

  /**
   * Resolves with the state once `predicate` holds (checked now and on every 'update'); rejects on
   * timeout with the current state in the message, or when the simulator stops.
   */
  waitFor(predicate: (state: KubeletState) => boolean, options: WaitForOptions = {}): Promise<KubeletState> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    const description = options.description ?? predicate.toString().slice(0, 300);
    return new Promise((resolvePromise, rejectPromise) => {
      const finish = (err: Error | null, state?: KubeletState): void => {
        clearTimeout(timer);
        this.off('update', check);
        this.waiters.delete(fail);
        if (err) rejectPromise(err);
        else resolvePromise(state!);
      };
      const fail = (err: Error): void => finish(err);
      const check = (): void => {
        try {
          const state = this.resources();
          if (predicate(state)) finish(null, state);
        } catch (err) {
          finish(err instanceof Error ? err : new Error(String(err)));
        }
      };
      const timer = setTimeout(() => {
        finish(
          new Error(
            `kubelet simulator: timed out after ${timeoutMs} ms waiting for ${description}; ` +
              `state: ${describeState(this.resources())}`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(fail);
      this.on('update', check);
      if (this.stopped) fail(new Error('kubelet simulator is stopped'));
      else check();
    });
  }

  /** Register calls received for `resourceName` over the simulator's life, whatever their outcome. */
  registerCalls(resourceName: string): number {
    return this.registerCallCounts.get(resourceName) ?? 0;
  }

  /**
   * Admits one container requesting `count` devices of `resourceName`, as kubelet does: pick from
   * healthy free devices (plus `mustInclude`, the devices it reuses), ask GetPreferredAllocation when
   * the plugin offers it, then call Allocate with exactly one container request. `container` names
   * it in PodResources (default: a pod of its own in `default`, container `main`).
   */
  allocate(
    resourceName: string,
    count: number,
    options: { mustInclude?: string[]; container?: ContainerRef } = {},
  ): Promise<AllocationResult> {
    return this.admit(resourceName, options.container, (entry, endpoint) =>
      admitContainer(entry, endpoint, count, options.mustInclude ?? []),
    );
  }

  /** Calls Allocate with exactly `ids` (no checks, no preferred allocation) and records them. */
  allocateIds(
    resourceName: string,
    ids: string[],
    options: { container?: ContainerRef } = {},
  ): Promise<AllocationResult> {
    return this.admit(resourceName, options.container, (entry, endpoint) =>
      allocateExactly(entry, endpoint, ids),
    );
  }

  /** Frees devices (the container ended). */
  release(resourceName: string, ids: string[]): void {
    const entry = this.entries.get(resourceName);
    if (!entry) return;
    for (const id of ids) entry.allocated.delete(id);
    const released = new Set(ids);
    this.admissions = this.admissions.flatMap((a) => {
      if (a.resourceName !== resourceName) return [a];
      const deviceIds = a.deviceIds.filter((id) => !released.has(id));
      return deviceIds.length > 0 ? [{ ...a, deviceIds }] : [];
    });
    this.emit('update');
  }

  /**
   * Simulates a kubelet restart: stop the Registration server, drop every plugin connection, delete
   * every socket file in the directory (not regular files or directories), wait, re-create
   * kubelet.sock. Known resources keep their names and allocations but have no devices and are not
   * connected until their plugin registers again. `keepPluginSockets`: only kubelet.sock is
   * re-created and the plugins' sockets stay, as when kubelet comes back without cleaning the
   * directory: a plugin then learns of the restart from kubelet.sock alone.
   */
  restart(options: { delayMs?: number; keepPluginSockets?: boolean } = {}): Promise<void> {
    // Restarts run one after the other, so two never race for kubelet.sock.
    const result = this.restarting.then(() =>
      this.restartNow(options.delayMs ?? this.restartDelayMs, options.keepPluginSockets ?? false),
    );
    this.restarting = result.catch(() => undefined);
    return result;
  }

  /** Stops serving, closes every plugin connection, removes kubelet.sock. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.shutdownServers();
    this.dropConnections('kubelet stopped', false);
    const err = new Error('kubelet simulator is stopped');
    for (const fail of [...this.waiters]) fail(err);
    await rm(this.socketPath, { force: true });
    if (this.podResourcesSocket) await rm(this.podResourcesSocket, { force: true });
  }

  private async restartNow(delayMs: number, keepPluginSockets: boolean): Promise<void> {
    this.assertRunning();
    this.shutdownServers();
    this.dropConnections('kubelet restarted', true);
    // listen() replaces kubelet.sock either way.
    if (!keepPluginSockets) await removeSockets(this.dir);
    this.emit('update');
    await sleep(delayMs);
    if (this.stopped) return;
    await this.listen();
    this.emit('restart');
    this.emit('update');
  }

  private async listen(): Promise<void> {
    const registration = await RegistrationServer.listen({
      socketPath: this.socketPath,
      dir: this.dir,
      dialTimeoutMs: this.dialTimeoutMs,
      received: (request) => this.countRegisterCall(request),
      registered: (request, endpoint, options) => this.installEndpoint(request, endpoint, options),
    });
    const podResources = this.podResourcesSocket
      ? await PodResourcesServer.listen(this.podResourcesSocket, {
          admissions: () => this.admissions,
          devices: () => new Map([...this.entries].map(([name, entry]) => [name, entry.devices])),
        })
      : null;
    if (this.stopped) {
      // stop() ran while binding.
      registration.shutdown();
      podResources?.shutdown();
      await rm(this.socketPath, { force: true });
      return;
    }
    this.registration = registration;
    this.podResources = podResources;
  }

  // --- Registration ---------------------------------------------------------------------------

  private countRegisterCall(request: RegisterRequest__Output): void {
    const name = request.resource_name;
    this.registerCallCounts.set(name, this.registerCalls(name) + 1);
  }

  /** The newest registration wins: the old endpoint is closed. Returns what starts ListAndWatch. */
  private installEndpoint(
    request: RegisterRequest__Output,
    endpoint: PluginEndpoint,
    options: DevicePluginOptions__Output,
  ): () => void {
    const resourceName = request.resource_name;
    const entry = this.entries.get(resourceName) ?? newEntry(resourceName);
    this.entries.set(resourceName, entry);
    entry.conn?.close();
    entry.conn = endpoint;
    entry.endpoint = request.endpoint;
    entry.options = { ...options };
    entry.registrations += 1;
    entry.lastError = null;
    this.emit('register', snapshot(entry));
    this.emit('update');
    return () =>
      endpoint.listAndWatch(
        (devices) => this.devicesListed(entry, devices),
        ({ reason }) => {
          entry.lastError = reason;
          this.stopEndpoint(entry, reason, false);
        },
      );
  }

  private devicesListed(entry: ResourceEntry, devices: Device__Output[]): void {
    entry.devices = devices.map(cloneDevice);
    this.emit('update');
  }

  /** kubelet's PluginDisconnected: the endpoint is stopped, allocatable drops to 0. */
  private stopEndpoint(entry: ResourceEntry, reason: string, clearDevices: boolean): void {
    const conn = entry.conn;
    entry.conn = null;
    if (clearDevices) entry.devices = [];
    if (conn) {
      conn.close();
      this.emit('disconnect', { resourceName: entry.resourceName, endpoint: entry.endpoint, reason });
    }
    this.emit('update');
  }

  private dropConnections(reason: string, clearDevices: boolean): void {
    for (const entry of this.entries.values()) this.stopEndpoint(entry, reason, clearDevices);
  }

  /** Registrations still dialling back are refused with the server they came to. */
  private shutdownServers(): void {
    this.registration?.shutdown();
    this.registration = null;
    this.podResources?.shutdown();
    this.podResources = null;
  }

  private assertRunning(): void {
    if (this.stopped) throw new Error('kubelet simulator is stopped');
  }

  // --- Admission ------------------------------------------------------------------------------

  /** One admission at a time, on a live endpoint; what it got is recorded for PodResources. */
  private admit(
    resourceName: string,
    container: ContainerRef | undefined,
    run: (entry: ResourceEntry, endpoint: PluginEndpoint) => Promise<AllocationResult>,
  ): Promise<AllocationResult> {
    const result = this.admission.then(async () => {
      const { entry, endpoint } = this.liveEndpoint(resourceName);
      const allocation = await run(entry, endpoint);
      for (const id of allocation.deviceIds) entry.allocated.add(id);
      this.admitted += 1;
      const ref = container ?? { namespace: 'default', pod: `pod-${this.admitted}`, container: 'main' };
      this.admissions.push({ ...ref, resourceName, deviceIds: allocation.deviceIds });
      this.emit('update');
      return allocation;
    });
    this.admission = result.catch(() => undefined);
    return result;
  }

  private liveEndpoint(resourceName: string): { entry: ResourceEntry; endpoint: PluginEndpoint } {
    this.assertRunning();
    const entry = this.entries.get(resourceName);
    if (!entry) throw new Error(`unknown resource ${resourceName}: no device plugin registered it`);
    if (!entry.conn) throw new Error(`endpoint ${entry.endpoint} of ${resourceName} has been stopped`);
    return { entry, endpoint: entry.conn };
  }
}

/** Deletes the socket files in `dir` (kubelet's CleanupPluginDirectory); other entries stay. */
async function removeSockets(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    try {
      if ((await lstat(path)).isSocket()) await rm(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
