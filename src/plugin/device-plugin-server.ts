/**
 * One kubelet device plugin: a gRPC server on its own Unix socket for one resource name, registered
 * with kubelet. Serve first, then register (kubelet dials back inside Register). A restart unlinks
 * the socket and uses a fresh grpc.Server: grpc-js neither unlinks stale sockets nor recovers a
 * Server whose bind failed. Registration retries with backoff forever: kubelet may be away.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { PluginMetrics } from './metrics.js';
import {
  type Device,
  type DevicePluginHandlers,
  devicePluginService,
  KUBELET_API_VERSION,
  KUBELET_SOCKET_NAME,
  type ListAndWatchResponse,
  RegistrationClient,
  unixTarget,
} from './proto.js';
import { RequestError } from './request-error.js';
import type { ResourceHandler } from './resource-handler.js';
import { socketId } from './socket-id.js';
import { socketNameFor } from './socket-name.js';

export interface DevicePluginServerOptions {
  handler: ResourceHandler;
  /** kubelet's device plugin directory, holding kubelet.sock and our socket */
  pluginDir: string;
  logger: Logger;
  metrics: PluginMetrics;
  /** deadline of one Register call (kubelet dials back within it) */
  registerTimeoutMs?: number;
  /** first and longest pause between registration attempts */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

type State = 'stopped' | 'starting' | 'serving' | 'stopping';

export class DevicePluginServer {
  readonly resourceName: string;
  readonly socketPath: string;
  private readonly kubeletSocketPath: string;
  private server: grpc.Server | undefined;
  private state: State = 'stopped';
  private isRegistered = false;
  /** bumped on every (re)start and stop so a stale registration loop knows to quit */
  private generation = 0;
  private wakeRegistration: (() => void) | undefined;
  /** identity of the kubelet.sock our current registration went to */
  private registeredWith: string | null = null;
  private registrationClient: InstanceType<typeof RegistrationClient> | undefined;
  /** a registration loop is running (attempting or backing off) */
  private registering = false;
  /** skip the next backoff: kubelet just came back */
  private hurry = false;
  private readonly streams = new Set<grpc.ServerWritableStream<unknown, ListAndWatchResponse>>();
  private lastSent = '';
  /** restarts and stops run one at a time */
  private lifecycle: Promise<void> = Promise.resolve();

  constructor(private readonly options: DevicePluginServerOptions) {
    this.resourceName = options.handler.resourceName;
    this.socketPath = path.join(options.pluginDir, socketNameFor(this.resourceName));
    this.kubeletSocketPath = path.join(options.pluginDir, KUBELET_SOCKET_NAME);
  }

  get registered(): boolean {
    return this.isRegistered && this.state === 'serving';
  }

  get serving(): boolean {
    return this.state === 'serving';
  }

  /** Serves, then registers in the background. Resolves once the socket accepts connections. */
  start(): Promise<void> {
    return this.enqueue(() => this.serveAndRegister());
  }

  /** Fresh server on a fresh socket, then registration again (kubelet restarted, socket removed). */
  restart(reason: string): Promise<void> {
    return this.enqueue(async () => {
      this.options.logger.info({ resource: this.resourceName, reason }, 'restarting device plugin server');
      await this.shutdown();
      await this.serveAndRegister();
    });
  }

  stop(): Promise<void> {
    return this.enqueue(async () => {
      await this.shutdown();
      this.registrationClient?.close();
      this.registrationClient = undefined;
    });
  }

  /**
   * A new kubelet.sock appeared. Serving on a live socket: register with the new kubelet (or hurry a
   * pending attempt); already registered with that very kubelet: nothing to do; socket gone: restart.
   */
  kubeletRestarted(kubeletSocketId: string): Promise<void> {
    return this.enqueue(async () => {
      if (this.state === 'serving' && (await socketId(this.socketPath)) !== null) {
        if (this.isRegistered && this.registeredWith === kubeletSocketId) return;
        if (this.registering) {
          // The running loop will reach the new kubelet: now if it is backing off, or right after
          // its attempt in flight if that one went to the old socket.
          this.hurry = true;
          this.wakeRegistration?.();
          return;
        }
        this.setRegistered(false);
        void this.registerLoop(++this.generation);
        return;
      }
      this.options.logger.info({ resource: this.resourceName }, 'kubelet restarted: serving again');
      await this.shutdown();
      await this.serveAndRegister();
    });
  }

  /** Sends the current device list on every ListAndWatch stream, if it changed since last sent. */
  devicesChanged(): void {
    const devices = this.options.handler.listDevices();
    const serialized = JSON.stringify(devices);
    if (serialized === this.lastSent) return;
    this.lastSent = serialized;
    this.recordDeviceGauge(devices);
    for (const stream of this.streams) stream.write({ devices });
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.lifecycle.then(step);
    this.lifecycle = next.catch(() => {});
    return next;
  }

