/**
 * One kubelet device plugin: a gRPC server on its own Unix socket for one resource name, registered
 * with kubelet by a KubeletRegistration (registration.ts). Serve first, then register (kubelet dials
 * back inside Register). A restart unlinks the socket and uses a fresh grpc.Server: grpc-js neither
 * unlinks stale sockets nor recovers a Server whose bind failed.
 */

import { rm } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { KUBELET_MAX_MESSAGE_BYTES } from '../devices/device-list-size.js';
import { errorMessage } from '../errors.js';
import {
  type AllocateRequest__Output,
  type AllocateResponse,
  type Device,
  type DevicePluginHandlers,
  devicePluginService,
  type ListAndWatchResponse,
  type PreferredAllocationRequest__Output,
  type PreferredAllocationResponse,
  unixTarget,
} from '../kubelet-api/proto.js';
import { serviceError } from '../kubelet-api/service-error.js';
import type { PluginMetrics } from './metrics.js';
import { KubeletRegistration, PLUGIN_OPTIONS, type RegistrationTuning } from './registration.js';
import { describeIds, RequestError } from './request-error.js';
import type { ResourceHandler } from './resource-handler.js';
import { directoryId, socketId } from './socket-id.js';
import { socketNameFor } from './socket-name.js';

export interface ServerTuning extends RegistrationTuning {
  /** connections carrying no call for this long are closed (default CONNECTION_IDLE_MS) */
  connectionIdleMs?: number;
}

export interface DevicePluginServerOptions extends ServerTuning {
  handler: ResourceHandler;
  /** kubelet's device plugin directory, holding kubelet.sock and our socket */
  pluginDir: string;
  logger: Logger;
  metrics: PluginMetrics;
}

/**
 * Connections without a call for this long are closed. Kubelet's own connection always carries its
 * ListAndWatch stream; this reaps the others, among them those Node's http2 leaves open for good after
 * a protocol error in the peer's frames (one file descriptor each; docs/design.md).
 */
const CONNECTION_IDLE_MS = 30_000;

/** Serving is impossible until kubelet (or someone) re-creates the device plugin directory. */
export class PluginDirectoryMissingError extends Error {
  override readonly name = 'PluginDirectoryMissingError';
}

type State = 'stopped' | 'starting' | 'serving' | 'stopping';
type ListAndWatchStream = grpc.ServerWritableStream<unknown, ListAndWatchResponse>;

export class DevicePluginServer {
  readonly resourceName: string;
  readonly socketPath: string;
  /** bound to the resource: every line names it */
  readonly logger: Logger;
  private readonly registration: KubeletRegistration;
  private server: grpc.Server | undefined;
  private state: State = 'stopped';
  private readonly streams = new Set<ListAndWatchStream>();
  private lastSent = '';
  /** bumped on every new device list, so a late write callback cannot vouch for a newer list */
  private listVersion = 0;
  /** why kubelet may lack the current list (a failed send); null when nothing failed since */
  private undelivered: string | null = null;
  /** restarts and stops run one at a time */
  private lifecycle: Promise<void> = Promise.resolve();

  constructor(private readonly options: DevicePluginServerOptions) {
    this.resourceName = options.handler.resourceName;
    this.socketPath = path.join(options.pluginDir, socketNameFor(this.resourceName));
    this.logger = options.logger.child({ resource: this.resourceName });
    this.registration = new KubeletRegistration({
      pluginDir: options.pluginDir,
      endpoint: path.basename(this.socketPath),
      resourceName: this.resourceName,
      logger: this.logger,
      metrics: options.metrics,
      registerTimeoutMs: options.registerTimeoutMs,
      retryInitialMs: options.retryInitialMs,
      retryMaxMs: options.retryMaxMs,
    });
  }

  get registered(): boolean {
    return this.registration.registered && this.state === 'serving';
  }

  get serving(): boolean {
    return this.state === 'serving';
  }

  /** Why kubelet may not have this resource's current devices; null when it has them. */
  notReadyReason(): string | null {
    if (!this.registered) return `${this.resourceName}: not registered with kubelet`;
    return this.undelivered && `${this.resourceName}: ${this.undelivered}`;
  }

  /** Serves, then registers in the background. Resolves once the socket accepts connections. */
  start(): Promise<void> {
    return this.enqueue(() => this.serveAndRegister());
  }

