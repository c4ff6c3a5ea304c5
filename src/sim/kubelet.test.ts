import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isExtendedResourceName } from '../kube/names.js';
import {
  type AllocateRequest__Output,
  type ContainerAllocateResponse,
  type ContainerPreferredAllocationRequest__Output,
  type Device,
  type DevicePluginHandlers,
  type DevicePluginOptions,
  devicePluginService,
  type Empty,
  HEALTHY,
  type ListAndWatchResponse,
  type RegisterRequest,
  RegistrationClient,
  UNHEALTHY,
  unixTarget,
} from '../kubelet-api/proto.js';
import { type DisconnectEvent, KubeletSimulator } from './kubelet.js';

const GPU = 'nvidia.com/gpu';

interface FakePluginOptions {
  options?: DevicePluginOptions;
  devices?: Device[];
  /** Answer to GetPreferredAllocation (default: no preference). */
  preferred?: (request: ContainerPreferredAllocationRequest__Output) => string[];
}

/** A tiny device plugin: serves DevicePlugin on `<dir>/<endpoint>` and records what kubelet asked. */
class FakePlugin {
  readonly calls: string[] = [];
  readonly allocateRequests: AllocateRequest__Output[] = [];
  readonly preferredRequests: ContainerPreferredAllocationRequest__Output[][] = [];
  readonly streams = new Set<grpc.ServerWritableStream<Empty, ListAndWatchResponse>>();
  private devices: Device[];

  private constructor(
    readonly socketPath: string,
    readonly endpoint: string,
    private readonly server: grpc.Server,
    options: FakePluginOptions,
  ) {
    this.devices = options.devices ?? [];
  }