  private async serveAndRegister(): Promise<void> {
    this.state = 'starting';
    const generation = ++this.generation;
    await rm(this.socketPath, { force: true });
    const server = new grpc.Server();
    server.addService(devicePluginService, this.handlers());
    try {
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(unixTarget(this.socketPath), grpc.ServerCredentials.createInsecure(), (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    } catch (err) {
      server.forceShutdown();
      this.state = 'stopped';
      throw new Error(`cannot serve ${this.resourceName} on ${this.socketPath}: ${(err as Error).message}`);
    }
    this.server = server;
    this.state = 'serving';
    this.options.logger.info(
      { resource: this.resourceName, socket: this.socketPath },
      'serving device plugin',
    );
    void this.registerLoop(generation);
  }

  private async shutdown(): Promise<void> {
    this.generation++;
    this.registering = false;
    this.wakeRegistration?.();
    this.setRegistered(false);
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

  private async registerLoop(generation: number): Promise<void> {
    const initial = this.options.retryInitialMs ?? 250;
    const max = this.options.retryMaxMs ?? 5000;
    this.registering = true;
    this.hurry = false;
    try {
      await this.registerUntilDone(generation, initial, max);
    } finally {
      if (generation === this.generation) this.registering = false;
    }
  }

  private async registerUntilDone(generation: number, initial: number, max: number): Promise<void> {
    let delay = initial;
    let attempt = 0;
    while (generation === this.generation) {
      attempt++;
      try {
        const kubelet = await socketId(this.kubeletSocketPath);
        await this.registerOnce();
        if (generation !== this.generation) return;
        this.registeredWith = kubelet;
        this.setRegistered(true);
        this.options.metrics.registrations.inc({ resource: this.resourceName, result: 'ok' });
        this.options.logger.info(
          { resource: this.resourceName, endpoint: path.basename(this.socketPath), attempt },
          'registered with kubelet',
        );
        return;
      } catch (err) {
        if (generation !== this.generation) return;
        this.options.metrics.registrations.inc({ resource: this.resourceName, result: 'error' });
        const log = attempt === 1 || attempt % 10 === 0 ? 'warn' : 'debug';
        this.options.logger[log](
          {
            resource: this.resourceName,
            kubeletSocket: this.kubeletSocketPath,
            attempt,
            retryInMs: delay,
            err: (err as Error).message,
          },
          'registration with kubelet failed; retrying',
        );
      }
      if (this.hurry) {
        this.hurry = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeRegistration = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeRegistration = undefined;
      delay = Math.min(delay * 2, max);
    }
  }

  private registerOnce(): Promise<void> {
    // One long-lived client: grpc-js keeps reconnecting the subchannel of a *closed* client that was
    // in backoff, so a fresh client per failed attempt leaks a connection each once kubelet is back.
    // A short reconnect backoff lets this one reach a restarted kubelet within ~100 ms.
    this.registrationClient ??= new RegistrationClient(
      unixTarget(this.kubeletSocketPath),
      grpc.credentials.createInsecure(),
      {
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
      },
    );
    const client = this.registrationClient;
    const deadline = Date.now() + (this.options.registerTimeoutMs ?? 5000);
    return new Promise<void>((resolve, reject) => {
      client.Register(
        {
          version: KUBELET_API_VERSION,
          endpoint: path.basename(this.socketPath),
          resource_name: this.resourceName,
          options: { pre_start_required: false, get_preferred_allocation_available: true },
        },
        { deadline },
        (err) => {
          if (err) reject(err);
          else resolve();
        },
      );
    });
  }

  private setRegistered(value: boolean): void {
    this.isRegistered = value;
    this.options.metrics.registered.set({ resource: this.resourceName }, value ? 1 : 0);
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
    const { handler, logger, metrics } = this.options;
    const resource = this.resourceName;
    return {
      GetDevicePluginOptions: (_call, callback) =>
        callback(null, { pre_start_required: false, get_preferred_allocation_available: true }),

      ListAndWatch: (call) => {
        this.streams.add(call);
        const forget = () => this.streams.delete(call);
        call.on('cancelled', forget);
        call.on('close', forget);
        call.on('error', (err) => {
          forget();
          logger.debug({ resource, err: err.message }, 'ListAndWatch stream error');
        });
        const devices = handler.listDevices();
        this.lastSent = JSON.stringify(devices);
        this.recordDeviceGauge(devices);
        call.write({ devices });
        logger.info({ resource, devices: devices.length }, 'kubelet opened ListAndWatch');
      },

      GetPreferredAllocation: (call, callback) => {
        try {
          const container_responses = call.request.container_requests.map((request) => ({
            deviceIDs: handler.preferredAllocation(
              request.available_deviceIDs,
              request.must_include_deviceIDs,
              request.allocation_size,
            ),
          }));
          callback(null, { container_responses });
        } catch (err) {
          callback(toServiceError(err));
        }
      },

      Allocate: (call, callback) => {
        const started = process.hrtime.bigint();
        const requests = call.request.container_requests;
        const answer = async () => {
          if (requests.length === 0) {
            throw new RequestError(
              grpc.status.INVALID_ARGUMENT,
              'Allocate request has no container requests',
            );
          }
          // Kubelet sends one container per call; answer every one given, in order.
          const container_responses = [];
          for (const request of requests) {
            const response = await handler.allocate(request.devices_ids);
            logger.info({ resource, devices: request.devices_ids, envs: response.envs }, 'Allocate');
            container_responses.push(response);
          }
          return { container_responses };
        };
        const observe = (result: string) => {
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          metrics.allocations.inc({ resource, result });
          metrics.allocateDuration.observe({ resource, result }, seconds);
        };
        answer().then(
          (response) => {
            observe('ok');
            callback(null, response);
          },
          (err: unknown) => {
            const error = toServiceError(err);
            observe(grpc.status[error.code ?? grpc.status.UNKNOWN] ?? 'UNKNOWN');
            logger.warn(
              { resource, devices: requests.map((r) => r.devices_ids), err: error.details },
              'Allocate refused',
            );
            callback(error);
          },
        );
      },

      PreStartContainer: (_call, callback) => callback(null, {}),
    };
  }
}

function toServiceError(err: unknown): grpc.ServiceError {
  if (err instanceof RequestError) {
    return Object.assign(new Error(err.message), {
      code: err.code,
      details: err.message,
      metadata: new grpc.Metadata(),
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return Object.assign(new Error(message), {
    code: grpc.status.INTERNAL,
    details: `internal error: ${message}`,
    metadata: new grpc.Metadata(),
  });
}
