/**
 * Resource on plain data: the device list kubelet gets (health, NUMA topology), which preferred-
 * allocation policy answers, and Allocate's refusals in the order kubelet would meet them. The
 * integration tests (plugin, split, sharing) go through kubelet; these pin the rules themselves.
 */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { HealthState } from '../../src/devices/health-state.js';
import { gpuTarget } from '../../src/devices/mig-strategy.js';
import type { AdvertisedDevice, ResourceSpec, SharingMode } from '../../src/devices/resource-types.js';
import { TopologyScores } from '../../src/plugin/preferred-allocation.js';
import { RequestError } from '../../src/plugin/request-error.js';
import { Resource, type ResourceContext } from '../../src/plugin/resource.js';
import { gpu, linkedInventory, uuidOf } from '../helpers/inventory.js';

const GPU = 'nvidia.com/gpu';

function resource(
  devices: AdvertisedDevice[],
  { sharing = 'exclusive' as SharingMode, failRequestsGreaterThanOne = false } = {},
) {
  const health = new HealthState();
  const context: ResourceContext = {
    health,
    allocate: {
      deviceListStrategies: ['envvar'],
      deviceIdStrategy: 'uuid',
      passDeviceSpecs: false,
      devRoot: '/',
      controlDeviceNodes: [],
      cdiAnnotationPrefix: 'cdi.k8s.io/',
      cdiKind: 'nvidia.com/gpu',
      extraEnvs: {},
    },
    sharedAllocationPolicy: 'distributed',
    topology: TopologyScores.of(linkedInventory(4, (a, b) => (a + b === 3 ? 12 : 0))),
  };
  const spec: ResourceSpec = { name: GPU, sharing, devices, failRequestsGreaterThanOne };
  return { resource: new Resource(spec, () => context), health };
}

const whole = (...indexes: number[]) =>
  indexes.map((i): AdvertisedDevice => ({ id: uuidOf(i), target: gpuTarget(gpu(i)) }));
const replicas = (index: number, count: number) =>
  Array.from(
    { length: count },
    (_, n): AdvertisedDevice => ({ id: `${uuidOf(index)}::${n}`, target: gpuTarget(gpu(index)), share: n }),
  );

/** The RequestError a call throws, as [code, message]. */
async function refusal(call: () => Promise<unknown>): Promise<[status, string]> {
  const err = await call().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RequestError);
  return [(err as RequestError).code, (err as RequestError).message];
}

describe('Resource.listDevices', () => {
  it('gives each device its health and NUMA node, and no topology when the node is unknown', () => {
    const devices = [...whole(0), { id: uuidOf(1), target: { ...gpuTarget(gpu(1)), numaNode: null } }];
    const { resource: r, health } = resource(devices);
    health.markUnhealthy(uuidOf(0), 'Xid 79', 0, 79);
    expect(r.listDevices()).toEqual([
      { ID: uuidOf(0), health: 'Unhealthy', topology: { nodes: [{ ID: 0 }] } },
      { ID: uuidOf(1), health: 'Healthy', topology: null },
    ]);
  });
});

describe('Resource.preferredAllocation', () => {
  it('whole GPUs by topology: the NVLinked pair (0, 3), not the first two offered', () => {
    const { resource: r } = resource(whole(0, 1, 2, 3));
    expect(r.preferredAllocation([uuidOf(0), uuidOf(1), uuidOf(2), uuidOf(3)], [uuidOf(0)], 2)).toEqual([
      uuidOf(0),
      uuidOf(3),
    ]);
  });

  it('replicas by the shared-allocation policy: a two-replica request on one GPU', () => {
    const { resource: r } = resource([...replicas(0, 2), ...replicas(1, 2)], { sharing: 'time-slicing' });
    const offered = [...replicas(0, 2), ...replicas(1, 2)]
      .map((d) => d.id)
      .filter((id) => id !== `${uuidOf(0)}::0`);
    expect(r.preferredAllocation(offered, [], 2)).toEqual([`${uuidOf(1)}::0`, `${uuidOf(1)}::1`]);
  });

  it('refuses a request that names a device twice, before any search', () => {
    const { resource: r } = resource(whole(0, 1));
    expect(() => r.preferredAllocation([uuidOf(0), uuidOf(0)], [], 1)).toThrow(
      `invalid GetPreferredAllocation request for ${GPU}: available device ID "${uuidOf(0)}" is listed twice`,
    );
  });
});