  static async start(dir: string, endpoint: string, options: FakePluginOptions = {}): Promise<FakePlugin> {
    const socketPath = join(dir, endpoint);
    await rm(socketPath, { force: true });
    const server = new grpc.Server();
    const plugin = new FakePlugin(socketPath, endpoint, server, options);
    const handlers: DevicePluginHandlers = {
      GetDevicePluginOptions: (_call, callback) => {
        plugin.calls.push('GetDevicePluginOptions');
        callback(null, options.options ?? {});
      },
      ListAndWatch: (call) => {
        plugin.calls.push('ListAndWatch');
        plugin.streams.add(call);
        call.on('cancelled', () => plugin.streams.delete(call));
        call.write({ devices: plugin.devices });
      },
      GetPreferredAllocation: (call, callback) => {
        plugin.calls.push('GetPreferredAllocation');
        const requests = call.request.container_requests;
        plugin.preferredRequests.push(requests);
        callback(null, {
          container_responses: requests.map((r) => ({ deviceIDs: options.preferred?.(r) ?? [] })),
        });
      },
      Allocate: (call, callback) => {
        plugin.calls.push('Allocate');
        plugin.allocateRequests.push(call.request);
        const known = new Set(plugin.devices.map((d) => d.ID));
        const responses: ContainerAllocateResponse[] = [];
        for (const request of call.request.container_requests) {
          const unknown = request.devices_ids.filter((id) => !known.has(id));
          if (unknown.length > 0) {
            callback({ code: grpc.status.INVALID_ARGUMENT, details: `unknown device ${unknown.join(',')}` });
            return;
          }
          responses.push({ envs: { FAKE_DEVICES: request.devices_ids.join(',') } });
        }
        callback(null, { container_responses: responses });
      },
      PreStartContainer: (_call, callback) => callback(null, {}),
    };
    server.addService(devicePluginService, handlers);
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(unixTarget(socketPath), grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    return plugin;
  }

  setDevices(devices: Device[]): void {
    this.devices = devices;
    for (const stream of this.streams) stream.write({ devices });
  }

  register(kubeletSocket: string, resourceName: string, version = 'v1beta1'): Promise<void> {
    return register(kubeletSocket, { version, endpoint: this.endpoint, resource_name: resourceName });
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

function register(kubeletSocket: string, request: RegisterRequest): Promise<void> {
  const client = new RegistrationClient(unixTarget(kubeletSocket), grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.Register(request, { deadline: Date.now() + 5_000 }, (err) => {
      client.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

function devices(n: number, health = HEALTHY): Device[] {
  return Array.from({ length: n }, (_, i) => ({ ID: `dev-${i}`, health, topology: { nodes: [{ ID: 0 }] } }));
}

function pipeHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'PipeWrap' || r === 'PipeServerWrap').length;
}

describe('isExtendedResourceName', () => {
  it.each([
    'nvidia.com/gpu',
    'vendor.example/gpu',
    'nvidia.com/gpu-ts',
    'example.com/a_b.c',
    'nvidia.com/mig-1g.10gb',
  ])('accepts %s', (name) => {
    expect(isExtendedResourceName(name)).toBe(true);
  });

  it.each([
    'gpu',
    'kubernetes.io/gpu',
    'foo.kubernetes.io/gpu',
    'requests.nvidia.com/gpu',
    'Nvidia.com/gpu',
    'nvidia.com/',
    '/gpu',
    'nvidia.com/gpu/extra',
    'nvidia.com/-gpu',
    'nvidia.com/gpu_',
    'nvidia_com/gpu',
    `nvidia.com/${'a'.repeat(64)}`,
    `${'a'.repeat(242)}.com/gpu`,
  ])('rejects %s', (name) => {
    expect(isExtendedResourceName(name)).toBe(false);
  });
});

describe('KubeletSimulator', () => {
  let dir: string;
  let kubelet: KubeletSimulator | undefined;
  const plugins: FakePlugin[] = [];

  async function startPlugin(endpoint: string, options: FakePluginOptions = {}): Promise<FakePlugin> {
    const plugin = await FakePlugin.start(dir, endpoint, options);
    plugins.push(plugin);
    return plugin;
  }

  async function startKubelet(options: { dialTimeoutMs?: number; restartDelayMs?: number } = {}) {
    kubelet = await KubeletSimulator.start({ dir, ...options });
    return kubelet;
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kubelet-sim-'));
  });

  afterEach(async () => {
    await kubelet?.stop();
    kubelet = undefined;
    for (const plugin of plugins.splice(0)) plugin.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves kubelet.sock and dials the plugin back before Register returns', async () => {
    const k = await startKubelet();
    expect((await lstat(k.socketPath)).isSocket()).toBe(true);
    const plugin = await startPlugin('gpu.sock', {
      options: { get_preferred_allocation_available: true },
      devices: devices(2),
    });
    const registered = once(k, 'register');

    await plugin.register(k.socketPath, GPU);

    expect(plugin.calls[0]).toBe('GetDevicePluginOptions');
    const [event] = await registered;
    expect(event).toMatchObject({
      resourceName: GPU,
      endpoint: 'gpu.sock',
      registrations: 1,
      connected: true,
    });
    expect(k.resource(GPU)?.options).toEqual({
      pre_start_required: false,
      get_preferred_allocation_available: true,
    });
    const state = await k.waitFor((s) => s.get(GPU)?.devices.length === 2);
    expect(state.get(GPU)).toMatchObject({ capacity: 2, allocatable: 2, allocated: [] });
    expect(state.get(GPU)?.devices[0]).toEqual({
      ID: 'dev-0',
      health: HEALTHY,
      topology: { nodes: [{ ID: '0' }] },
    });
    expect(plugin.calls).toEqual(['GetDevicePluginOptions', 'ListAndWatch']);
  });

  it('rejects a bad version or resource name with INVALID_ARGUMENT, without dialling back', async () => {
    const k = await startKubelet();
    const plugin = await startPlugin('gpu.sock');

    await expect(plugin.register(k.socketPath, GPU, 'v1alpha1')).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('requested API version "v1alpha1" is not supported'),
    });
    for (const name of ['gpu', 'kubernetes.io/gpu', 'requests.example.com/gpu', 'Example.com/gpu']) {
      await expect(plugin.register(k.socketPath, name)).rejects.toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: `the ResourceName "${name}" is invalid`,
      });
    }
    expect(plugin.calls).toEqual([]);
    expect(k.resources().size).toBe(0);
  });

  it('fails Register when the plugin socket cannot be dialled', async () => {
    const k = await startKubelet({ dialTimeoutMs: 200 });
    await expect(
      register(k.socketPath, { version: 'v1beta1', endpoint: 'missing.sock', resource_name: GPU }),
    ).rejects.toMatchObject({
      code: grpc.status.UNKNOWN,
      details: expect.stringContaining('failed to dial'),
    });
    expect(k.resources().size).toBe(0);
  });

  it('follows ListAndWatch updates and stops the endpoint when the stream ends', async () => {
    const k = await startKubelet();
    const plugin = await startPlugin('gpu.sock', { devices: devices(2) });
    await plugin.register(k.socketPath, GPU);
    await k.waitFor((s) => s.get(GPU)?.allocatable === 2);

    plugin.setDevices([...devices(1), { ID: 'dev-1', health: UNHEALTHY }]);
    await k.waitFor((s) => s.get(GPU)?.allocatable === 1);
    plugin.setDevices(devices(3));
    await k.waitFor((s) => s.get(GPU)?.capacity === 3 && s.get(GPU)?.allocatable === 3);

    const disconnected = once(k, 'disconnect') as Promise<[DisconnectEvent]>;
    plugin.stop();
    const [event] = await disconnected;
    expect(event).toMatchObject({ resourceName: GPU, endpoint: 'gpu.sock' });
    expect(event.reason).toMatch(/ListAndWatch ended/);
    expect(k.resource(GPU)).toMatchObject({ connected: false, capacity: 3, allocatable: 0 });
    await expect(k.allocate(GPU, 1)).rejects.toThrow(/has been stopped/);
  });

  it('allocates one container with GetPreferredAllocation, then exactly one Allocate request', async () => {
    const k = await startKubelet();
    const plugin = await startPlugin('gpu.sock', {
      options: { get_preferred_allocation_available: true },
      devices: [...devices(4), { ID: 'sick', health: UNHEALTHY }],
      // Prefers from the end, and slips in an ID kubelet did not offer.
      preferred: (r) => ['bogus', ...[...r.available_deviceIDs].reverse()],
    });
    await plugin.register(k.socketPath, GPU);
    await k.waitFor((s) => s.get(GPU)?.capacity === 5);

    const first = await k.allocate(GPU, 2);
    expect(first.deviceIds).toEqual(['dev-3', 'dev-2']);
    expect(first.response.envs).toEqual({ FAKE_DEVICES: 'dev-3,dev-2' });
    expect(plugin.preferredRequests[0]).toEqual([
      {
        available_deviceIDs: ['dev-0', 'dev-1', 'dev-2', 'dev-3'],
        must_include_deviceIDs: [],
        allocation_size: 2,
      },
    ]);
    expect(plugin.allocateRequests[0]?.container_requests).toEqual([{ devices_ids: ['dev-3', 'dev-2'] }]);
    expect(k.resource(GPU)?.allocated).toEqual(['dev-3', 'dev-2']);

    await expect(k.allocate(GPU, 3)).rejects.toThrow(
      'requested number of devices unavailable for nvidia.com/gpu. Requested: 3, Available: 2',
    );

    k.release(GPU, ['dev-2']);
    const second = await k.allocate(GPU, 2, { mustInclude: ['dev-0'] });
    expect(plugin.preferredRequests[1]?.[0]).toMatchObject({
      available_deviceIDs: ['dev-0', 'dev-1', 'dev-2'],
      must_include_deviceIDs: ['dev-0'],
      allocation_size: 2,
    });
    expect(second.deviceIds).toEqual(['dev-0', 'dev-2']);
    expect(plugin.allocateRequests).toHaveLength(2);
  });

  it('fills the allocation itself when the plugin offers no preferred allocation', async () => {
    const k = await startKubelet();
    const plugin = await startPlugin('gpu.sock', { devices: devices(3) });
    await plugin.register(k.socketPath, GPU);
    await k.waitFor((s) => s.get(GPU)?.capacity === 3);

    expect((await k.allocate(GPU, 2)).deviceIds).toEqual(['dev-0', 'dev-1']);
    expect(plugin.calls).not.toContain('GetPreferredAllocation');
  });

  it('allocateIds sends exactly the given IDs and surfaces plugin errors', async () => {
    const k = await startKubelet();
    const plugin = await startPlugin('gpu.sock', { devices: devices(2) });
    await plugin.register(k.socketPath, GPU);
    await k.waitFor((s) => s.get(GPU)?.capacity === 2);

    const result = await k.allocateIds(GPU, ['dev-1']);
    expect(result).toEqual({
      deviceIds: ['dev-1'],
      response: expect.objectContaining({ envs: { FAKE_DEVICES: 'dev-1' } }),
    });
    await expect(k.allocateIds(GPU, ['dev-0', 'nope'])).rejects.toThrow(
      /Allocate for nvidia.com\/gpu failed: 3 INVALID_ARGUMENT: unknown device nope/,
    );
    expect(k.resource(GPU)?.allocated).toEqual(['dev-1']);
    await expect(k.allocate('example.com/other', 1)).rejects.toThrow(/unknown resource example.com\/other/);
  });

  it('replaces the endpoint when the same resource registers again', async () => {
    const k = await startKubelet();
    const oldPlugin = await startPlugin('old.sock', { devices: devices(1) });
    await oldPlugin.register(k.socketPath, GPU);
    await k.waitFor((s) => s.get(GPU)?.capacity === 1);
    const disconnects: DisconnectEvent[] = [];
    k.on('disconnect', (e) => disconnects.push(e));

    const newPlugin = await startPlugin('new.sock', { devices: devices(2) });
    await newPlugin.register(k.socketPath, GPU);
    await k.waitFor((s) => s.get(GPU)?.capacity === 2);

    expect(k.resource(GPU)).toMatchObject({ endpoint: 'new.sock', registrations: 2, connected: true });
    await expect.poll(() => oldPlugin.streams.size).toBe(0);
    oldPlugin.stop();
    newPlugin.setDevices(devices(3));
    await k.waitFor((s) => s.get(GPU)?.capacity === 3);
    expect(k.resource(GPU)?.connected).toBe(true);
    expect(disconnects).toEqual([]);
  });

  it('restart deletes every socket, keeps other files and re-creates kubelet.sock', async () => {
    const k = await startKubelet({ restartDelayMs: 20 });
    const plugin = await startPlugin('gpu.sock', { devices: devices(2) });
    await plugin.register(k.socketPath, GPU);
    await k.waitFor((s) => s.get(GPU)?.capacity === 2);
    await k.allocate(GPU, 1);
    await writeFile(join(dir, 'kubelet_internal_checkpoint'), '{}');
    await mkdir(join(dir, 'subdir'));
    const disconnected = once(k, 'disconnect') as Promise<[DisconnectEvent]>;
    const restarted = once(k, 'restart');

    await k.restart();

    await restarted;
    expect((await disconnected)[0].reason).toBe('kubelet restarted');
    expect(existsSync(plugin.socketPath)).toBe(false);
    expect(existsSync(join(dir, 'kubelet_internal_checkpoint'))).toBe(true);
    expect(existsSync(join(dir, 'subdir'))).toBe(true);
    expect((await lstat(k.socketPath)).isSocket()).toBe(true);
    expect(k.resource(GPU)).toMatchObject({
      connected: false,
      devices: [],
      capacity: 0,
      allocatable: 0,
      registrations: 1,
      allocated: ['dev-0'],
    });
    await expect.poll(() => plugin.streams.size).toBe(0);

    // The plugin notices, serves again and re-registers.
    plugin.stop();
    const again = await startPlugin('gpu.sock', { devices: devices(2) });
    await again.register(k.socketPath, GPU);
    const state = await k.waitFor((s) => s.get(GPU)?.allocatable === 2);
    expect(state.get(GPU)).toMatchObject({ connected: true, registrations: 2 });
  });

  it('survives 20 restarts with re-registration and leaks no sockets', async () => {
    const baseline = pipeHandles();
    const k = await startKubelet({ restartDelayMs: 0 });
    let plugin = await startPlugin('gpu.sock', { devices: devices(1) });
    await plugin.register(k.socketPath, GPU);
    for (let i = 0; i < 20; i++) {
      await k.restart();
      plugin.stop();
      plugin = await startPlugin('gpu.sock', { devices: devices(1) });
      await plugin.register(k.socketPath, GPU);
      await k.waitFor((s) => s.get(GPU)?.allocatable === 1);
    }
    expect(k.resource(GPU)?.registrations).toBe(21);

    await k.stop();
    for (const p of plugins) p.stop();
    await expect.poll(() => pipeHandles(), { timeout: 5_000 }).toBeLessThanOrEqual(baseline);
  });

  it('serializes concurrent restarts and lets stop() interrupt one', async () => {
    const k = await startKubelet({ restartDelayMs: 10 });
    const restarts: number[] = [];
    k.on('restart', () => restarts.push(restarts.length));
    await Promise.all([k.restart(), k.restart(), k.restart()]);
    expect(restarts).toHaveLength(3);
    const plugin = await startPlugin('gpu.sock', { devices: devices(1) });
    await plugin.register(k.socketPath, GPU);
    await k.waitFor((s) => s.get(GPU)?.allocatable === 1);

    // stop() during the restart's pause: the restart ends quietly without re-creating kubelet.sock.
    const disconnected = once(k, 'disconnect');
    const interrupted = k.restart({ delayMs: 100 });
    await disconnected;
    await k.stop();
    await interrupted;
    expect(restarts).toHaveLength(3);
    expect(existsSync(k.socketPath)).toBe(false);
    await expect(k.restart()).rejects.toThrow('kubelet simulator is stopped');
  });

  it('stop closes plugin streams, removes kubelet.sock and rejects waiters', async () => {
    const k = await startKubelet();
    const plugin = await startPlugin('gpu.sock', { devices: devices(1) });
    await plugin.register(k.socketPath, GPU);
    await k.waitFor((s) => s.get(GPU)?.capacity === 1);
    const waiting = expect(k.waitFor(() => false, { timeoutMs: 10_000 })).rejects.toThrow(
      'kubelet simulator is stopped',
    );

    await k.stop();
    await k.stop();

    await waiting;
    expect(existsSync(k.socketPath)).toBe(false);
    await expect.poll(() => plugin.streams.size).toBe(0);
    expect(k.resource(GPU)?.connected).toBe(false);
    await expect(k.restart()).rejects.toThrow('kubelet simulator is stopped');
  });

  it('waitFor times out with the current state in the message', async () => {
    const k = await startKubelet();
    const plugin = await startPlugin('gpu.sock', { devices: devices(1) });
    await plugin.register(k.socketPath, GPU);
    await expect(k.waitFor(() => false, { timeoutMs: 50, description: 'never' })).rejects.toThrow(
      /timed out after 50 ms waiting for never; state: .*"nvidia.com\/gpu".*"connected":true/,
    );
  });
});
