/**
 * HAMi scheduler mode seen by the monitor, end to end: the plugin on a simulated node (mock NVML
 * through koffi, the kubelet simulator over real gRPC, serving PodResources) allocates pods from
 * annotations exactly as HAMi's scheduler writes them (fake API server); then the monitor, composed as
 * `vgpu-agent monitor --kube-api --pod-resources-socket … --hook-path … --compat hami` composes it
 * (LiveMonitor with the CLI's sources: the pods on the node from a fake API server over HTTPS, kubelet's
 * PodResources, the plugin's container directories), reads the containers' GPU processes from the mock
 * NVML and a generated host /proc, and HAMi-core's shared region where the container's
 * CUDA_DEVICE_MEMORY_SHARED_CACHE puts it. Scraped over HTTP: the `vgpu_container_*` series and HAMi's
 * `hami_*` ones carry the scheduler's GPUs and limits, NVML's usage and HAMi-core's.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/cli/monitor-command.js';
import { openMonitorSources } from '../../src/cli/monitor-sources.js';
import { type HamiPod, HttpKubeClient } from '../../src/kube/client.js';
import { CA_FILE_ENV, TOKEN_FILE_ENV } from '../../src/kube/in-cluster.js';
import type { ContainerAllocateResponse } from '../../src/kubelet-api/proto.js';
import { createLogger } from '../../src/log.js';
import { LiveMonitor } from '../../src/monitor/live-monitor.js';
import { mockNvmlLibraryPath, packageRoot } from '../../src/paths.js';
import { HamiApiSimulator } from '../../src/sim/hami-api.js';
import { containerCgroup, FakeHostProc } from '../helpers/fake-proc.js';
import { writeRegionFile } from '../helpers/hami-region-file.js';
import { monitorState } from '../helpers/monitor-state.js';
import { type PluginNode, startPluginNode, tempDir } from '../helpers/plugin-node.js';
import { type ScrapedSample, samplesOf, scrape, seriesValue } from '../helpers/scrape.js';
import { FakeKubeApi } from '../kube/fake-api.js';

const NODE = 'gpu-node-1';
const GPU = 'nvidia.com/gpu';
const MiB = 1024 * 1024;
const TLS_DIR = path.join(packageRoot(), 'test/fixtures/kube-api-tls');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface ScheduledContainer {
  namespace: string;
  pod: string;
  container: string;
  podUid: string;
  containerId: string;
  /** `hami.io/vgpu-devices-to-allocate` as HAMi's scheduler writes it for a one-container pod */
  toAllocate: string;
}

/** The plugin in HAMi mode on dgx-a100, HAMi-core under its hookPath, kubelet serving PodResources. */
async function hamiNode(): Promise<{ api: HamiApiSimulator; hook: string; running: PluginNode }> {
  const api = await HamiApiSimulator.start(NODE);
  cleanups.push(() => api.close());
  const { dir: hook, remove } = await tempDir('vgpu-hami-hook-');
  cleanups.push(remove);
  await writeFile(path.join(hook, 'libvgpu.so'), '');
  await writeFile(path.join(hook, 'ld.so.preload'), `${hook}/libvgpu.so\n`);
  const running = await startPluginNode('dgx-a100', {
    config: `sharing: {hami: {hookPath: ${hook}, deviceSplitCount: 4}}`,
    kube: { client: new HttpKubeClient({ server: api.url }), nodeName: NODE },
    podResources: true,
  });
  cleanups.push(() => running.stop()); // after the monitor, which reads its mock NVML state
  await running.kubelet!.waitFor((s) => s.get(GPU)?.devices.length === 32);
  return { api, hook, running };
}

/** Go's time.Now().Format(time.RFC3339) with a zone offset, as HAMi's scheduler writes the node lock. */
function rfc3339Now(): string {
  return `${new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 19)}+08:00`;
}

/**
 * The scheduler binds the container's pod here (pod annotations and node lock); kubelet admits it with
 * these replica IDs, which only count (named after other GPUs than the scheduler's on purpose).
 */
