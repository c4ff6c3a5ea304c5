/**
 * The collector with its Kubernetes sources as the monitor command wires them: names from the pods
 * on the node (PodNamer on the fake API server over HTTP) and allocations from PodResources (the
 * kubelet simulator's server on a real Unix socket), over the real koffi binding on the mock NVML and
 * a generated host /proc. The series a scraper reads join on names: a container is named from its
 * cgroup (a static pod through its config hash), its allocation is matched by (namespace, pod,
 * container), a replica's device ID lands on its GPU, and a pod the API does not know keeps its
 * pod_uid / container_id labels.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { buildInventory } from '../../src/devices/inventory.js';
import { HttpKubeClient } from '../../src/kube/client.js';
import { createLogger } from '../../src/log.js';
import { Collector } from '../../src/monitor/collector.js';
import { CONFIG_HASH_ANNOTATION, PodNamer } from '../../src/monitor/pod-namer.js';
import { PodResourcesAllocations } from '../../src/monitor/pod-resources-allocations.js';
import { HostProcesses } from '../../src/monitor/proc.js';
import { registerSnapshotMetrics } from '../../src/monitor/snapshot-metrics.js';
import { PodResourcesServer, type PodResourcesView } from '../../src/sim/pod-resources.js';
import { containerCgroup, FakeHostProc } from '../helpers/fake-proc.js';
import { openMockNvml, twoGpuState } from '../helpers/mock-nvml.js';
import { monitorState } from '../helpers/monitor-state.js';
import { FakeKubeApi } from '../kube/fake-api.js';

const MIB = 1024 * 1024;
const NODE = 'gpu-node-1';
const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';
const TRAINER_UID = 'aaaaaaaa-0000-4000-8000-000000000001';
const MIRROR_UID = 'bbbbbbbb-0000-4000-8000-000000000002';
const STATIC_HASH = 'd76e26fba3bf2bfd215eb29011d55250';
const UNKNOWN_UID = 'cccccccc-0000-4000-8000-000000000003';
const TRAINER = 'a1'.repeat(32);
const BURN = 'b2'.repeat(32);
const STRANGER = 'c3'.repeat(32);

const logger = createLogger({ level: 'silent' });
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The API's view: the trainer pod and the mirror pod of a static pod, each with one container. */
async function apiWithPods(): Promise<FakeKubeApi> {
  const api = await FakeKubeApi.start(NODE, {});
  cleanups.push(() => api.close());
  api.putPod({
    metadata: { uid: TRAINER_UID, name: 'trainer-0', namespace: 'ml' },
    status: { containerStatuses: [{ name: 'train', containerID: `containerd://${TRAINER}` }] },
  });
  api.putPod({
    metadata: {
      uid: MIRROR_UID,
      name: `gpu-burn-${NODE}`,
      namespace: 'kube-system',
      annotations: { [CONFIG_HASH_ANNOTATION]: STATIC_HASH, 'kubernetes.io/config.mirror': STATIC_HASH },
    },
    status: { containerStatuses: [{ name: 'burn', containerID: `containerd://${BURN}` }] },
  });
  return api;
}

/** kubelet's view: a replica of GPU 0 (a device on two NUMA nodes, listed twice) and GPU 1 whole. */
async function podResources(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-pod-resources-'));
  const socket = path.join(dir, 'kubelet.sock');
  const replica = `${GPU0}::1`;
  const view: PodResourcesView = {
    admissions: () => [
      {
        namespace: 'ml',
        pod: 'trainer-0',
        container: 'train',
        resourceName: 'nvidia.com/gpu',
        deviceIds: [replica],
      },
      {
        namespace: 'kube-system',
        pod: `gpu-burn-${NODE}`,
        container: 'burn',
        resourceName: 'nvidia.com/gpu',
        deviceIds: [GPU1],
      },
    ],
    devices: () =>
      new Map([
        [
          'nvidia.com/gpu',
          [{ ID: replica, health: 'Healthy', topology: { nodes: [{ ID: '0' }, { ID: '1' }] } }],
        ],
      ]),
  };
  const server = await PodResourcesServer.listen(socket, view);
  cleanups.push(async () => {
    server.shutdown();
    await rm(dir, { recursive: true, force: true });
  });
  return socket;
}

