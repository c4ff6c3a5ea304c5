/**
 * The simulated kubelet's Registration service on `<dir>/kubelet.sock`, one instance per kubelet
 * life (a restart shuts it down and serves a new one). Register as kubelet handles it: check the API
 * version and the resource name, dial the plugin back, ask GetDevicePluginOptions, only then answer
 * OK; ListAndWatch starts once Register has returned. A registration still dialling back when this
 * kubelet stops is refused, never installed.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { errorMessage } from '../errors.js';
import { isExtendedResourceName } from '../kube/names.js';
import {
  type DevicePluginOptions__Output,
  type Empty,
  KUBELET_API_VERSION,
  type RegisterRequest__Output,
  type RegistrationHandlers,
  registrationService,
  unixTarget,
} from '../kubelet-api/proto.js';
import { isServiceError, serviceError } from '../kubelet-api/service-error.js';
import { PluginEndpoint } from './plugin-endpoint.js';

export interface RegistrationCallbacks {
  /** Every Register call, answered or not (a plugin should send one per kubelet restart). */
  received: (request: RegisterRequest__Output) => void;
  /** The plugin answered the dial-back: install its endpoint; what is returned starts ListAndWatch. */
  registered: (
    request: RegisterRequest__Output,
    endpoint: PluginEndpoint,
    options: DevicePluginOptions__Output,
  ) => () => void;
}

export interface RegistrationServerOptions extends RegistrationCallbacks {
  /** `<dir>/kubelet.sock` */
  socketPath: string;
  /** the device plugin directory, where plugins' endpoints are */
  dir: string;
  /** deadline of the dial-back to a registering plugin (kubelet: 10 s) */
  dialTimeoutMs: number;
}

export class RegistrationServer {
  /** endpoints of registrations still in their dial-back */
  private readonly dialing = new Set<PluginEndpoint>();
  private stopped = false;

  private constructor(
    private readonly options: RegistrationServerOptions,
    private readonly server: grpc.Server,
  ) {}

  /** Serves Registration on the socket (a stale socket file is removed first). */
  static async listen(options: RegistrationServerOptions): Promise<RegistrationServer> {
    // grpc-js does not unlink a stale socket, and a Server whose bind failed stays broken.
    await rm(options.socketPath, { force: true });
    const server = new grpc.Server();
    const registration = new RegistrationServer(options, server);
    const handlers: RegistrationHandlers = {
      Register: (call, callback) => registration.onRegister(call, callback),
    };
    server.addService(registrationService, handlers);
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(unixTarget(options.socketPath), grpc.ServerCredentials.createInsecure(), (err) => {
        if (!err) return resolve();
        server.forceShutdown();
        reject(new Error(`kubelet simulator: cannot listen on ${options.socketPath}: ${err.message}`));
      });
    });
    return registration;
  }

  /** Stops serving; registrations still dialling back are dropped. */
  shutdown(): void {
    this.stopped = true;
    this.server.forceShutdown();
    for (const endpoint of this.dialing) endpoint.close();
    this.dialing.clear();
  }

  private onRegister(
    call: grpc.ServerUnaryCall<RegisterRequest__Output, Empty>,
    callback: grpc.sendUnaryData<Empty>,
  ): void {
    this.options.received(call.request);
    this.register(call.request).then(
      (startListAndWatch) => {
        callback(null, {});
        // kubelet starts ListAndWatch in a goroutine once Register has returned.
        startListAndWatch();
      },
      (err: unknown) =>
        callback(isServiceError(err) ? err : serviceError(grpc.status.UNKNOWN, errorMessage(err))),
    );
  }

  /** Validates, dials back, installs the endpoint; returns what starts ListAndWatch. */
  private async register(request: RegisterRequest__Output): Promise<() => void> {
    const { version, endpoint: name, resource_name: resourceName } = request;
    if (version !== KUBELET_API_VERSION) {
      throw serviceError(
        grpc.status.INVALID_ARGUMENT,
        `requested API version "${version}" is not supported by kubelet. Supported version is ["${KUBELET_API_VERSION}"]`,
      );
    }
    if (!isExtendedResourceName(resourceName)) {
      throw serviceError(grpc.status.INVALID_ARGUMENT, `the ResourceName "${resourceName}" is invalid`);
    }
    const endpoint = new PluginEndpoint(join(this.options.dir, name));
    this.dialing.add(endpoint);
    let options: DevicePluginOptions__Output;
    try {
      await endpoint.dial(this.options.dialTimeoutMs);
      options = await endpoint.getDevicePluginOptions();
    } catch (err) {
      endpoint.close();
      throw serviceError(
        grpc.status.UNKNOWN,
        `failed to dial device plugin: ${endpoint.socketPath}: ${errorMessage(err)}`,
      );
    } finally {
      this.dialing.delete(endpoint);
    }
    if (this.stopped) {
      endpoint.close();
      throw serviceError(grpc.status.UNAVAILABLE, 'kubelet restarted during registration');
    }
    return this.options.registered(request, endpoint, options);
  }
}
