/**
 * The simulated kubelet's client side of one device plugin (kubelet's endpoint): a connection to the
 * plugin's socket, one method per RPC kubelet makes on it, and the ListAndWatch stream. Closing it
 * cancels every call still running, as kubelet does when it stops an endpoint (Client.close() alone
 * leaves started calls running).
 */
import * as grpc from '@grpc/grpc-js';
import {
  type AllocateResponse__Output,
  type ContainerAllocateResponse__Output,
  type Device__Output,
  DevicePluginClient,
  type DevicePluginOptions__Output,
  type ListAndWatchResponse__Output,
  type PreferredAllocationResponse__Output,
  unixTarget,
} from '../kubelet-api/proto.js';

interface Cancellable {
  cancel(): void;
}

/** How a ListAndWatch stream ends, for kubelet's PluginDisconnected. */
export interface StreamEnd {
  /** `ListAndWatch ended: <status>[: <details>]` */
  reason: string;
}

export class PluginEndpoint {
  private readonly client: DevicePluginClient;
  private readonly calls = new Set<Cancellable>();
  private isClosed = false;

  constructor(readonly socketPath: string) {
    // A local subchannel pool keeps this connection apart from any other client of the same socket
    // in this process (grpc-js shares subchannels between clients by default).
    this.client = new DevicePluginClient(unixTarget(socketPath), grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Resolves once the plugin's socket accepts the connection (kubelet's dial-back), or rejects. */
  dial(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve()));
    });
  }

  getDevicePluginOptions(): Promise<DevicePluginOptions__Output> {
    return this.unary<DevicePluginOptions__Output>((cb) => this.client.GetDevicePluginOptions({}, cb));
  }

  /** The plugin's preferred `size` devices for one container; [] when it names none. */
  async getPreferredAllocation(available: string[], mustInclude: string[], size: number): Promise<string[]> {
    const response = await this.unary<PreferredAllocationResponse__Output>((cb) =>
      this.client.GetPreferredAllocation(
        {
          container_requests: [
            { available_deviceIDs: available, must_include_deviceIDs: mustInclude, allocation_size: size },
          ],
        },
        cb,
      ),
    );
    const first = response.container_responses[0];
    if (!first) throw new Error('no container responses');
    return first.deviceIDs;
  }

  /** Allocate with exactly one container request, as kubelet sends it. */
  async allocate(ids: string[]): Promise<ContainerAllocateResponse__Output> {
    const response = await this.unary<AllocateResponse__Output>((cb) =>
      this.client.Allocate({ container_requests: [{ devices_ids: ids }] }, cb),
    );
    const first = response.container_responses[0];
    if (!first) throw new Error('no containers returned in allocation response');
    return first;
  }

  /**
   * Opens ListAndWatch: every message is a full list for `onList`; `onEnd` is told once when the
   * stream ends by itself (not when this endpoint is closed).
   */
  listAndWatch(onList: (devices: Device__Output[]) => void, onEnd: (end: StreamEnd) => void): void {
    if (this.isClosed) return;
    const stream = this.client.ListAndWatch({});
    this.calls.add(stream);
    stream.on('data', (message: ListAndWatchResponse__Output) => {
      if (!this.isClosed) onList(message.devices);
    });
    // 'error' must be handled (an unhandled stream error would crash the process); 'status' follows.
    stream.on('error', () => {});
    stream.on('status', (status: grpc.StatusObject) => {
      this.calls.delete(stream);
      if (this.isClosed) return;
      const details = status.details ? `: ${status.details}` : '';
      onEnd({ reason: `ListAndWatch ended: ${grpc.status[status.code]}${details}` });
    });
  }

  /** Cancels the calls still running and closes the connection. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const call of [...this.calls]) call.cancel();
    this.calls.clear();
    this.client.close();
  }

  /** A unary call on this connection, cancelled if the connection closes first. */
  private unary<T>(start: (callback: grpc.requestCallback<T>) => grpc.ClientUnaryCall): Promise<T> {
    if (this.isClosed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      let done = false;
      const call = start((err, value) => {
        done = true;
        this.calls.delete(call);
        if (err) reject(err);
        else if (value === undefined) reject(new Error('empty response'));
        else resolve(value);
      });
      if (!done) this.calls.add(call);
    });
  }
}