async function schedule(
  api: HamiApiSimulator,
  running: PluginNode,
  c: ScheduledContainer,
  replicaIds: string[],
): Promise<{ deviceIds: string[]; response: ContainerAllocateResponse }> {
  const pod: HamiPod = {
    metadata: {
      name: c.pod,
      namespace: c.namespace,
      uid: c.podUid,
      resourceVersion: '1',
      annotations: {
        'hami.io/vgpu-devices-to-allocate': c.toAllocate,
        'hami.io/vgpu-devices-allocated': c.toAllocate,
        'hami.io/vgpu-node': NODE,
        'hami.io/vgpu-time': '1700000000',
        'hami.io/bind-time': '1700000000',
        'hami.io/bind-phase': 'allocating',
      },
    },
    spec: { nodeName: NODE, containers: [{ name: c.container }] },
    status: { phase: 'Pending' },
  };
  api.addPod(pod);
  api.nodeAnnotations['hami.io/mutex.lock'] = `${rfc3339Now()},${c.namespace},${c.pod}`;
  const names = { namespace: c.namespace, pod: c.pod, container: c.container };
  return running.kubelet!.allocateIds(GPU, replicaIds, { container: names });
}

/** The host path of a file the container sees at `containerPath`, through the response's mounts. */
function hostPathOf(response: ContainerAllocateResponse, containerPath: string): string {
  const mount = response.mounts!.find((m) => containerPath.startsWith(`${m.container_path}/`))!;
  return path.join(mount.host_path!, path.relative(mount.container_path!, containerPath));
}

/** The pods as the API server lists them once running: each container with its runtime ID. */
async function podsApi(containers: readonly ScheduledContainer[]): Promise<Record<string, string>> {
  const tls = {
    key: await readFile(path.join(TLS_DIR, 'server.key')),
    cert: await readFile(path.join(TLS_DIR, 'server.crt')),
  };
  const api = await FakeKubeApi.start(NODE, {}, { tls });
  cleanups.push(() => api.close());
  for (const c of containers) {
    api.putPod({
      metadata: { uid: c.podUid, name: c.pod, namespace: c.namespace },
      status: { containerStatuses: [{ name: c.container, containerID: `containerd://${c.containerId}` }] },
    });
  }
  const secrets = await mkdtemp(path.join(os.tmpdir(), 'vgpu-sa-'));
  cleanups.push(() => rm(secrets, { recursive: true, force: true }));
  await writeFile(path.join(secrets, 'token'), 'monitor-token\n');
  return {
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: String(api.port),
    [CA_FILE_ENV]: path.join(TLS_DIR, 'server.crt'),
    [TOKEN_FILE_ENV]: path.join(secrets, 'token'),
  };
}

/** `vgpu-agent monitor` on the node with the CLI's sources, as the chart runs it in HAMi mode. */
async function startMonitor(running: PluginNode, hook: string, env: Record<string, string>) {
  const values = {
    'kube-api': true,
    'node-name': NODE,
    'pod-resources-socket': running.podResourcesSocket!,
    'hook-path': hook,
    'split-gc-grace': '5m',
    compat: 'hami',
    'host-proc': running.node.hostPaths.procRoot,
  };
  const monitor = await LiveMonitor.start({
    logger: createLogger({ level: 'silent' }),
    nvmlLibrary: mockNvmlLibraryPath(),
    hostPaths: running.node.hostPaths,
    agentVersion: 'test',
    metricsAddress: '127.0.0.1:0',
    intervalMs: 100,
    env: {},
    openSources: (runtime) => openMonitorSources({ values, env, runtime, intervalMs: 100, parseDuration }),
  });
  cleanups.push(() => monitor.stop());
  return monitor;
}

/** [device_id, uuid, gpu] of each vgpu_container_allocation_info series of the pod. */
function allocationRows(samples: readonly ScrapedSample[], pod: string): string[][] {
  return samplesOf(samples, 'vgpu_container_allocation_info', { pod }).map((s) => [
    s.labels.device_id!,
    s.labels.uuid!,
    s.labels.gpu!,
  ]);
}

