/**
 * `--compat dcgm` and `--compat hami` on plain snapshots: dcgm-exporter's and HAMi's names, units and
 * labels, and on shared GPUs our per-container split (each container its own share, the parts adding
 * up to the device) instead of one random pod or copies. Also served through prom-client as a scrape
 * sees them.
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { compatFamilySets } from '../../src/monitor/compat.js';
import { DCGM_FAMILIES, dcgmFamilies, nvmlBusId } from '../../src/monitor/compat-dcgm.js';
import { HAMI_FAMILIES, hamiFamilies } from '../../src/monitor/compat-hami.js';
import type { MetricFamilies } from '../../src/monitor/metric-families.js';
import type {
  ContainerUsage,
  DeviceSnapshot,
  MonitoredDevice,
  MonitorSnapshot,
  SplitUsage,
} from '../../src/monitor/snapshot.js';
import { registerSnapshotMetrics } from '../../src/monitor/snapshot-metrics.js';

const MiB = 1024 * 1024;
const GPU0: MonitoredDevice = { uuid: 'GPU-0', gpuUuid: 'GPU-0', gpuIndex: 0 };
const GPU1: MonitoredDevice = { uuid: 'GPU-1', gpuUuid: 'GPU-1', gpuIndex: 1 };
const MIG: MonitoredDevice = {
  uuid: 'MIG-a',
  gpuUuid: 'GPU-1',
  gpuIndex: 1,
  mig: { gpuInstanceId: 2, computeInstanceId: 0, profile: '3g.40gb' },
};
const TRAIN = { namespace: 'ml', pod: 'trainer-0', container: 'train' };
const SERVE = { namespace: 'web', pod: 'serve-1', container: 'api' };

function gpuDevice(device: MonitoredDevice, extra: Partial<DeviceSnapshot['readings']> = {}): DeviceSnapshot {
  return {
    device,
    up: true,
    processes: [],
    readings: {
      memoryTotalBytes: 81920 * MiB,
      memoryUsedBytes: 6000 * MiB,
      memoryFreeBytes: 75000 * MiB,
      memoryReservedBytes: 920 * MiB,
      gpuUtilizationRatio: 0.9,
      memoryControllerUtilizationRatio: 0.25,
      temperatureCelsius: 61,
      powerWatts: 250.5,
      energyJoules: 123.456,
      smClockHertz: 1410e6,
      memoryClockHertz: 1593e6,
      ...extra,
    },
  };
}

function usage(
  device: MonitoredDevice,
  names: ContainerUsage['names'],
  memoryMiB: number,
  sm?: number,
): ContainerUsage {
  const u: ContainerUsage = {
    device,
    podUid: `uid-${names?.pod ?? 'x'}`,
    allocation: 'allocated',
    memoryUsedBytes: memoryMiB * MiB,
    processCount: 1,
  };
  if (names) u.names = names;
  if (sm !== undefined) u.smUtilizationRatio = sm;
  return u;
}

function snapshot(parts: Partial<MonitorSnapshot> = {}): MonitorSnapshot {
  return {
    takenAtMs: 1_790_000_100_500,
    durationSeconds: 0,
    driverVersion: '580.95.05',
    cudaDriverVersion: '13.0',
    gpus: [
      { uuid: 'GPU-0', index: 0, model: 'NVIDIA A100-SXM4-80GB', busId: '0000:07:00.0', migMode: 'disabled' },
      { uuid: 'GPU-1', index: 1, model: 'NVIDIA A100-SXM4-80GB', busId: '0000:0f:00.0', migMode: 'enabled' },
    ],
    devices: [gpuDevice(GPU0)],
    containers: [],
    host: [],
    processesNotInProc: 0,
    ...parts,
  };
}

function rows(families: MetricFamilies, name: string) {
  return families.get(name) ?? [];
}

const DEVICE0 = {
  gpu: '0',
  UUID: 'GPU-0',
  pci_bus_id: '00000000:07:00.0',
  device: 'nvidia0',
  modelName: 'NVIDIA A100-SXM4-80GB',
  Hostname: 'gpu-node-1',
  DCGM_FI_DRIVER_VERSION: '580.95.05',
};

describe('--compat dcgm', () => {
  it("labels a GPU one container uses with it, in dcgm-exporter's units", () => {
    const families = dcgmFamilies(snapshot({ containers: [usage(GPU0, TRAIN, 5000, 0.8)] }), {
      nodeName: 'gpu-node-1',
    });
    const labels = { ...DEVICE0, ...TRAIN };
    expect(rows(families, 'DCGM_FI_DEV_FB_USED')).toEqual([{ labels, value: 6000 }]);
    expect(rows(families, 'DCGM_FI_DEV_GPU_UTIL')).toEqual([{ labels, value: 90 }]);
    expect(rows(families, 'DCGM_FI_DEV_SM_CLOCK')).toEqual([{ labels, value: 1410 }]);
    expect(rows(families, 'DCGM_FI_DEV_MEM_CLOCK')[0]!.value).toBe(1593);
    expect(rows(families, 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION')[0]!.value).toBeCloseTo(123456, 6);
    expect(rows(families, 'DCGM_FI_DEV_MEM_COPY_UTIL')[0]!.value).toBe(25);
    expect(rows(families, 'DCGM_FI_DEV_FB_FREE')[0]!.value).toBe(75000);
    expect(rows(families, 'DCGM_FI_DEV_FB_RESERVED')[0]!.value).toBe(920);
    expect(rows(families, 'DCGM_FI_DEV_GPU_TEMP')[0]!.value).toBe(61);
    expect(rows(families, 'DCGM_FI_DEV_POWER_USAGE')[0]!.value).toBe(250.5);
  });

  it('splits FB_USED and GPU_UTIL of a shared GPU per container, the rest unlabelled, adding up to the device', () => {
    const families = dcgmFamilies(
      snapshot({ containers: [usage(GPU0, TRAIN, 3500, 0.5), usage(GPU0, SERVE, 1500, 0.25)] }),
      { nodeName: 'gpu-node-1' },
    );
    expect(rows(families, 'DCGM_FI_DEV_FB_USED')).toEqual([
      { labels: { ...DEVICE0, ...TRAIN }, value: 3500 },
      { labels: { ...DEVICE0, ...SERVE }, value: 1500 },
      { labels: DEVICE0, value: 1000 },
    ]);
    const util = rows(families, 'DCGM_FI_DEV_GPU_UTIL');
    expect(util.map((r) => r.labels.pod)).toEqual(['trainer-0', 'serve-1', undefined]);
    expect(util.map((r) => r.value).reduce((a, b) => a + b)).toBeCloseTo(90, 10);
    expect(util[2]!.value).toBeCloseTo(15, 10);
    // Device-only fields: one series, no pod copied onto it.
    expect(rows(families, 'DCGM_FI_DEV_GPU_TEMP')).toEqual([{ labels: DEVICE0, value: 61 }]);
  });

  it('labels MIG devices with their profile and GPU instance, memory only, and unnamed containers by pod UID', () => {
    const migDevice: DeviceSnapshot = {
      device: MIG,
      up: true,
      processes: [],
      readings: { memoryTotalBytes: 40960 * MiB, memoryUsedBytes: 2048 * MiB, memoryFreeBytes: 38912 * MiB },
    };
    const families = dcgmFamilies(
      snapshot({
        devices: [gpuDevice(GPU0), { ...gpuDevice(GPU1), readings: { temperatureCelsius: 40 } }, migDevice],
        containers: [usage(MIG, undefined, 2048)],
      }),
    );
    const migLabels = {
      gpu: '1',
      UUID: 'GPU-1',
      pci_bus_id: '00000000:0F:00.0',
      device: 'nvidia1',
      modelName: 'NVIDIA A100-SXM4-80GB',
      DCGM_FI_DRIVER_VERSION: '580.95.05',
      GPU_I_PROFILE: '3g.40gb',
      GPU_I_ID: '2',
    };
    expect(rows(families, 'DCGM_FI_DEV_FB_USED')).toContainEqual({
      labels: { ...migLabels, pod_uid: 'uid-x' },
      value: 2048,
    });
    expect(rows(families, 'DCGM_FI_DEV_GPU_UTIL').map((r) => r.labels.gpu)).toEqual(['0']);
    expect(rows(families, 'DCGM_FI_DEV_GPU_TEMP').map((r) => [r.labels.gpu, r.value])).toEqual([
      ['0', 61],
      ['1', 40],
    ]);
  });

  it('leaves a device that is down out, and converts bus ids to NVML form', () => {
    const down: DeviceSnapshot = { device: GPU0, up: false, error: 'lost', readings: {}, processes: [] };
    expect(dcgmFamilies(snapshot({ devices: [down] })).size).toBe(0);
    expect(nvmlBusId('0000:3b:00.0')).toBe('00000000:3B:00.0');
    expect(nvmlBusId('00000001:3b:00.1')).toBe('00000001:3B:00.1');
  });
});

describe('--compat hami', () => {
  const split: SplitUsage = {
    device: GPU0,
    names: TRAIN,
    allocation: 'a1',
    deviceIds: [`${GPU0.uuid}::0`],
    deviceIndex: 0,
    memoryLimitBytes: 10240 * MiB,
    smLimitRatio: 0.5,
    hami: {
      deviceIndex: 0,
      memoryUsedBytes: 3400 * MiB,
      contextBytes: 300 * MiB,
      moduleBytes: 100 * MiB,
      dataBytes: 3000 * MiB,
      smUtilPercent: 140,
      processCount: 2,
      lastKernelTimeSeconds: 1_790_000_090,
    },
  };

  it("exports HAMi's host series with its labels and percent units", () => {
    const families = hamiFamilies(snapshot(), { nodeName: 'gpu-node-1' });
    const labels = {
      zone: 'vGPU',
      node: 'gpu-node-1',
      device_index: '0',
      device_uuid: 'GPU-0',
      device_type: 'NVIDIA-NVIDIA A100-SXM4-80GB',
    };
    expect(rows(families, 'hami_host_gpu_memory_used_bytes')).toEqual([{ labels, value: 6000 * MiB }]);
    expect(rows(families, 'hami_host_gpu_utilization_ratio')).toEqual([{ labels, value: 90 }]);
    const { node: _, ...withoutNode } = labels;
    expect(rows(families, 'hami_host_gpu_memory_controller_utilization_ratio')).toEqual([
      { labels: withoutNode, value: 25 },
    ]);
  });

  it('exports every named container on a GPU, with its NVML memory and utilisation in percent capped at 100', () => {
    const families = hamiFamilies(
      snapshot({
        devices: [gpuDevice(GPU0), gpuDevice(GPU1)],
        containers: [
          usage(GPU1, SERVE, 1000, 0.7),
          usage(GPU0, SERVE, 500, 0.6),
          usage(GPU0, SERVE, 100, 0.6), // the same container seen under two IDs (restart): merged
          usage(GPU0, undefined, 64),
        ],
      }),
    );
    const serve = (index: string, uuid: string) => ({
      zone: 'vGPU',
      ...SERVE,
      vdevice_index: index,
      device_uuid: uuid,
    });
    expect(rows(families, 'hami_vgpu_memory_used_bytes')).toEqual([
      { labels: serve('1', 'GPU-1'), value: 1000 * MiB },
      { labels: serve('0', 'GPU-0'), value: 600 * MiB },
    ]);
    expect(rows(families, 'hami_container_device_memory_bytes')).toEqual(
      rows(families, 'hami_vgpu_memory_used_bytes'),
    );
    expect(rows(families, 'hami_container_device_utilization_ratio').map((r) => r.value)).toEqual([70, 100]);
  });

  it("exports a split container's limit and HAMi-core's breakdown, and the time since its last kernel", () => {
    const families = hamiFamilies(snapshot({ splits: [split], containers: [usage(GPU0, TRAIN, 3500, 0.3)] }));
    const labels = { zone: 'vGPU', ...TRAIN, vdevice_index: '0', device_uuid: 'GPU-0' };
    expect(rows(families, 'hami_vgpu_memory_limit_bytes')).toEqual([{ labels, value: 10240 * MiB }]);
    expect(rows(families, 'hami_vgpu_memory_context_bytes')).toEqual([{ labels, value: 300 * MiB }]);
    expect(rows(families, 'hami_vgpu_memory_module_bytes')).toEqual([{ labels, value: 100 * MiB }]);
    expect(rows(families, 'hami_vgpu_memory_buffer_bytes')).toEqual([{ labels, value: 3000 * MiB }]);
    expect(rows(families, 'hami_container_last_kernel_elapsed_seconds')).toEqual([{ labels, value: 10 }]);
    expect(rows(families, 'hami_vgpu_memory_used_bytes')).toEqual([{ labels, value: 3500 * MiB }]);
    expect(rows(families, 'hami_container_device_utilization_ratio')[0]!.value).toBeCloseTo(30, 10);
  });

  it('describes the MIG device a container uses', () => {
    const families = hamiFamilies(snapshot({ containers: [usage(MIG, TRAIN, 10)] }));
    expect(rows(families, 'hami_mig_device_info')).toEqual([
      {
        labels: {
          zone: 'vGPU',
          ...TRAIN,
          vdevice_index: '0',
          device_uuid: 'GPU-1',
          mig_uuid: 'MIG-a',
          profile: '3g.40gb',
          gpu_instance_id: '2',
          compute_instance_id: '0',
        },
        value: 1,
      },
    ]);
  });
});

describe('compat family sets', () => {
  it('use only the label names their definitions declare, and are served by a scrape next to ours', async () => {
    const rich = snapshot({
      splits: [
        {
          device: GPU0,
          names: TRAIN,
          allocation: 'a',
          deviceIds: [`${GPU0.uuid}::0`],
          deviceIndex: 0,
          memoryLimitBytes: MiB,
          hami: {
            deviceIndex: 0,
            memoryUsedBytes: 1,
            contextBytes: 1,
            moduleBytes: 1,
            dataBytes: 1,
            smUtilPercent: 1,
            processCount: 1,
            lastKernelTimeSeconds: 1,
          },
        },
      ],
      containers: [usage(GPU0, TRAIN, 10, 0.1), usage(GPU0, SERVE, 10, 0.1), usage(MIG, undefined, 5)],
      devices: [
        gpuDevice(GPU0),
        { device: MIG, up: true, processes: [], readings: { memoryUsedBytes: 5 * MiB } },
      ],
    });
    const context = { nodeName: 'n' };
    for (const [definitions, families] of [
      [DCGM_FAMILIES, dcgmFamilies(rich, context)],
      [HAMI_FAMILIES, hamiFamilies(rich, context)],
    ] as const) {
      for (const [name, samples] of families) {
        const declared = definitions.find((d) => d.name === name)?.labelNames ?? [];
        for (const sample of samples)
          expect(declared).toEqual(expect.arrayContaining(Object.keys(sample.labels)));
      }
    }
    const registry = new Registry();
    registerSnapshotMetrics(registry, () => rich, compatFamilySets(['hami', 'dcgm'], context));
    const text = await registry.metrics();
    expect(text).toContain('# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter');
    expect(text).toMatch(/^DCGM_FI_DEV_FB_USED\{.*pod="trainer-0".*\} 10$/m);
    expect(text).toMatch(/^hami_vgpu_memory_limit_bytes\{.*\} 1048576$/m);
    expect(text).toMatch(/^vgpu_container_memory_used_bytes\{/m);
  });
});