describe('Resource.allocate', () => {
  it('refuses an empty container request', async () => {
    const { resource: r } = resource(whole(0));
    expect(await refusal(() => r.allocate([]))).toEqual([
      status.INVALID_ARGUMENT,
      `${GPU}: container request has no device IDs`,
    ]);
  });

  it('names unknown devices first, then a repeated one, then the Unhealthy ones', async () => {
    const { resource: r, health } = resource(whole(0, 1));
    health.markUnhealthy(uuidOf(1), 'Xid 48', 0, 48);
    expect(await refusal(() => r.allocate([uuidOf(1), 'GPU-x', 'GPU-y']))).toEqual([
      status.INVALID_ARGUMENT,
      `invalid request: unknown devices GPU-x, GPU-y for resource ${GPU}`,
    ]);
    expect(await refusal(() => r.allocate(['GPU-x']))).toEqual([
      status.INVALID_ARGUMENT,
      `invalid request: unknown device GPU-x for resource ${GPU}`,
    ]);
    expect(await refusal(() => r.allocate([uuidOf(1), uuidOf(1)]))).toEqual([
      status.INVALID_ARGUMENT,
      `invalid request: device ${uuidOf(1)} requested twice`,
    ]);
    expect(await refusal(() => r.allocate([uuidOf(0), uuidOf(1)]))).toEqual([
      status.FAILED_PRECONDITION,
      `device ${uuidOf(1)} of ${GPU} is Unhealthy; kubelet should pick another`,
    ]);
    await expect(r.allocate([uuidOf(0)])).resolves.toMatchObject({
      envs: { NVIDIA_VISIBLE_DEVICES: uuidOf(0) },
    });
  });

  it('failRequestsGreaterThanOne limits shared resources only, with NVIDIA’s text', async () => {
    const shared = resource(replicas(0, 4), { sharing: 'time-slicing', failRequestsGreaterThanOne: true });
    expect(await refusal(() => shared.resource.allocate([`${uuidOf(0)}::0`, `${uuidOf(0)}::1`]))).toEqual([
      status.INVALID_ARGUMENT,
      'invalid request: maximum request size for shared resources is 1; found 2',
    ]);
    await expect(shared.resource.allocate([`${uuidOf(0)}::2`])).resolves.toBeDefined();
    // Whole GPUs are never limited by it, whatever the spec says.
    const exclusive = resource(whole(0, 1), { failRequestsGreaterThanOne: true });
    await expect(exclusive.resource.allocate([uuidOf(0), uuidOf(1)])).resolves.toMatchObject({
      envs: { NVIDIA_VISIBLE_DEVICES: `${uuidOf(0)},${uuidOf(1)}` },
    });
  });

  it('follows a spec update: devices that left are unknown, new ones allocatable', async () => {
    const { resource: r } = resource(whole(0));
    r.update({ name: GPU, sharing: 'exclusive', devices: whole(1), failRequestsGreaterThanOne: false });
    expect(await refusal(() => r.allocate([uuidOf(0)]))).toEqual([
      status.INVALID_ARGUMENT,
      `invalid request: unknown device ${uuidOf(0)} for resource ${GPU}`,
    ]);
    await expect(r.allocate([uuidOf(1)])).resolves.toBeDefined();
    expect(r.preferredAllocation([uuidOf(1)], [], 1)).toEqual([uuidOf(1)]);
  });
});