async function collectWithKubeSources() {
  const state = monitorState(twoGpuState());
  state.devices[0]!.processes = [{ pid: 101, usedMemoryMiB: 1024, smUtil: 30 }];
  state.devices[1]!.processes = [
    { pid: 201, usedMemoryMiB: 2048 },
    { pid: 301, usedMemoryMiB: 700 },
    { pid: 401, usedMemoryMiB: 300 },
  ];
  const opened = await openMockNvml(state);
  cleanups.push(() => opened.close());
  const proc = await FakeHostProc.create(opened.node.hostPaths.procRoot);
  await proc.add(
    { pid: 101, cgroup: containerCgroup({ podUid: TRAINER_UID, containerId: TRAINER }) },
    { pid: 201, cgroup: containerCgroup({ podUid: STATIC_HASH, containerId: BURN, driver: 'cgroupfs' }) },
    { pid: 301, cgroup: containerCgroup({ podUid: TRAINER_UID, containerId: TRAINER }) },
    { pid: 401, cgroup: containerCgroup({ podUid: UNKNOWN_UID, containerId: STRANGER }) },
  );
  const api = await apiWithPods();
  const namer = await PodNamer.start({
    nodeName: NODE,
    client: new HttpKubeClient({ server: api.url, token: async () => 'token' }),
    logger,
  });
  cleanups.push(() => namer.stop());
  const allocations = await PodResourcesAllocations.start({ socketPath: await podResources(), logger });
  cleanups.push(() => allocations.stop());
  const collector = new Collector({
    nvml: opened.nvml,
    inventory: await buildInventory(opened.nvml, opened.node.hostPaths),
    hostProcesses: new HostProcesses(proc.root),
    namer,
    allocations,
    logger,
  });
  const registry = new Registry();
  registerSnapshotMetrics(registry, () => collector.latest);
  await collector.collectOnce();
  return registry;
}

type Labels = Record<string, string | number>;

async function seriesOf(registry: Registry, name: string): Promise<{ labels: Labels; value: number }[]> {
  const family = (await registry.getMetricsAsJSON()).find((f) => f.name === name);
  return (family?.values ?? []).map((v) => ({ labels: v.labels as Labels, value: v.value }));
}

describe('monitor with its Kubernetes sources (API pods, PodResources)', () => {
  it('names containers, static pods included, and joins their allocations by name', async () => {
    const registry = await collectWithKubeSources();
    const memory = await seriesOf(registry, 'vgpu_container_memory_used_bytes');
    expect(memory).toEqual(
      expect.arrayContaining([
        {
          labels: { uuid: GPU0, gpu: '0', namespace: 'ml', pod: 'trainer-0', container: 'train' },
          value: 1024 * MIB,
        },
        {
          labels: { uuid: GPU1, gpu: '1', namespace: 'ml', pod: 'trainer-0', container: 'train' },
          value: 700 * MIB,
        },
        {
          labels: {
            uuid: GPU1,
            gpu: '1',
            namespace: 'kube-system',
            pod: `gpu-burn-${NODE}`,
            container: 'burn',
          },
          value: 2048 * MIB,
        },
        // Unknown to the API: still exact, labelled by what the cgroup says.
        { labels: { uuid: GPU1, gpu: '1', pod_uid: UNKNOWN_UID, container_id: STRANGER }, value: 300 * MIB },
      ]),
    );
    expect(memory).toHaveLength(4);

    // Allocated a replica of GPU 0 only, the trainer's use of GPU 1 is unallocated; the static pod's
    // GPU 1 is its own; the unnamed pod cannot be joined to PodResources, so it is not called anything.
    expect(await seriesOf(registry, 'vgpu_unallocated_memory_used_bytes')).toEqual([
      {
        labels: {
          uuid: GPU1,
          gpu: '1',
          namespace: 'ml',
          pod: 'trainer-0',
          container: 'train',
          kind: 'container',
        },
        value: 700 * MIB,
      },
    ]);

    expect(await seriesOf(registry, 'vgpu_container_allocation_info')).toEqual([
      {
        labels: {
          uuid: GPU0,
          gpu: '0',
          namespace: 'ml',
          pod: 'trainer-0',
          container: 'train',
          resource: 'nvidia.com/gpu',
          device_id: `${GPU0}::1`,
        },
        value: 1,
      },
      {
        labels: {
          uuid: GPU1,
          gpu: '1',
          namespace: 'kube-system',
          pod: `gpu-burn-${NODE}`,
          container: 'burn',
          resource: 'nvidia.com/gpu',
          device_id: GPU1,
        },
        value: 1,
      },
    ]);
  });
});
