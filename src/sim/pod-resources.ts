/**
 * The simulated kubelet's PodResources service (`v1.PodResourcesLister`) on a Unix socket, answered
 * from what the simulator admitted, for tests of whoever reads it (the monitor): List (every pod with
 * an admitted container), Get (one pod) and GetAllocatableResources (every device the plugins
 * advertise). As kubelet does, each device is its own ContainerDevices entry, carrying the NUMA node
 * its plugin reported.
 */
import { rm } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import {
  type ContainerDevices,
  type Device__Output,
  type PodResources,
  type PodResourcesListerHandlers,
  podResourcesListerService,
  unixTarget,
} from '../kubelet-api/proto.js';
import { serviceError } from '../kubelet-api/service-error.js';
import type { Admission } from './kubelet-state.js';

/** What the lister reads, at each call. */
export interface PodResourcesView {
  admissions(): readonly Admission[];
  /** each resource's devices as its plugin last listed them */
  devices(): ReadonlyMap<string, readonly Device__Output[]>;
}

export class PodResourcesServer {
  private constructor(private readonly server: grpc.Server) {}

  /** Serves on `socketPath` (a stale socket file is removed first). */
  static async listen(socketPath: string, view: PodResourcesView): Promise<PodResourcesServer> {
    await rm(socketPath, { force: true });
    const server = new grpc.Server();
    server.addService(podResourcesListerService, handlers(view));
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(unixTarget(socketPath), grpc.ServerCredentials.createInsecure(), (err) => {
        if (!err) return resolve();
        server.forceShutdown();
        reject(new Error(`kubelet simulator: cannot serve PodResources on ${socketPath}: ${err.message}`));
      });
    });
    return new PodResourcesServer(server);
  }

  shutdown(): void {
    this.server.forceShutdown();
  }
}

function handlers(view: PodResourcesView): PodResourcesListerHandlers {
  return {
    List: (_call, callback) => callback(null, { pod_resources: listPods(view) }),
    Get: (call, callback) => {
      const { pod_name: name, pod_namespace: namespace } = call.request;
      const pod = listPods(view).find((p) => p.name === name && p.namespace === namespace);
      if (pod) callback(null, { pod_resources: pod });
      else callback(serviceError(grpc.status.UNKNOWN, `pod ${name} in namespace ${namespace} not found`));
    },
    GetAllocatableResources: (_call, callback) => {
      const devices = [...view.devices()].flatMap(([resourceName, list]) =>
        list.flatMap((device) => containerDevices(resourceName, device.ID, device)),
      );
      callback(null, { devices, cpu_ids: [], memory: [] });
    },
  };
}

interface ContainerEntry {
  name: string;
  devices: ContainerDevices[];
}

/** Pods in the order they were first admitted, containers likewise. */
function listPods(view: PodResourcesView): PodResources[] {
  const devices = view.devices();
  const pods = new Map<string, { name: string; namespace: string; containers: ContainerEntry[] }>();
  for (const admission of view.admissions()) {
    const key = `${admission.namespace}/${admission.pod}`;
    const pod = pods.get(key) ?? { name: admission.pod, namespace: admission.namespace, containers: [] };
    pods.set(key, pod);
    let container = pod.containers.find((c) => c.name === admission.container);
    if (!container) {
      container = { name: admission.container, devices: [] };
      pod.containers.push(container);
    }
    const known = devices.get(admission.resourceName) ?? [];
    for (const id of admission.deviceIds) {
      container.devices.push(
        ...containerDevices(
          admission.resourceName,
          id,
          known.find((d) => d.ID === id),
        ),
      );
    }
  }
  return [...pods.values()];
}

/** One entry per NUMA node of the device (one without topology when it has none), as kubelet lists it. */
function containerDevices(
  resourceName: string,
  id: string,
  device: Device__Output | undefined,
): ContainerDevices[] {
  const nodes = device?.topology?.nodes ?? [];
  if (nodes.length === 0) return [{ resource_name: resourceName, device_ids: [id], topology: null }];
  return nodes.map((node) => ({
    resource_name: resourceName,
    device_ids: [id],
    topology: { nodes: [{ ID: node.ID }] },
  }));
}