  /** Fresh server on a fresh socket, then registration again (kubelet restarted, socket removed). */
  restart(reason: string): Promise<void> {
    return this.enqueue(async () => {
      this.logger.info({ reason }, 'restarting device plugin server');
      await this.shutdown();
      await this.serveAndRegister();
    });
  }

  /** Stops serving; a Register in flight is cancelled, not waited for. */
  stop(): Promise<void> {
    return this.enqueue(() => this.shutdown());
  }

  /**
   * A new kubelet.sock appeared. Serving on a live socket: register with the new kubelet (or wake
   * the registration under way); already registered with that very kubelet: nothing to do; not
   * serving or socket gone: serve again.
   */
  kubeletRestarted(kubeletSocketId: string): Promise<void> {
    return this.enqueue(async () => {
      if (this.state === 'serving' && (await socketId(this.socketPath)) !== null) {
        this.registration.ensure(kubeletSocketId);
        return;
      }
      this.logger.info('kubelet restarted: serving again');
      await this.shutdown();
      await this.serveAndRegister();
    });
  }

  /** Sends the current device list on every ListAndWatch stream, if it changed since last sent. */
  devicesChanged(): void {
    const devices = this.options.handler.listDevices();
    const serialized = JSON.stringify(devices);
    if (serialized === this.lastSent) return;
    this.newList(serialized, devices);
    for (const stream of this.streams) this.send(stream, devices);
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.lifecycle.then(step);
    this.lifecycle = next.catch(() => {});
    return next;
  }

  private async serveAndRegister(): Promise<void> {
    this.state = 'starting';
    try {
      this.server = await this.serve();
    } catch (err) {
      this.state = 'stopped';
      throw err;
    }
    this.state = 'serving';
    this.logger.info({ socket: this.socketPath }, 'serving device plugin');
    this.registration.ensure();
  }

  private async serve(): Promise<grpc.Server> {
    // Binding in a missing directory fails as "permission denied": say what is really wrong.
    if ((await directoryId(this.options.pluginDir)) === null) {
      throw new PluginDirectoryMissingError(
        `cannot serve ${this.resourceName}: device plugin directory ${this.options.pluginDir} does not exist`,
      );
    }
    await rm(this.socketPath, { force: true });
    const server = new grpc.Server({
      'grpc.max_connection_idle_ms': this.options.connectionIdleMs ?? CONNECTION_IDLE_MS,
    });
    server.addService(devicePluginService, this.handlers());
    try {
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(unixTarget(this.socketPath), grpc.ServerCredentials.createInsecure(), (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    } catch (err) {
      server.forceShutdown();
      throw new Error(`cannot serve ${this.resourceName} on ${this.socketPath}: ${(err as Error).message}`);
    }
    return server;
  }

  private async shutdown(): Promise<void> {
    await this.registration.stop();
    if (this.state === 'stopped') return;
    this.state = 'stopping';
    for (const stream of this.streams) stream.end();
    this.streams.clear();
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 500);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    }
    await rm(this.socketPath, { force: true });
    this.state = 'stopped';
  }

  private newList(serialized: string, devices: Device[]): void {
    this.lastSent = serialized;
    this.listVersion++;
    this.undelivered = null;
    this.recordDeviceGauge(devices);
  }

  /**
   * Writes the list on one stream. A list over kubelet's message limit is not sent (kubelet would
   * drop the stream and keep no devices): it is logged, counted, and readiness reports it.
   */
  private send(stream: ListAndWatchStream, devices: Device[]): void {
    const message = { devices };
    const bytes = devicePluginService.ListAndWatch.responseSerialize(message).length;
    if (bytes > KUBELET_MAX_MESSAGE_BYTES) {
      const reason =
        `device list of ${bytes} bytes (${devices.length} devices) exceeds kubelet's gRPC message ` +
        `limit of ${KUBELET_MAX_MESSAGE_BYTES} bytes: kubelet does not have it`;
      this.deliveryFailed('too_large', new Error(reason));
      return;
    }
    const version = this.listVersion;
    stream.write(message, () => {
      if (version === this.listVersion) this.undelivered = null;
    });
  }

  private deliveryFailed(reason: 'too_large' | 'stream_error', err: Error): void {
    this.undelivered = err.message;
    this.options.metrics.listAndWatchFailures.inc({ resource: this.resourceName, reason });
    this.logger.error({ err }, 'ListAndWatch: device list not delivered to kubelet');
  }

