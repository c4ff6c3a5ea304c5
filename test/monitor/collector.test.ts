/**
 * The monitor's collection core end to end, minus the wiring: the real koffi binding on the mock
 * NVML, a generated host /proc, the collector, and the series a prom-client Registry serves. Every
 * test reads series values as a scraper would.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { buildInventory } from '../../src/devices/inventory.js';
import { createLogger } from '../../src/log.js';
import { Collector, type CollectorOptions } from '../../src/monitor/collector.js';
import { InMemoryContainers, type KnownContainer } from '../../src/monitor/containers.js';
import { MonitorMetrics } from '../../src/monitor/monitor-metrics.js';
import { HostProcesses } from '../../src/monitor/proc.js';
import { registerSnapshotMetrics } from '../../src/monitor/snapshot-metrics.js';
import { SplitDirectories } from '../../src/monitor/split-directories.js';
import type { MockNvmlState } from '../../src/sim/mock-node.js';
import { containerCgroup, FakeHostProc, hostCgroup } from '../helpers/fake-proc.js';
import { encodeRegion } from '../helpers/hami-region-file.js';
import { type OpenedMock, openMockNvml, twoGpuState } from '../helpers/mock-nvml.js';
import { type MonitorMockState, monitorState } from '../helpers/monitor-state.js';

const MIB = 1024 * 1024;
const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';
const POD_A = 'aaaaaaaa-0000-4000-8000-000000000001';
const POD_B = 'bbbbbbbb-0000-4000-8000-000000000002';
const CTR_A = 'a1'.repeat(32);
const CTR_B = 'b2'.repeat(32);
const TRAINER: KnownContainer = {
  podUid: POD_A,
  containerId: CTR_A,
  names: { namespace: 'ml', pod: 'trainer-0', container: 'train' },
  devices: [GPU0],
};

let opened: OpenedMock | undefined;
let proc: FakeHostProc | undefined;
let collector: Collector | undefined;
afterEach(async () => {
  await collector?.stop();
  collector = undefined;
  await opened?.close();
  opened = undefined;
  proc = undefined; // inside the mock node's directory, removed with it
});

interface MonitorUnderTest {
  opened: OpenedMock;
  proc: FakeHostProc;
  collector: Collector;
  registry: Registry;
}

async function startMonitor(
  state: string | MockNvmlState,
  known: KnownContainer[] = [],
  options: Partial<CollectorOptions> = {},
): Promise<MonitorUnderTest> {
  opened = await openMockNvml(state);
  proc = await FakeHostProc.create(opened.node.hostPaths.procRoot);
  const inventory = await buildInventory(opened.nvml, opened.node.hostPaths);
  const registry = new Registry();
  const containers = new InMemoryContainers(known);
  collector = new Collector({
    nvml: opened.nvml,
    inventory,
    hostProcesses: new HostProcesses(proc.root),
    namer: containers,
    allocations: containers,
    logger: createLogger({ level: 'silent' }),
    hooks: new MonitorMetrics(registry),
    ...options,
  });
  registerSnapshotMetrics(registry, () => collector?.latest);
  return { opened, proc, collector, registry };
}

type Labels = Record<string, string | number>;

/** Every series of a family as a scraper sees it. */
async function series(registry: Registry, name: string): Promise<{ labels: Labels; value: number }[]> {
  const families = await registry.getMetricsAsJSON();
  const family = families.find((f) => f.name === name);
  if (!family) throw new Error(`no family ${name}`);
  return family.values.map((v) => ({ labels: v.labels as Labels, value: v.value }));
}

/** The one series of `name` whose labels include `match`; undefined when there is none. */
async function value(registry: Registry, name: string, match: Labels): Promise<number | undefined> {
  const found = (await series(registry, name)).filter((s) =>
    Object.entries(match).every(([k, v]) => String(s.labels[k]) === String(v)),
  );
  if (found.length > 1) throw new Error(`${name}: ${found.length} series match ${JSON.stringify(match)}`);
  return found[0]?.value;
}

/** Two pods time-slicing GPU 0: trainer (two processes) and an unnamed pod (one process). */
function timeSlicedState(): MonitorMockState {
  const state = monitorState(twoGpuState());
  state.devices[0]!.processes = [
    { pid: 101, usedMemoryMiB: 1024, smUtil: 30 },
    { pid: 102, usedMemoryMiB: 512, smUtil: 10 },
    { pid: 201, usedMemoryMiB: 2048, smUtil: 45 },
  ];
  return state;
}

