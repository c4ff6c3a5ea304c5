/**
 * A kubelet simulator for integration tests and the demo: it serves `v1beta1.Registration` on
 * `<dir>/kubelet.sock` and talks to device plugins the way kubelet's device manager does
 * (reference: kubelet-nvml-koffi.md §A "Kubelet-side behaviour").
 *
 * - Register: validate version and resource name, dial the plugin back (10 s), call
 *   GetDevicePluginOptions, only then answer OK; ListAndWatch starts afterwards.
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
import * as grpc from '@grpc/grpc-js';
import {
  type AllocateResponse__Output,
  type ContainerAllocateResponse__Output,
  type Device__Output,
  DevicePluginClient,
  type DevicePluginOptions__Output,
  type Empty,
  HEALTHY,
  KUBELET_API_VERSION,
  KUBELET_SOCKET_NAME,
  type ListAndWatchResponse__Output,
  type PreferredAllocationResponse__Output,
  type RegisterRequest__Output,
  type RegistrationHandlers,
  registrationService,
  unixTarget,
} from '../plugin/proto.js';

export interface KubeletSimulatorOptions {
  /** Device plugin directory (kubelet's /var/lib/kubelet/device-plugins). Created if missing. */
  dir: string;
  /** Deadline of the dial-back to a registering plugin (kubelet: 10 s). */
  dialTimeoutMs?: number;
  /** Pause between deleting the sockets and re-creating kubelet.sock in restart() (default 50 ms). */
  restartDelayMs?: number;
}

/** What the simulated kubelet knows about one extended resource (a snapshot; safe to keep). */
export interface ResourceState {
  resourceName: string;
  /** Socket file name the plugin registered, relative to the directory. */
  endpoint: string;
  /** As answered by GetDevicePluginOptions during registration. */
  options: DevicePluginOptions__Output;
  /** The latest ListAndWatch list ([] after a kubelet restart until the plugin sends a new one). */
  devices: Device__Output[];
  /** Successful registrations of this resource name over the simulator's life. */
  registrations: number;
  /** True while the endpoint is registered and its ListAndWatch stream is open. */
  connected: boolean;
  /** Node capacity: number of devices known. */
  capacity: number;
  /** Node allocatable: healthy devices while connected, 0 once the endpoint is stopped. */
  allocatable: number;
  /** Device IDs handed to containers and not released (kubelet checkpoints these). */
  allocated: string[];
  /** The last error seen on this resource's endpoint, if any. */
  lastError: string | null;
}

export type KubeletState = Map<string, ResourceState>;

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

export interface AllocationResult {
  deviceIds: string[];
  response: ContainerAllocateResponse__Output;
}

export interface WaitForOptions {
  timeoutMs?: number;
  /** Used in the timeout message instead of the predicate's source. */
  description?: string;
}

interface Cancellable {
  cancel(): void;
}

/** One client connection to a plugin socket, with the calls that must be cancelled when it closes. */
interface Connection {
  socketPath: string;
  client: DevicePluginClient;
  calls: Set<Cancellable>;
  closed: boolean;
}

interface ResourceEntry {
  resourceName: string;
  endpoint: string;
  options: DevicePluginOptions__Output;
  devices: Device__Output[];
  registrations: number;
  conn: Connection | null;
  allocated: Set<string>;
  lastError: string | null;
}

const DEFAULT_DIAL_TIMEOUT_MS = 10_000;
const DEFAULT_RESTART_DELAY_MS = 50;
const DEFAULT_WAIT_TIMEOUT_MS = 5_000;

