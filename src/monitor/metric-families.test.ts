/**
 * The snapshot → metric families mapping on plain data: Prometheus naming conventions for every
 * family, and series with identical labels merged (never exported twice).
 */
import { describe, expect, it } from 'vitest';
import { MONITOR_FAMILIES, metricFamilies } from './metric-families.js';
import type { ContainerUsage, MonitoredDevice, MonitorSnapshot } from './snapshot.js';

const GPU: MonitoredDevice = { uuid: 'GPU-1', gpuUuid: 'GPU-1', gpuIndex: 0 };
const NAMES = { namespace: 'ml', pod: 'trainer-0', container: 'train' };

function snapshot(containers: ContainerUsage[]): MonitorSnapshot {
  return {
    takenAtMs: 0,
    durationSeconds: 0,
    driverVersion: '580.95.05',
    cudaDriverVersion: null,
    gpus: [{ uuid: 'GPU-1', index: 0, model: 'NVIDIA A100', busId: '0000:07:00.0', migMode: 'disabled' }],
    devices: [{ device: GPU, up: true, readings: {}, processes: [] }],
    containers,
    host: [],
    processesNotInProc: 0,
  };
}

describe('monitor metric families', () => {
  it('follow Prometheus naming: a prefix, base units, _total only on counters, a HELP each', () => {
    const names = MONITOR_FAMILIES.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    for (const family of MONITOR_FAMILIES) {
      expect(family.name).toMatch(/^vgpu_(gpu|mig|container|unallocated)_[a-z_]+$/);
      expect(family.name.endsWith('_total')).toBe(family.type === 'counter');
      expect(family.name).toMatch(/_(bytes|ratio|celsius|watts|joules_total|hertz|info|up|processes)$/);
      expect(family.help.length).toBeGreaterThan(10);
    }
  });

  it('merges two containers that end up with the same labels (a restart seen twice), capping SM at 1', () => {
    const usage = (containerId: string, memory: number, sm: number): ContainerUsage => ({
      device: GPU,
      podUid: 'uid',
      containerId,
      names: NAMES,
      allocation: 'allocated',
      memoryUsedBytes: memory,
      smUtilizationRatio: sm,
      processCount: 1,
    });
    const families = metricFamilies(snapshot([usage('old', 100, 0.7), usage('new', 50, 0.6)]));
    expect(families.get('vgpu_container_memory_used_bytes')).toEqual([
      { labels: { uuid: 'GPU-1', gpu: '0', ...NAMES }, value: 150 },
    ]);
    expect(families.get('vgpu_container_sm_utilization_ratio')?.[0]?.value).toBe(1);
    expect(families.get('vgpu_container_processes')?.[0]?.value).toBe(2);
  });

  it('leaves out the CUDA version label when libcuda is absent, and series for readings not given', () => {
    const families = metricFamilies(snapshot([]));
    expect(families.get('vgpu_gpu_info')?.[0]?.labels).not.toHaveProperty('cuda_version');
    expect(families.get('vgpu_gpu_power_watts')).toBeUndefined();
    expect(families.get('vgpu_gpu_up')).toEqual([{ labels: { uuid: 'GPU-1', gpu: '0' }, value: 1 }]);
  });

  it('labels each allocated device ID with the device behind it: a MIG device by its instance ids', () => {
    const mig: MonitoredDevice = {
      uuid: 'MIG-1',
      gpuUuid: 'GPU-1',
      gpuIndex: 0,
      mig: { gpuInstanceId: 3, computeInstanceId: 0, profile: '2g.20gb' },
    };
    const base = snapshot([]);
    const families = metricFamilies({
      ...base,
      devices: [...base.devices, { device: mig, up: true, readings: {}, processes: [] }],
      allocations: [
        { names: NAMES, resourceName: 'nvidia.com/mig-2g.20gb', deviceId: 'MIG-1::2', uuid: 'MIG-1' },
        { names: NAMES, resourceName: 'nvidia.com/gpu', deviceId: 'GPU-9', uuid: 'GPU-9' },
      ],
    });
    expect(families.get('vgpu_container_allocation_info')).toEqual([
      {
        labels: {
          uuid: 'GPU-1',
          gpu: '0',
          gpu_instance_id: '3',
          compute_instance_id: '0',
          ...NAMES,
          resource: 'nvidia.com/mig-2g.20gb',
          device_id: 'MIG-1::2',
        },
        value: 1,
      },
      // Not a device this monitor watches: its UUID only.
      { labels: { uuid: 'GPU-9', ...NAMES, resource: 'nvidia.com/gpu', device_id: 'GPU-9' }, value: 1 },
    ]);
  });
});