const HAMI_CONTAINER_FAMILIES = [
  'hami_vgpu_memory_used_bytes',
  'hami_container_device_memory_bytes',
  'hami_container_device_utilization_ratio',
  'hami_vgpu_memory_limit_bytes',
  'hami_vgpu_memory_context_bytes',
  'hami_vgpu_memory_module_bytes',
  'hami_vgpu_memory_buffer_bytes',
  'hami_container_last_kernel_elapsed_seconds',
];

/** The value of each of HAMi's container families for these labels. */
function hamiSeries(samples: readonly ScrapedSample[], labels: Record<string, string>) {
  return Object.fromEntries(
    HAMI_CONTAINER_FAMILIES.map((name) => [name, seriesValue(samples, name, labels)]),
  );
}

const trainNames = { namespace: 'ml', pod: 'train-0', container: 'main' };
const inferNames = { namespace: 'web', pod: 'infer-0', container: 'server' };

describe('HAMi mode: the monitor', () => {
  it("reports a scheduled container with the scheduler's GPUs and limits, NVML's usage and HAMi-core's", async () => {
    const { api, hook, running } = await hamiNode();
    const [g0, g1, g2] = running.node.state.devices.map((d) => d.uuid) as [string, string, string];
    const train: ScheduledContainer = {
      ...trainNames,
      podUid: 'aaaaaaaa-0000-4000-8000-00000000000a',
      containerId: 'a1'.repeat(32),
      toAllocate: `${g1},NVIDIA,3000,30:;`,
    };
    // gpucores 0: no compute limit (HAMi-core's 100 %); two GPUs: HAMi-core's device order.
    const infer: ScheduledContainer = {
      ...inferNames,
      podUid: 'bbbbbbbb-0000-4000-8000-00000000000b',
      containerId: 'b2'.repeat(32),
      toAllocate: `${g2},NVIDIA,2000,0:${g0},NVIDIA,1000,0:;`,
    };
    const trained = await schedule(api, running, train, [`${g0}-0`]);
    await schedule(api, running, infer, [`${g0}-1`, `${g1}-3`]);

    // Their processes: on the GPUs the scheduler chose, whatever replica IDs kubelet counted.
    const proc = await FakeHostProc.create(running.node.hostPaths.procRoot);
    await proc.setPidNamespace(true);
    await proc.add(
      { pid: 4100, cgroup: containerCgroup({ podUid: train.podUid, containerId: train.containerId }) },
      { pid: 4200, cgroup: containerCgroup({ podUid: infer.podUid, containerId: infer.containerId }) },
    );
    await running.node.update((raw) => {
      const devices = monitorState(raw).devices;
      for (const d of devices) d.processSamplePeriodMs = 50;
      devices[1]!.processes = [{ pid: 4100, usedMemoryMiB: 1200, smUtil: 25 }];
      devices[0]!.processes = [{ pid: 4200, usedMemoryMiB: 700, smUtil: 10 }];
    });
    // HAMi-core's shared region, where the train container's CUDA_DEVICE_MEMORY_SHARED_CACHE puts it.
    const lastKernel = Math.floor(Date.now() / 1000) - 60;
    await writeRegionFile(
      hostPathOf(trained.response, trained.response.envs!.CUDA_DEVICE_MEMORY_SHARED_CACHE!),
      {
        uuids: [g1],
        memoryLimits: [3000 * MiB],
        smLimits: [30],
        lastKernelTime: lastKernel,
        processes: [
          {
            pid: 7,
            hostPid: 4100,
            devices: [
              { context: 300 * MiB, module: 20 * MiB, data: 800 * MiB, total: 1120 * MiB, smUtil: 25 },
            ],
          },
        ],
      },
    );

    const monitor = await startMonitor(running, hook, await podsApi([train, infer]));
    const trainOn = { ...trainNames, uuid: g1, gpu: 1 };
    const series = (samples: ScrapedSample[]) => ({
      used: seriesValue(samples, 'vgpu_container_memory_used_bytes', trainOn),
      sm: seriesValue(samples, 'vgpu_container_sm_utilization_ratio', trainOn),
      limit: seriesValue(samples, 'vgpu_container_memory_limit_bytes', trainOn),
      smLimit: seriesValue(samples, 'vgpu_container_sm_limit_ratio', trainOn),
      hamiUsed: seriesValue(samples, 'vgpu_container_hami_memory_used_bytes', trainOn),
      unallocated: seriesValue(samples, 'vgpu_unallocated_memory_used_bytes', { pod: 'train-0' }),
    });
    await expect
      .poll(async () => series(await scrape(monitor.port)), { timeout: 10_000 })
      .toEqual({
        used: 1200 * MiB,
        sm: 0.25,
        limit: 3000 * MiB,
        smLimit: 0.3,
        hamiUsed: 1120 * MiB,
        unallocated: undefined,
      });
    const samples = await scrape(monitor.port);
    // kubelet's replica ID stands for the GPU the scheduler chose, whichever GPU its name carries.
    expect(allocationRows(samples, 'train-0')).toEqual([[`${g0}-0`, g1, '1']]);

    const hamiTrain = { zone: 'vGPU', ...trainNames, vdevice_index: '0', device_uuid: g1 };
    expect(hamiSeries(samples, hamiTrain)).toEqual({
      hami_vgpu_memory_used_bytes: 1200 * MiB, // NVML's, as every container's (docs/metrics.md)
      hami_container_device_memory_bytes: 1200 * MiB,
      hami_container_device_utilization_ratio: 25,
      hami_vgpu_memory_limit_bytes: 3000 * MiB,
      hami_vgpu_memory_context_bytes: 300 * MiB,
      hami_vgpu_memory_module_bytes: 20 * MiB,
      hami_vgpu_memory_buffer_bytes: 800 * MiB,
      hami_container_last_kernel_elapsed_seconds: expect.toSatisfy((s: number) => s >= 60),
    });

    // Two GPUs, gpucores 0 (no compute limit), no region yet: the annotation's limits in its order.
    const inferOn = (uuid: string, gpu: number) => ({ ...inferNames, uuid, gpu });
    for (const [uuid, gpu, mib] of [
      [g2, 2, 2000],
      [g0, 0, 1000],
    ] as const) {
      expect(seriesValue(samples, 'vgpu_container_memory_limit_bytes', inferOn(uuid, gpu))).toBe(mib * MiB);
      expect(seriesValue(samples, 'vgpu_container_sm_limit_ratio', inferOn(uuid, gpu))).toBe(1);
      expect(
        seriesValue(samples, 'vgpu_container_hami_memory_used_bytes', inferOn(uuid, gpu)),
      ).toBeUndefined();
    }
    expect(seriesValue(samples, 'vgpu_container_memory_used_bytes', inferOn(g0, 0))).toBe(700 * MiB);
    expect(seriesValue(samples, 'vgpu_unallocated_memory_used_bytes', { pod: 'infer-0' })).toBeUndefined();
    expect(allocationRows(samples, 'infer-0')).toEqual([
      [`${g0}-1`, g2, '2'],
      [`${g1}-3`, g0, '0'],
    ]);
    const hamiInfer = (index: number, uuid: string) => ({
      zone: 'vGPU',
      ...inferNames,
      vdevice_index: String(index),
      device_uuid: uuid,
    });
    expect(seriesValue(samples, 'hami_vgpu_memory_limit_bytes', hamiInfer(0, g2))).toBe(2000 * MiB);
    expect(seriesValue(samples, 'hami_vgpu_memory_limit_bytes', hamiInfer(1, g0))).toBe(1000 * MiB);
    // HAMi-core's device index (the GPU's place in the container), not its rank among GPUs in use
    expect(seriesValue(samples, 'hami_vgpu_memory_used_bytes', hamiInfer(1, g0))).toBe(700 * MiB);
  });
});