/** Simulated kubelet device manager. Create it with `KubeletSimulator.start({ dir })`. */
export class KubeletSimulator extends EventEmitter<KubeletSimulatorEvents> {
  readonly dir: string;
  readonly socketPath: string;
  private readonly dialTimeoutMs: number;
  private readonly restartDelayMs: number;
  private server: grpc.Server | null = null;
  private readonly entries = new Map<string, ResourceEntry>();
  /** Register RPCs received per resource name, answered or not (a plugin should send one per restart). */
  private readonly registerCallCounts = new Map<string, number>();
  /** Connections of registrations still in their dial-back. */
  private readonly pending = new Set<Connection>();
  private readonly waiters = new Set<(err: Error) => void>();
  /** Bumped by restart() and stop(): registrations begun before it are discarded. */
  private generation = 0;
  private stopped = false;
  /** Admissions run one at a time, like kubelet's device manager under its mutex. */
  private admission: Promise<unknown> = Promise.resolve();
  private restarting: Promise<unknown> = Promise.resolve();

  private constructor(options: KubeletSimulatorOptions) {
    super();
    this.setMaxListeners(0);
    this.dir = resolve(options.dir);
    this.socketPath = join(this.dir, KUBELET_SOCKET_NAME);
    this.dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    this.restartDelayMs = options.restartDelayMs ?? DEFAULT_RESTART_DELAY_MS;
  }

