/**
 * What the simulated kubelet knows: per extended resource, the endpoint, its latest device list and
 * the devices handed to containers; per admitted container, which pod it belongs to. Snapshots given
 * out are copies, safe to keep; describeState() puts the state in one line for a timeout message.
 */
import { type Device__Output, type DevicePluginOptions__Output, HEALTHY } from '../kubelet-api/proto.js';
import type { PluginEndpoint } from './plugin-endpoint.js';

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

/** The live record behind a ResourceState. */
export interface ResourceEntry {
  resourceName: string;
  endpoint: string;
  options: DevicePluginOptions__Output;
  devices: Device__Output[];
  registrations: number;
  /** the plugin's endpoint while registered and its stream open; null once stopped */
  conn: PluginEndpoint | null;
  allocated: Set<string>;
  lastError: string | null;
}

/** The container an admission is for, as PodResources names it. */
export interface ContainerRef {
  namespace: string;
  pod: string;
  container: string;
}

/** Devices of one resource given to one container (kubelet's checkpointed pod devices). */
export interface Admission extends ContainerRef {
  resourceName: string;
  deviceIds: string[];
}

export function newEntry(resourceName: string): ResourceEntry {
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

export function snapshot(entry: ResourceEntry): ResourceState {
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

export function cloneDevice(device: Device__Output): Device__Output {
  return {
    ID: device.ID,
    health: device.health,
    topology: device.topology ? { nodes: device.topology.nodes.map((n) => ({ ID: n.ID })) } : null,
  };
}

export function describeState(state: KubeletState): string {
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
