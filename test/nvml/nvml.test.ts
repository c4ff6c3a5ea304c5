import { afterEach, describe, expect, it } from 'vitest';
import { NvmlReturn, TopologyLevel } from '../../src/nvml/codes.js';
import { isGpuLost, isNotSupported, NvmlError, NvmlLibraryError } from '../../src/nvml/errors.js';
import { Nvml } from '../../src/nvml/nvml.js';
import { type OpenedMock, openMockNvml, twoGpuState } from '../helpers/mock-nvml.js';

const MIB = 1024 * 1024;
const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';

let opened: OpenedMock | undefined;
afterEach(async () => {
  await opened?.close();
  opened = undefined;
});

describe('NVML binding on the mock library', () => {
  it('reads system information', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml } = opened;
    expect(nvml.driverVersion()).toBe('580.95.05');
    expect(nvml.nvmlVersion()).toBe('13.580.95.05');
    expect(nvml.cudaDriverVersion()).toEqual({ major: 13, minor: 0, raw: 13000 });
    expect(nvml.deviceCount()).toBe(2);
    expect(nvml.missingSymbols).not.toContain('nvmlDeviceGetComputeRunningProcesses_v3');
    expect(nvml.missingSymbols).not.toContain('nvmlEventSetWait_v2');
  });

  it('reads identity, PCI, memory, utilisation, temperature, power and compute capability', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml } = opened;
    const gpu = nvml.deviceByIndex(0);
    expect(nvml.deviceByUuid(GPU0)).toBe(gpu);
    expect(nvml.uuid(gpu)).toBe(GPU0);
    expect(nvml.name(gpu)).toBe('NVIDIA A100-SXM4-80GB');
    expect(nvml.index(gpu)).toBe(0);
    expect(nvml.minorNumber(nvml.deviceByIndex(1))).toBe(1);
    expect(nvml.pciInfo(nvml.deviceByIndex(1))).toMatchObject({
      busId: '0000:0f:00.0',
      nvmlBusId: '00000000:0F:00.0',
      domain: 0,
      bus: 0x0f,
      device: 0,
    });
    expect(nvml.memoryInfo(gpu)).toMatchObject({
      totalBytes: 81920 * MIB,
      usedBytes: 1536 * MIB,
      freeBytes: (81920 - 1536) * MIB,
    });
    expect(nvml.utilization(gpu)).toEqual({ gpuPercent: 35, memoryPercent: 20 });
    expect(nvml.temperatureCelsius(gpu)).toBe(41);
    expect(nvml.powerMilliwatts(gpu)).toBe(91000);
    expect(nvml.computeCapability(gpu)).toEqual({ major: 8, minor: 0 });
  });

  it('lists compute processes and their utilisation samples', async () => {
    const errors: NvmlError[] = [];
    opened = await openMockNvml(twoGpuState(), { onError: (e) => errors.push(e) });
    const { nvml } = opened;
    const gpu = nvml.deviceByIndex(0);
    expect(nvml.computeProcesses(gpu)).toEqual([
      { pid: 4242, usedMemoryBytes: 1024 * MIB },
      { pid: 4343, usedMemoryBytes: 512 * MIB },
    ]);
    expect(nvml.computeProcesses(nvml.deviceByIndex(1))).toEqual([]);
    const samples = nvml.processUtilization(gpu);
    expect(samples.map((s) => [s.pid, s.smPercent, s.memoryPercent])).toEqual([
      [4242, 30, 10],
      [4343, 5, 2],
    ]);
    // Nothing newer than the newest sample: an empty list, not an error.
    const newest = Math.max(...samples.map((s) => s.timestampUs));
    expect(nvml.processUtilization(gpu, newest)).toEqual([]);
    // NOT_FOUND there means "no newer sample", so it is not counted as an NVML error.
    expect(errors).toEqual([]);
  });

  it('sizes and fills a process list larger than its first guess (INSUFFICIENT_SIZE protocol)', async () => {
    const state = twoGpuState();
    state.devices[0]!.processes = Array.from({ length: 100 }, (_, i) => ({
      pid: 10_000 + i,
      usedMemoryMiB: i,
    }));
    opened = await openMockNvml(state);
    const processes = opened.nvml.computeProcesses(opened.nvml.deviceByIndex(0));
    expect(processes).toHaveLength(100);
    expect(processes[99]).toEqual({ pid: 10_099, usedMemoryBytes: 99 * MIB });
  });

  it('sees state changes made while it runs', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml, node } = opened;
    const gpu = nvml.deviceByIndex(1);
    await node.update((s) => {
      s.devices[1]!.processes = [{ pid: 7, usedMemoryMiB: 2048 }];
    });
    await expect.poll(() => nvml.computeProcesses(gpu)).toEqual([{ pid: 7, usedMemoryBytes: 2048 * MIB }]);
  });

  it('reads topology: NVLink peers and PCIe common ancestors', async () => {
    const state = twoGpuState();
    state.devices[1]!.nvlinkPeers = [];
    const errors: NvmlError[] = [];
    opened = await openMockNvml(state, { onError: (e) => errors.push(e) });
    const { nvml } = opened;
    const [a, b] = [nvml.deviceByIndex(0), nvml.deviceByIndex(1)];
    expect(nvml.nvlinkState(a, 0)).toBe('active');
    expect(nvml.nvlinkState(a, 1)).toBe('active');
    expect(nvml.nvlinkState(a, 2)).toBe('inactive');
    // Past the driver's last link, and on a GPU without NVLink: answers, not errors.
    expect(nvml.nvlinkState(a, 1000)).toBe('absent');
    expect(nvml.nvlinkState(b, 0)).toBe('absent');
    expect(errors).toEqual([]);
    expect(nvml.nvlinkRemoteBusId(a, 0)).toBe('0000:0f:00.0');
    expect(nvml.topologyCommonAncestor(a, a)).toBe(TopologyLevel.INTERNAL);
    expect(nvml.topologyCommonAncestor(a, b)).toBe(TopologyLevel.SYSTEM);
  });

  it('reports NOT_SUPPORTED as an NvmlError that isNotSupported recognises', async () => {
    const state = twoGpuState();
    state.devices[0]!.failures = { nvmlDeviceGetPowerUsage: 'NOT_SUPPORTED' };
    const errors: NvmlError[] = [];
    opened = await openMockNvml(state, { onError: (e) => errors.push(e) });
    const gpu = opened.nvml.deviceByIndex(0);
    let caught: unknown;
    try {
      opened.nvml.powerMilliwatts(gpu);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(NvmlError);
    expect(caught).toMatchObject({
      functionName: 'nvmlDeviceGetPowerUsage',
      code: NvmlReturn.NOT_SUPPORTED,
      codeName: 'NVML_ERROR_NOT_SUPPORTED',
      description: 'Not Supported',
    });
    expect(isNotSupported(caught)).toBe(true);
    expect(errors.map((e) => e.functionName)).toEqual(['nvmlDeviceGetPowerUsage']);
    // The other GPU is unaffected.
    expect(opened.nvml.powerMilliwatts(opened.nvml.deviceByIndex(1))).toBe(60000);
  });

  it('reports a lost GPU as GPU_IS_LOST on that GPU only', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml, node } = opened;
    const lostGpu = nvml.deviceByIndex(0);
    await node.setLost(GPU0, true);
    await expect
      .poll(() => {
        try {
          nvml.memoryInfo(lostGpu);
          return 'answers';
        } catch (err) {
          return isGpuLost(err) ? 'lost' : String(err);
        }
      })
      .toBe('lost');
    expect(() => nvml.uuid(lostGpu)).toThrow(/GPU is lost.*NVML_ERROR_GPU_IS_LOST/);
    expect(nvml.uuid(nvml.deviceByIndex(1))).toBe(GPU1);
  });

  it('falls back to the v1 memory and the older temperature query when the newer ones are refused', async () => {
    const state = twoGpuState();
    state.devices[0]!.failures = {
      nvmlDeviceGetMemoryInfo_v2: 'NOT_SUPPORTED',
      nvmlDeviceGetTemperatureV: 'NOT_SUPPORTED',
    };
    opened = await openMockNvml(state);
    const gpu = opened.nvml.deviceByIndex(0);
    // v1 has no reserved figure: absent, not 0
    expect(opened.nvml.memoryInfo(gpu)).toEqual({
      totalBytes: 81920 * MIB,
      usedBytes: 1536 * MIB,
      freeBytes: (81920 - 1536) * MIB,
    });
    expect(opened.nvml.memoryInfo(gpu)).not.toHaveProperty('reservedBytes');
    expect(opened.nvml.temperatureCelsius(gpu)).toBe(41);
  });

  it('lists MIG processes with their GPU and compute instance ids', async () => {
    opened = await openMockNvml('mixed-mig');
    const { nvml, node } = opened;
    await node.update((state) => {
      state.devices[0]!.migDevices![1]!.processes = [{ pid: 777, usedMemoryMiB: 300 }];
    });
    const mig = nvml.migDevices(nvml.deviceByIndex(0))[1]!;
    const { giId, ciId } = node.state.devices[0]!.migDevices![1]!;
    await expect
      .poll(() => nvml.computeProcesses(mig))
      .toEqual([{ pid: 777, usedMemoryBytes: 300 * MIB, gpuInstanceId: giId, computeInstanceId: ciId }]);
    // On the parent, every MIG device's processes, each with its instance ids.
    expect(nvml.computeProcesses(nvml.deviceByIndex(0))).toContainEqual({
      pid: 777,
      usedMemoryBytes: 300 * MIB,
      gpuInstanceId: giId,
      computeInstanceId: ciId,
    });
  });

  it('answers NOT_FOUND for an unknown UUID', async () => {
    opened = await openMockNvml(twoGpuState());
    expect(() => opened!.nvml.deviceByUuid('GPU-does-not-exist')).toThrow(
      expect.objectContaining({ code: NvmlReturn.NOT_FOUND, functionName: 'nvmlDeviceGetHandleByUUID' }),
    );
  });

  it('enumerates MIG devices with GI/CI ids, parent, attributes and memory', async () => {
    opened = await openMockNvml('mixed-mig');
    const { nvml, node } = opened;
    const expected = node.state.devices[0]!.migDevices!;
    const parent = nvml.deviceByIndex(0);
    expect(nvml.migMode(parent)).toEqual({ current: true, pending: true });
    expect(nvml.migMode(nvml.deviceByIndex(1)).current).toBe(false);
    const migs = nvml.migDevices(parent);
    expect(migs.map((m) => nvml.uuid(m))).toEqual(expected.map((m) => m.uuid));
    for (const [i, mig] of migs.entries()) {
      expect(nvml.isMigDevice(mig)).toBe(true);
      expect(nvml.parentOfMigDevice(mig)).toBe(parent);
      expect(nvml.gpuInstanceId(mig)).toBe(expected[i]!.giId);
      expect(nvml.computeInstanceId(mig)).toBe(expected[i]!.ciId);
      const attributes = nvml.migAttributes(mig);
      expect(attributes.memoryMiB).toBe(expected[i]!.memoryMiB);
      expect(attributes.multiprocessorCount).toBe(expected[i]!.multiprocessors);
      expect(nvml.memoryInfo(mig).totalBytes).toBe(expected[i]!.memoryMiB * MIB);
    }
    expect(nvml.isMigDevice(parent)).toBe(false);
    expect(() => nvml.utilization(migs[0]!)).toThrow(
      expect.objectContaining({ code: NvmlReturn.NOT_SUPPORTED }),
    );
  });
});