  /** Creates the directory if needed and serves Registration on `<dir>/kubelet.sock`. */
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
   * the plugin offers it, then call Allocate with exactly one container request.
   */
  allocate(
    resourceName: string,
    count: number,
    options: { mustInclude?: string[] } = {},
  ): Promise<AllocationResult> {
    return this.serialize(async () => {
      const { entry, conn } = this.liveEndpoint(resourceName);
      if (!Number.isInteger(count) || count < 1) {
        throw new Error(`allocate ${resourceName}: count must be a positive integer, got ${count}`);
      }
      const mustInclude = unique(options.mustInclude ?? []);
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
        const preferred = await this.preferredAllocation(entry, conn, available, mustInclude, count);
        fillFrom(chosen, preferred, free, count);
      }
      fillFrom(chosen, free, free, count);
      const response = await this.callAllocate(entry, conn, chosen);
      for (const id of chosen) entry.allocated.add(id);
      this.emit('update');
      return { deviceIds: chosen, response };
    });
  }

  /** Calls Allocate with exactly `ids` (no checks, no preferred allocation) and records them. */
  allocateIds(resourceName: string, ids: string[]): Promise<AllocationResult> {
    return this.serialize(async () => {
      const { entry, conn } = this.liveEndpoint(resourceName);
      const response = await this.callAllocate(entry, conn, ids);
      for (const id of ids) entry.allocated.add(id);
      this.emit('update');
      return { deviceIds: [...ids], response };
    });
  }

  /** Frees devices (the container ended). */
  release(resourceName: string, ids: string[]): void {
    const entry = this.entries.get(resourceName);
    if (!entry) return;
    for (const id of ids) entry.allocated.delete(id);
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

  private async restartNow(delayMs: number, keepPluginSockets: boolean): Promise<void> {
    this.assertRunning();
    this.generation += 1;
    this.shutdownServer();
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

  /** Stops serving, closes every plugin connection, removes kubelet.sock. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.generation += 1;
    this.shutdownServer();
    this.dropConnections('kubelet stopped', false);
    const err = new Error('kubelet simulator is stopped');
    for (const fail of [...this.waiters]) fail(err);
    await rm(this.socketPath, { force: true });
  }

  // --- Registration ---------------------------------------------------------------------------

  private async listen(): Promise<void> {
    // grpc-js does not unlink a stale socket, and a Server whose bind failed stays broken.
    await rm(this.socketPath, { force: true });
    const server = new grpc.Server();
    const handlers: RegistrationHandlers = { Register: this.onRegister };
    server.addService(registrationService, handlers);
    await new Promise<void>((resolvePromise, rejectPromise) => {
      server.bindAsync(unixTarget(this.socketPath), grpc.ServerCredentials.createInsecure(), (err) => {
        if (err) {
          server.forceShutdown();
          rejectPromise(new Error(`kubelet simulator: cannot listen on ${this.socketPath}: ${err.message}`));
        } else {
          resolvePromise();
        }
      });
    });
    if (this.stopped) {
      // stop() ran while binding.
      server.forceShutdown();
      await rm(this.socketPath, { force: true });
      return;
    }
    this.server = server;
  }

  private readonly onRegister: grpc.handleUnaryCall<RegisterRequest__Output, Empty> = (call, callback) => {
    const name = call.request.resource_name;
    this.registerCallCounts.set(name, this.registerCalls(name) + 1);
    this.register(call.request).then(
      (started) => {
        callback(null, {});
        // kubelet starts ListAndWatch in a goroutine once Register has returned.
        started();
      },
      (err: unknown) => callback(toServiceError(err)),
    );
  };

  /** Validates, dials back, installs the endpoint; returns the function that starts ListAndWatch. */
  private async register(request: RegisterRequest__Output): Promise<() => void> {
    const { version, endpoint, resource_name: resourceName } = request;
    if (version !== KUBELET_API_VERSION) {
      throw serviceError(
        grpc.status.INVALID_ARGUMENT,
        `requested API version "${version}" is not supported by kubelet. Supported version is ["${KUBELET_API_VERSION}"]`,
      );
    }
    if (!isExtendedResourceName(resourceName)) {
      throw serviceError(grpc.status.INVALID_ARGUMENT, `the ResourceName "${resourceName}" is invalid`);
    }
    const generation = this.generation;
    const conn = openConnection(join(this.dir, endpoint));
    this.pending.add(conn);
    let options: DevicePluginOptions__Output;
    try {
      await waitForReady(conn.client, this.dialTimeoutMs);
      options = await callUnary<DevicePluginOptions__Output>(conn, (cb) =>
        conn.client.GetDevicePluginOptions({}, cb),
      );
    } catch (err) {
      closeConnection(conn);
      throw serviceError(
        grpc.status.UNKNOWN,
        `failed to dial device plugin: ${conn.socketPath}: ${errorMessage(err)}`,
      );
    } finally {
      this.pending.delete(conn);
    }
    if (generation !== this.generation) {
      closeConnection(conn);
      throw serviceError(grpc.status.UNAVAILABLE, 'kubelet restarted during registration');
    }
    const entry = this.entries.get(resourceName) ?? newEntry(resourceName);
    this.entries.set(resourceName, entry);
    // The newest registration wins; the old endpoint's client is closed.
    if (entry.conn) closeConnection(entry.conn);
    entry.conn = conn;
    entry.endpoint = endpoint;
    entry.options = { ...options };
    entry.registrations += 1;
    entry.lastError = null;
    this.emit('register', snapshot(entry));
    this.emit('update');
    return () => this.watch(entry, conn);
  }

  private watch(entry: ResourceEntry, conn: Connection): void {
    if (conn.closed) return;
    const stream = conn.client.ListAndWatch({});
    conn.calls.add(stream);
    stream.on('data', (message: ListAndWatchResponse__Output) => {
      if (entry.conn !== conn) return;
      entry.devices = message.devices.map(cloneDevice);
      this.emit('update');
    });
    // 'error' must be handled (an unhandled stream error would crash the process); 'status' follows.
    stream.on('error', (err: Error) => {
      if (entry.conn === conn && !conn.closed) entry.lastError = err.message;
    });
    stream.on('status', (status: grpc.StatusObject) => {
      conn.calls.delete(stream);
      if (entry.conn !== conn || conn.closed) return;
      const reason = `ListAndWatch ended: ${grpc.status[status.code]}${status.details ? `: ${status.details}` : ''}`;
      entry.lastError = reason;
      this.stopEndpoint(entry, reason, false);
    });
  }

  /** kubelet's PluginDisconnected: the endpoint is stopped, allocatable drops to 0. */
  private stopEndpoint(entry: ResourceEntry, reason: string, clearDevices: boolean): void {
    const conn = entry.conn;
    entry.conn = null;
    if (clearDevices) entry.devices = [];
    if (conn) {
      closeConnection(conn);
      this.emit('disconnect', { resourceName: entry.resourceName, endpoint: entry.endpoint, reason });
    }
    this.emit('update');
  }

  private dropConnections(reason: string, clearDevices: boolean): void {
    for (const conn of this.pending) closeConnection(conn);
    this.pending.clear();
    for (const entry of this.entries.values()) this.stopEndpoint(entry, reason, clearDevices);
  }

  private shutdownServer(): void {
    this.server?.forceShutdown();
    this.server = null;
  }

  private assertRunning(): void {
    if (this.stopped) throw new Error('kubelet simulator is stopped');
  }

  // --- Admission ------------------------------------------------------------------------------

  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const result = this.admission.then(task);
    this.admission = result.catch(() => undefined);
    return result;
  }

  private liveEndpoint(resourceName: string): { entry: ResourceEntry; conn: Connection } {
    this.assertRunning();
    const entry = this.entries.get(resourceName);
    if (!entry) throw new Error(`unknown resource ${resourceName}: no device plugin registered it`);
    if (!entry.conn) throw new Error(`endpoint ${entry.endpoint} of ${resourceName} has been stopped`);
    return { entry, conn: entry.conn };
  }

  private async preferredAllocation(
    entry: ResourceEntry,
    conn: Connection,
    available: string[],
    mustInclude: string[],
    size: number,
  ): Promise<string[]> {
    let response: PreferredAllocationResponse__Output;
    try {
      response = await callUnary<PreferredAllocationResponse__Output>(conn, (cb) =>
        conn.client.GetPreferredAllocation(
          {
            container_requests: [
              { available_deviceIDs: available, must_include_deviceIDs: mustInclude, allocation_size: size },
            ],
          },
          cb,
        ),
      );
    } catch (err) {
      throw this.endpointError(entry, 'GetPreferredAllocation', err);
    }
    const first = response.container_responses[0];
    if (!first) throw this.endpointError(entry, 'GetPreferredAllocation', 'no container responses');
    return first.deviceIDs;
  }

  private async callAllocate(
    entry: ResourceEntry,
    conn: Connection,
    ids: string[],
  ): Promise<ContainerAllocateResponse__Output> {
    let response: AllocateResponse__Output;
    try {
      response = await callUnary<AllocateResponse__Output>(conn, (cb) =>
        conn.client.Allocate({ container_requests: [{ devices_ids: ids }] }, cb),
      );
    } catch (err) {
      throw this.endpointError(entry, 'Allocate', err);
    }
    const first = response.container_responses[0];
    if (!first) throw this.endpointError(entry, 'Allocate', 'no containers returned in allocation response');
    return first;
  }

  private endpointError(entry: ResourceEntry, rpc: string, cause: unknown): Error {
    const message = `${rpc} for ${entry.resourceName} failed: ${errorMessage(cause)}`;
    entry.lastError = message;
    return new Error(message, { cause });
  }
}

