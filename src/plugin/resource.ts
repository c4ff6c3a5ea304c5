/**
 * One advertised resource: its devices, their health, preferred allocation and Allocate answers.
 * Implements ResourceHandler for the gRPC server; everything here works on plain data.
 */
import { status } from '@grpc/grpc-js';
import type { HamiSettings } from '../config/schema.js';
import type { HealthState } from '../devices/health-state.js';
import type { AdvertisedDevice, ResourceSpec } from '../devices/resource-types.js';
import type { HamiAllocator } from '../hami/allocator.js';
import { type ContainerAllocateResponse, type Device, HEALTHY, UNHEALTHY } from '../kubelet-api/proto.js';
import { type AllocateSettings, containerAllocateResponse } from './allocate-response.js';
import {
  preferInOrder,
  preferShares,
  preferWholeGpus,
  type SharedAllocationPolicy,
  type TopologyScores,
} from './preferred-allocation.js';
import { checkPreferredRequest } from './preferred-request.js';
import { describeIds, RequestError } from './request-error.js';
import type { ResourceHandler } from './resource-handler.js';
import type { SplitAllocator } from './split-allocation.js';

export interface ResourceContext {
  health: HealthState;
  allocate: AllocateSettings;
  sharedAllocationPolicy: SharedAllocationPolicy;
  topology: TopologyScores;
  /** adds what a container of split slices needs (HAMi-core env and mounts); may touch the host */
  split?: SplitAllocator;
  /** HAMi mode: Allocate carries out the scheduler's decision */
  hami?: { allocator: HamiAllocator; settings: HamiSettings; hamiCore: SplitAllocator };
}

export class Resource implements ResourceHandler {
  private byId = new Map<string, AdvertisedDevice>();
  /** each device's position in the spec: requests are checked by marking positions */
  private indexById = new Map<string, number>();

  constructor(
    private spec: ResourceSpec,
    /** read on every call: a config reload may change allocation settings without a new Resource */
    private readonly contextOf: () => ResourceContext,
  ) {
    this.update(spec);
  }

  get resourceName(): string {
    return this.spec.name;
  }

  get devices(): readonly AdvertisedDevice[] {
    return this.spec.devices;
  }

  update(spec: ResourceSpec): void {
    this.spec = spec;
    this.byId = new Map(spec.devices.map((d) => [d.id, d]));
    this.indexById = new Map(spec.devices.map((d, i) => [d.id, i]));
  }

  listDevices(): Device[] {
    return this.spec.devices.map((device) => ({
      ID: device.id,
      health: this.contextOf().health.isHealthy(device.target) ? HEALTHY : UNHEALTHY,
      topology: device.target.numaNode === null ? null : { nodes: [{ ID: device.target.numaNode }] },
    }));
  }

  preferredAllocation(available: readonly string[], mustInclude: readonly string[], size: number): string[] {
    const request = checkPreferredRequest({ available, mustInclude, size }, this.spec.name, this.indexById);
    if (this.spec.sharing !== 'exclusive') {
      return preferShares(request, this.byId, this.contextOf().sharedAllocationPolicy);
    }
    if (this.spec.devices.every((d) => d.target.kind === 'gpu')) {
      return preferWholeGpus(request, this.contextOf().topology);
    }
    return preferInOrder(request);
  }

  async allocate(ids: readonly string[]): Promise<ContainerAllocateResponse> {
    const devices = this.validate(ids);
    const response = containerAllocateResponse(devices, this.contextOf().allocate);
    if (this.spec.sharing === 'split')
      await this.contextOf().split?.extend(devices, response, this.spec.name);
    return response;
  }

  /** HAMi mode answers a whole Allocate call from the pod's annotations; other modes answer per container. */
  get allocateContainers() {
    if (this.spec.sharing !== 'hami') return undefined;
    return (requests: readonly (readonly string[])[]) => this.allocateFromScheduler(requests);
  }

  private async allocateFromScheduler(
    requests: readonly (readonly string[])[],
  ): Promise<ContainerAllocateResponse[]> {
    const context = this.contextOf();
    if (!context.hami) {
      throw new RequestError(status.FAILED_PRECONDITION, `${this.spec.name}: HAMi mode is not set up`);
    }
    const gpus = new Map(this.spec.devices.map((d) => [d.target.uuid, d.target]));
    return context.hami.allocator.allocate(requests, {
      settings: context.hami.settings,
      hamiCore: context.hami.hamiCore,
      allocate: context.allocate,
      health: context.health,
      gpus,
    });
  }

  private validate(ids: readonly string[]): AdvertisedDevice[] {
    const name = this.spec.name;
    if (ids.length === 0)
      throw new RequestError(status.INVALID_ARGUMENT, `${name}: container request has no device IDs`);
    const unknown = ids.filter((id) => !this.byId.has(id));
    if (unknown.length > 0) {
      throw new RequestError(
        status.INVALID_ARGUMENT,
        `invalid request: unknown device${unknown.length > 1 ? 's' : ''} ${describeIds(unknown)} for resource ${name}`,
      );
    }
    const duplicate = firstDuplicate(ids);
    if (duplicate !== undefined) {
      throw new RequestError(
        status.INVALID_ARGUMENT,
        `invalid request: device ${describeIds([duplicate])} requested twice`,
      );
    }
    if (this.spec.failRequestsGreaterThanOne && this.spec.sharing !== 'exclusive' && ids.length > 1) {
      throw new RequestError(
        status.INVALID_ARGUMENT,
        `invalid request: maximum request size for shared resources is 1; found ${ids.length}`,
      );
    }
    const devices = ids.map((id) => this.byId.get(id)!);
    const unhealthy = devices.filter((d) => !this.contextOf().health.isHealthy(d.target));
    if (unhealthy.length > 0) {
      throw new RequestError(
        status.FAILED_PRECONDITION,
        `device ${describeIds(unhealthy.map((d) => d.id))} of ${name} is Unhealthy; kubelet should pick another`,
      );
    }
    return devices;
  }
}

/** Linear, not quadratic: a request may name tens of thousands of replicas. */
function firstDuplicate(ids: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) return id;
    seen.add(id);
  }
  return undefined;
}