describe('older drivers (legacy mock: no _v3 processes, no process utilisation)', () => {
  it('falls back from _v3 to _v2 and reports the missing call as not supported', async () => {
    opened = await openMockNvml(twoGpuState(), { variant: 'legacy' });
    const { nvml } = opened;
    const gpu = nvml.deviceByIndex(0);
    expect(nvml.missingSymbols).toEqual(
      expect.arrayContaining([
        'nvmlDeviceGetComputeRunningProcesses_v3',
        'nvmlDeviceGetProcessUtilization',
        'nvmlSystemGetCudaDriverVersion_v2',
      ]),
    );
    expect(nvml.computeProcesses(gpu).map((p) => p.pid)).toEqual([4242, 4343]);
    expect(nvml.cudaDriverVersion().raw).toBe(13000);
    expect(nvml.temperatureCelsius(gpu)).toBe(41);
    let caught: unknown;
    try {
      nvml.processUtilization(gpu);
    } catch (err) {
      caught = err;
    }
    expect(isNotSupported(caught)).toBe(true);
    expect(caught).toMatchObject({ code: NvmlReturn.FUNCTION_NOT_FOUND });
  });
});

describe('loading', () => {
  it('gives one clear error naming the path when the library is missing', async () => {
    const path = '/nonexistent/lib/libnvidia-ml.so.1';
    const error = await Nvml.open({ libraryPath: path }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NvmlLibraryError);
    const message = (error as Error).message;
    expect(message).toContain(`cannot load the NVML library "${path}"`);
    expect(message).toContain('NVML_LIBRARY');
    expect(message).not.toContain('\n');
  });
});