async function addTimeSlicedProcesses(fake: FakeHostProc): Promise<void> {
  const a = containerCgroup({ podUid: POD_A, containerId: CTR_A });
  const b = containerCgroup({ podUid: POD_B, containerId: CTR_B, driver: 'cgroupfs', runtime: 'crio' });
  await fake.add({ pid: 101, cgroup: a }, { pid: 102, cgroup: a }, { pid: 201, cgroup: b });
}

describe('monitor collection', () => {
  it('splits a time-sliced GPU per container, and the parts add up to the GPU', async () => {
    const m = await startMonitor(timeSlicedState(), [TRAINER]);
    await addTimeSlicedProcesses(m.proc);
    await m.collector.collectOnce();
    const trainer = { namespace: 'ml', pod: 'trainer-0', container: 'train', uuid: GPU0, gpu: 0 };
    const unnamed = { pod_uid: POD_B, container_id: CTR_B, uuid: GPU0, gpu: 0 };
    expect(await value(m.registry, 'vgpu_container_memory_used_bytes', trainer)).toBe(1536 * MIB);
    expect(await value(m.registry, 'vgpu_container_memory_used_bytes', unnamed)).toBe(2048 * MIB);
    expect(await value(m.registry, 'vgpu_container_sm_utilization_ratio', trainer)).toBeCloseTo(0.4, 10);
    expect(await value(m.registry, 'vgpu_container_sm_utilization_ratio', unnamed)).toBeCloseTo(0.45, 10);
    expect(await value(m.registry, 'vgpu_container_processes', trainer)).toBe(2);
    expect(await value(m.registry, 'vgpu_container_processes', unnamed)).toBe(1);
    // The containers' memory adds up to what the GPU reports used; their SM shares to the processes'.
    const containerMemory = (await series(m.registry, 'vgpu_container_memory_used_bytes')).reduce(
      (sum, s) => sum + s.value,
      0,
    );
    expect(containerMemory).toBe(await value(m.registry, 'vgpu_gpu_memory_used_bytes', { uuid: GPU0 }));
    const sm = (await series(m.registry, 'vgpu_container_sm_utilization_ratio')).reduce(
      (sum, s) => sum + s.value,
      0,
    );
    expect(sm).toBeCloseTo((30 + 10 + 45) / 100, 10);
    // Allocated (trainer) or unknown (no names): nothing unallocated.
    expect(await series(m.registry, 'vgpu_unallocated_memory_used_bytes')).toEqual([]);
  });

  it('passes the newest sample time as lastSeen: a process with no newer sample counts 0', async () => {
    const m = await startMonitor(timeSlicedState(), [TRAINER]);
    await addTimeSlicedProcesses(m.proc);
    const trainer = { pod: 'trainer-0', uuid: GPU0 };
    await m.collector.collectOnce();
    expect(await value(m.registry, 'vgpu_container_sm_utilization_ratio', trainer)).toBeCloseTo(0.4, 10);
    // The mock's driver took no sample since: the next interval's share is 0, not the old figure.
    await m.collector.collectOnce();
    expect(await value(m.registry, 'vgpu_container_sm_utilization_ratio', trainer)).toBe(0);
    // A new driver sample (a new state version) is seen by the following collection.
    await m.opened.node.update((s) => {
      s.devices[0]!.processes![0]!.smUtil = 80;
    });
    await expect
      .poll(async () => {
        await m.collector.collectOnce();
        return value(m.registry, 'vgpu_container_sm_utilization_ratio', trainer);
      })
      .toBeCloseTo(0.9, 10);
  });

  it('exports the device readings in base units, and nothing for what a GPU does not support', async () => {
    const state = timeSlicedState();
    Object.assign(state.devices[0]!, { totalEnergyMj: 5_000_123, memoryReservedMiB: 512 });
    state.devices[0]!.clocksMHz = { sm: 1410, memory: 1593 };
    state.devices[1]!.computeCapability = [6, 0]; // no energy counter before Volta
    state.devices[1]!.failures = { nvmlDeviceGetMemoryInfo_v2: 'NOT_SUPPORTED' }; // no reserved figure
    const m = await startMonitor(state);
    await m.collector.collectOnce();
    const gpu0 = { uuid: GPU0, gpu: 0 };
    expect(await value(m.registry, 'vgpu_gpu_energy_joules_total', gpu0)).toBeCloseTo(5000.123, 6);
    expect(await value(m.registry, 'vgpu_gpu_power_watts', gpu0)).toBe(91);
    expect(await value(m.registry, 'vgpu_gpu_temperature_celsius', gpu0)).toBe(41);
    expect(await value(m.registry, 'vgpu_gpu_sm_clock_hertz', gpu0)).toBe(1410e6);
    expect(await value(m.registry, 'vgpu_gpu_memory_clock_hertz', gpu0)).toBe(1593e6);
    expect(await value(m.registry, 'vgpu_gpu_utilization_ratio', gpu0)).toBe(0.35);
    expect(await value(m.registry, 'vgpu_gpu_memory_controller_utilization_ratio', gpu0)).toBe(0.2);
    expect(await value(m.registry, 'vgpu_gpu_memory_total_bytes', gpu0)).toBe(81920 * MIB);
    expect(await value(m.registry, 'vgpu_gpu_memory_reserved_bytes', gpu0)).toBe(512 * MIB);
    expect(await value(m.registry, 'vgpu_gpu_memory_free_bytes', gpu0)).toBe((81920 - 512 - 3584) * MIB);
    expect(await value(m.registry, 'vgpu_gpu_info', gpu0)).toBe(1);
    expect((await series(m.registry, 'vgpu_gpu_info'))[0]!.labels).toMatchObject({
      model: 'NVIDIA A100-SXM4-80GB',
      pci_bus_id: '0000:07:00.0',
      driver_version: '580.95.05',
      cuda_version: '13.0',
      mig_mode: 'disabled',
    });
    // GPU 1: the energy counter and the reserved memory are absent, never 0.
    expect(await value(m.registry, 'vgpu_gpu_energy_joules_total', { uuid: GPU1 })).toBeUndefined();
    expect(await value(m.registry, 'vgpu_gpu_memory_reserved_bytes', { uuid: GPU1 })).toBeUndefined();
    expect(await value(m.registry, 'vgpu_gpu_memory_total_bytes', { uuid: GPU1 })).toBe(81920 * MIB);
  });

  it('reports MIG memory per MIG device and per container, with instance ids and no utilisation', async () => {
    const m = await startMonitor('mixed-mig');
    const gpu = m.opened.node.state.devices[0]!;
    const mig0 = gpu.migDevices![0]!;
    await m.proc.add(
      { pid: 7001, cgroup: containerCgroup({ podUid: POD_A, containerId: CTR_A, qos: 'Guaranteed' }) },
      { pid: 7002, cgroup: containerCgroup({ podUid: POD_B, containerId: CTR_B, version: 1 }) },
      { pid: 8001, cgroup: hostCgroup() },
    );
    await m.collector.collectOnce();
    const onMig0 = { uuid: gpu.uuid, gpu: 0, gpu_instance_id: mig0.giId, compute_instance_id: mig0.ciId };
    expect(await value(m.registry, 'vgpu_container_memory_used_bytes', { ...onMig0, pod_uid: POD_A })).toBe(
      8192 * MIB,
    );
    expect(await value(m.registry, 'vgpu_container_memory_used_bytes', { pod_uid: POD_B })).toBe(2048 * MIB);
    expect(await value(m.registry, 'vgpu_gpu_memory_total_bytes', onMig0)).toBe(mig0.memoryMiB * MIB);
    expect(await value(m.registry, 'vgpu_gpu_memory_used_bytes', onMig0)).toBe(8192 * MIB);
    expect(
      await value(m.registry, 'vgpu_mig_device_info', { ...onMig0, mig_uuid: mig0.uuid, profile: '3g.20gb' }),
    ).toBe(1);
    // Memory per MIG device only: the MIG-enabled GPU has no memory series of its own to double count.
    const gpu0Memory = (await series(m.registry, 'vgpu_gpu_memory_total_bytes')).filter(
      (s) => s.labels.uuid === gpu.uuid,
    );
    expect(gpu0Memory.map((s) => s.labels.gpu_instance_id).sort()).toEqual(['1', '5', '6']);
    // NVML has no per-process (or device) utilisation on MIG: absent, not 0.
    expect(
      await value(m.registry, 'vgpu_container_sm_utilization_ratio', { pod_uid: POD_A }),
    ).toBeUndefined();
    expect(await value(m.registry, 'vgpu_gpu_utilization_ratio', { uuid: gpu.uuid })).toBeUndefined();
    // The board still reports for the MIG-enabled GPU.
    expect(await value(m.registry, 'vgpu_gpu_power_watts', { uuid: gpu.uuid })).toBe(118);
  });

  it('marks a lost GPU down and keeps reporting the others', async () => {
    const m = await startMonitor(timeSlicedState(), [TRAINER]);
    await addTimeSlicedProcesses(m.proc);
    await m.collector.collectOnce();
    expect(await value(m.registry, 'vgpu_gpu_up', { uuid: GPU0 })).toBe(1);
    await m.opened.node.setLost(GPU0, true);
    await expect
      .poll(async () => {
        await m.collector.collectOnce();
        return value(m.registry, 'vgpu_gpu_up', { uuid: GPU0 });
      })
      .toBe(0);
    expect(await value(m.registry, 'vgpu_gpu_up', { uuid: GPU1 })).toBe(1);
    expect(await value(m.registry, 'vgpu_gpu_power_watts', { uuid: GPU1 })).toBe(60);
    expect(await value(m.registry, 'vgpu_gpu_power_watts', { uuid: GPU0 })).toBeUndefined();
    expect(await value(m.registry, 'vgpu_gpu_memory_used_bytes', { uuid: GPU0 })).toBeUndefined();
    expect(await series(m.registry, 'vgpu_container_memory_used_bytes')).toEqual([]);
    expect(await value(m.registry, 'vgpu_gpu_info', { uuid: GPU0 })).toBe(1);
    // It comes back.
    await m.opened.node.setLost(GPU0, false);
    await expect
      .poll(async () => {
        await m.collector.collectOnce();
        return value(m.registry, 'vgpu_gpu_up', { uuid: GPU0 });
      })
      .toBe(1);
  });

  it('drops a process that exited between collections, and counts one NVML lists but /proc lacks', async () => {
    const m = await startMonitor(timeSlicedState(), [TRAINER]);
    await addTimeSlicedProcesses(m.proc);
    await m.collector.collectOnce();
    expect(await value(m.registry, 'vgpu_container_memory_used_bytes', { pod_uid: POD_B })).toBe(2048 * MIB);
    // pid 201 exits: NVML no longer lists it, /proc loses it.
    await m.opened.node.update((s) => {
      s.devices[0]!.processes = s.devices[0]!.processes!.filter((p) => p.pid !== 201);
    });
    await m.proc.exit(201);
    await expect
      .poll(async () => {
        await m.collector.collectOnce();
        return value(m.registry, 'vgpu_container_memory_used_bytes', { pod_uid: POD_B });
      })
      .toBeUndefined();
    expect(await value(m.registry, 'vgpu_container_processes', { pod: 'trainer-0' })).toBe(2);
    // pid 102 is gone from /proc while NVML still lists it (it is exiting, or no hostPID): not attributed.
    await m.proc.exit(102);
    await m.collector.collectOnce();
    expect(await value(m.registry, 'vgpu_container_processes', { pod: 'trainer-0' })).toBe(1);
    expect(await value(m.registry, 'vgpu_agent_processes_not_in_proc', {})).toBe(1);
  });

  it('counts a process in no pod as host use and a container on a GPU it was not allocated as unallocated', async () => {
    const state = timeSlicedState();
    state.devices[1]!.processes = [{ pid: 301, usedMemoryMiB: 700 }];
    const m = await startMonitor(state, [TRAINER]);
    // pid 201: a host job; pid 301: the trainer's container using GPU 1, allocated only GPU 0.
    const trainerCgroup = containerCgroup({ podUid: POD_A, containerId: CTR_A });
    await m.proc.add(
      { pid: 101, cgroup: trainerCgroup },
      { pid: 102, cgroup: trainerCgroup },
      { pid: 201, cgroup: hostCgroup() },
      { pid: 301, cgroup: trainerCgroup },
    );
    await m.collector.collectOnce();
    expect(await value(m.registry, 'vgpu_unallocated_memory_used_bytes', { kind: 'host', uuid: GPU0 })).toBe(
      2048 * MIB,
    );
    expect(await value(m.registry, 'vgpu_unallocated_processes', { kind: 'host', uuid: GPU0 })).toBe(1);
    const escaped = { kind: 'container', uuid: GPU1, namespace: 'ml', pod: 'trainer-0', container: 'train' };
    expect(await value(m.registry, 'vgpu_unallocated_memory_used_bytes', escaped)).toBe(700 * MIB);
    expect(await value(m.registry, 'vgpu_unallocated_processes', escaped)).toBe(1);
    // The trainer's use of GPU 1 is still its container's use (per-namespace sums stay complete).
    expect(
      await value(m.registry, 'vgpu_container_memory_used_bytes', { pod: 'trainer-0', uuid: GPU1 }),
    ).toBe(700 * MIB);
    // Its allocated GPU 0 is not unallocated use.
    expect(
      await value(m.registry, 'vgpu_unallocated_memory_used_bytes', { kind: 'container', uuid: GPU0 }),
    ).toBeUndefined();
  });

  it('re-attributes a reused PID (another start time) to its new container', async () => {
    const m = await startMonitor(timeSlicedState(), [TRAINER]);
    await addTimeSlicedProcesses(m.proc);
    await m.collector.collectOnce();
    expect(await value(m.registry, 'vgpu_container_processes', { pod: 'trainer-0' })).toBe(2);
    await m.proc.reusePid(102, containerCgroup({ podUid: POD_B, containerId: CTR_B }));
    await m.collector.collectOnce();
    expect(await value(m.registry, 'vgpu_container_processes', { pod: 'trainer-0' })).toBe(1);
    expect(await value(m.registry, 'vgpu_container_processes', { pod_uid: POD_B })).toBe(2);
    expect(await value(m.registry, 'vgpu_container_memory_used_bytes', { pod_uid: POD_B })).toBe(2560 * MIB);
  });

  it("serves a split container's limits and HAMi-core usage beside NVML's figures, under their own names", async () => {
    const hookPath = await mkdtemp(path.join(tmpdir(), 'monitor-hook-'));
    const dir = path.join(hookPath, 'containers', 'alloc-1');
    await mkdir(dir, { recursive: true });
    const limits = [{ uuid: GPU0, memoryMiB: 8192, corePercent: 40 }];
    const deviceIds = [`${GPU0}::0`, `${GPU0}::1`];
    const allocation = {
      resource: 'nvidia.com/gpu',
      deviceIds,
      allocatedAt: new Date().toISOString(),
      limits,
    };
    await writeFile(path.join(dir, 'allocation.json'), JSON.stringify(allocation));
    const region = { uuids: [GPU0], processes: [{ pid: 5, devices: [{ total: 1400 * MIB }] }] };
    await writeFile(path.join(dir, 'alloc-1.cache'), encodeRegion(region));
    const splits = new SplitDirectories({
      hookPath,
      assignments: {
        assignments: async () => [{ names: TRAINER.names, resource: 'nvidia.com/gpu', deviceIds }],
      },
      gpus: [{ uuid: GPU0, index: 0 }],
      logger: createLogger({ level: 'silent' }),
    });
    try {
      const m = await startMonitor(timeSlicedState(), [TRAINER], { splits });
      await addTimeSlicedProcesses(m.proc);
      await m.collector.collectOnce();
      const trainer = { namespace: 'ml', pod: 'trainer-0', container: 'train', uuid: GPU0, gpu: 0 };
      expect(await value(m.registry, 'vgpu_container_memory_limit_bytes', trainer)).toBe(8192 * MIB);
      expect(await value(m.registry, 'vgpu_container_sm_limit_ratio', trainer)).toBe(0.4);
      expect(await value(m.registry, 'vgpu_container_hami_memory_used_bytes', trainer)).toBe(1400 * MIB);
      expect(await value(m.registry, 'vgpu_container_memory_used_bytes', trainer)).toBe(1536 * MIB);
    } finally {
      await rm(hookPath, { recursive: true, force: true });
    }
  });

  it('serves the last snapshot without calling NVML, and the snapshot is immutable', async () => {
    const m = await startMonitor(timeSlicedState(), [TRAINER]);
    await addTimeSlicedProcesses(m.proc);
    const snapshot = await m.collector.collectOnce();
    expect(Object.isFrozen(snapshot.devices[0]!.readings)).toBe(true);
    expect(Object.isFrozen(snapshot.containers)).toBe(true);
    m.opened.nvml.shutdown(); // any NVML call now throws
    expect(await value(m.registry, 'vgpu_container_memory_used_bytes', { pod: 'trainer-0' })).toBe(
      1536 * MIB,
    );
    expect(await value(m.registry, 'vgpu_gpu_up', { uuid: GPU0 })).toBe(1);
  });
});

describe('collection schedule', () => {
  it('never overlaps collections: a tick during a slow one is skipped and counted as an overrun', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let lookups = 0;
    const slowProc = {
      lookup: async () => {
        lookups++;
        await gate;
        return undefined;
      },
      retainOnly: () => undefined,
    };
    const m = await startMonitor(timeSlicedState(), [], { hostProcesses: slowProc, intervalMs: 20 });
    m.collector.start();
    await expect
      .poll(() => value(m.registry, 'vgpu_agent_collection_overruns_total', {}))
      .toBeGreaterThanOrEqual(2);
    expect(lookups).toBe(3); // one collection in flight: its three processes, nothing more
    expect(m.collector.latest).toBeUndefined();
    release();
    await expect.poll(() => m.collector.latest).toBeDefined();
    expect(await value(m.registry, 'vgpu_agent_collections_total', {})).toBeGreaterThanOrEqual(1);
  });
});