// --- Resource names (k8s.io/kubernetes pkg/apis/core/v1/helper.IsExtendedResourceName) ---------

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Kubernetes' IsQualifiedName: `[prefix/]name`, prefix a DNS-1123 subdomain, name ≤ 63 chars. */
export function isQualifiedName(value: string): boolean {
  const parts = value.split('/');
  let name: string;
  if (parts.length === 1) {
    name = parts[0]!;
  } else if (parts.length === 2) {
    const prefix = parts[0]!;
    if (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) return false;
    name = parts[1]!;
  } else {
    return false;
  }
  return name.length > 0 && name.length <= 63 && QUALIFIED_NAME_PART.test(name);
}

/**
 * The names kubelet accepts from a device plugin: domain-prefixed (contains `/`), not in the
 * `kubernetes.io/` namespace, not starting with `requests.`, and `requests.<name>` is a qualified name.
 */
export function isExtendedResourceName(name: string): boolean {
  if (!name.includes('/') || name.includes('kubernetes.io/')) return false;
  if (name.startsWith('requests.')) return false;
  return isQualifiedName(`requests.${name}`);
}

// --- Helpers --------------------------------------------------------------------------------------

function newEntry(resourceName: string): ResourceEntry {
  return {
    resourceName,
    endpoint: '',
    options: { pre_start_required: false, get_preferred_allocation_available: false },
    devices: [],
    registrations: 0,
    conn: null,
    allocated: new Set(),
    lastError: null,
  };
}