  private recordDeviceGauge(devices: Device[]): void {
    const healthy = devices.filter((d) => d.health === 'Healthy').length;
    this.options.metrics.devices.set({ resource: this.resourceName, health: 'Healthy' }, healthy);
    this.options.metrics.devices.set(
      { resource: this.resourceName, health: 'Unhealthy' },
      devices.length - healthy,
    );
  }

  private handlers(): DevicePluginHandlers {
    return {
      GetDevicePluginOptions: (_call, callback) => callback(null, PLUGIN_OPTIONS),
      ListAndWatch: (call) => this.listAndWatch(call),
      GetPreferredAllocation: (call, callback) => this.preferredAllocation(call.request, callback),
      Allocate: (call, callback) => this.allocate(call.request, callback),
      PreStartContainer: (_call, callback) => callback(null, {}),
    };
  }

  private listAndWatch(call: ListAndWatchStream): void {
    this.streams.add(call);
    const forget = () => this.streams.delete(call);
    call.on('cancelled', forget);
    call.on('close', forget);
    call.on('error', (err: Error) => {
      const open = this.streams.has(call);
      forget();
      // Kubelet going away ends the stream without an error; an error here lost a write.
      if (open) this.deliveryFailed('stream_error', err);
    });
    const devices = this.options.handler.listDevices();
    this.newList(JSON.stringify(devices), devices);
    this.send(call, devices);
    this.logger.info({ devices: devices.length }, 'kubelet opened ListAndWatch');
  }

  private preferredAllocation(
    request: PreferredAllocationRequest__Output,
    callback: grpc.sendUnaryData<PreferredAllocationResponse>,
  ): void {
    const { handler } = this.options;
    try {
      const container_responses = request.container_requests.map((container) => ({
        deviceIDs: handler.preferredAllocation(
          container.available_deviceIDs,
          container.must_include_deviceIDs,
          container.allocation_size,
        ),
      }));
      callback(null, { container_responses });
    } catch (err) {
      callback(toServiceError(err));
    }
  }

  private allocate(request: AllocateRequest__Output, callback: grpc.sendUnaryData<AllocateResponse>): void {
    const started = process.hrtime.bigint();
    const observe = (result: string) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.options.metrics.allocations.inc({ resource: this.resourceName, result });
      this.options.metrics.allocateDuration.observe({ resource: this.resourceName, result }, seconds);
    };
    this.answerAllocate(request).then(
      (response) => {
        observe('ok');
        callback(null, response);
      },
      (err: unknown) => {
        const error = toServiceError(err);
        observe(grpc.status[error.code ?? grpc.status.UNKNOWN] ?? 'UNKNOWN');
        // A RequestError names the devices it refuses; other errors get the request's IDs, once.
        const devices =
          err instanceof RequestError
            ? undefined
            : request.container_requests.map((r) => describeIds(r.devices_ids));
        this.logger.warn({ devices, err: error.details }, 'Allocate refused');
        callback(error);
      },
    );
  }

  private async answerAllocate(request: AllocateRequest__Output): Promise<AllocateResponse> {
    const requests = request.container_requests;
    if (requests.length === 0) {
      throw new RequestError(grpc.status.INVALID_ARGUMENT, 'Allocate request has no container requests');
    }
    const { handler } = this.options;
    if (handler.allocateContainers) {
      const container_responses = await handler.allocateContainers(requests.map((r) => r.devices_ids));
      this.logger.info(
        { devices: requests.map((r) => r.devices_ids), envs: container_responses.map((r) => r.envs) },
        'Allocate',
      );
      return { container_responses };
    }
    // Kubelet sends one container per call; answer every one given, in order.
    const container_responses = [];
    for (const container of requests) {
      const response = await this.options.handler.allocate(container.devices_ids);
      this.logger.info({ devices: container.devices_ids, envs: response.envs }, 'Allocate');
      container_responses.push(response);
    }
    return { container_responses };
  }
}

/** A refused request keeps its status; anything else is the plugin's own failure. */
function toServiceError(err: unknown): grpc.ServiceError {
  if (err instanceof RequestError) return serviceError(err.code, err.message);
  return serviceError(grpc.status.INTERNAL, `internal error: ${errorMessage(err)}`);
}