function snapshot(entry: ResourceEntry): ResourceState {
  const connected = entry.conn !== null;
  return {
    resourceName: entry.resourceName,
    endpoint: entry.endpoint,
    options: { ...entry.options },
    devices: entry.devices.map(cloneDevice),
    registrations: entry.registrations,
    connected,
    capacity: entry.devices.length,
    allocatable: connected ? entry.devices.filter((d) => d.health === HEALTHY).length : 0,
    allocated: [...entry.allocated],
    lastError: entry.lastError,
  };
}

function cloneDevice(device: Device__Output): Device__Output {
  return {
    ID: device.ID,
    health: device.health,
    topology: device.topology ? { nodes: device.topology.nodes.map((n) => ({ ID: n.ID })) } : null,
  };
}

function describeState(state: KubeletState): string {
  const summary = Object.fromEntries(
    [...state].map(([name, r]) => [
      name,
      {
        endpoint: r.endpoint,
        connected: r.connected,
        registrations: r.registrations,
        devices: r.devices.map((d) => `${d.ID}:${d.health}`),
        allocated: r.allocated,
        lastError: r.lastError,
      },
    ]),
  );
  return JSON.stringify(summary);
}

function openConnection(socketPath: string): Connection {
  // A local subchannel pool keeps this connection apart from any other client of the same socket
  // in this process (grpc-js shares subchannels between clients by default).
  const client = new DevicePluginClient(unixTarget(socketPath), grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
  return { socketPath, client, calls: new Set(), closed: false };
}

/** Cancels the connection's calls (Client.close() alone leaves started calls running) and closes it. */
function closeConnection(conn: Connection): void {
  if (conn.closed) return;
  conn.closed = true;
  for (const call of [...conn.calls]) call.cancel();
  conn.calls.clear();
  conn.client.close();
}

function waitForReady(client: grpc.Client, timeoutMs: number): Promise<void> {
  return new Promise((resolvePromise, rejectPromise) => {
    client.waitForReady(Date.now() + timeoutMs, (err) => (err ? rejectPromise(err) : resolvePromise()));
  });
}

/** A unary call on `conn`, cancelled if the connection closes first. */
function callUnary<T>(
  conn: Connection,
  start: (callback: grpc.requestCallback<T>) => grpc.ClientUnaryCall,
): Promise<T> {
  if (conn.closed) return Promise.reject(new Error('connection closed'));
  return new Promise((resolvePromise, rejectPromise) => {
    let done = false;
    const call = start((err, value) => {
      done = true;
      conn.calls.delete(call);
      if (err) rejectPromise(err);
      else if (value === undefined) rejectPromise(new Error('empty response'));
      else resolvePromise(value);
    });
    if (!done) conn.calls.add(call);
  });
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

function unique(ids: readonly string[]): string[] {
  return [...new Set(ids)];
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

function serviceError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), {
    code,
    details,
    metadata: new grpc.Metadata(),
  });
}

function toServiceError(err: unknown): grpc.ServiceError {
  if (err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number') {
    return err as grpc.ServiceError;
  }
  return serviceError(grpc.status.UNKNOWN, errorMessage(err));
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
