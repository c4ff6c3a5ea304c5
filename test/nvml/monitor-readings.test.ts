/**
 * The NVML calls the monitor makes, through the real koffi binding on the mock library: energy
 * counter, clocks, memory with its reserved part, the three process lists (GPU and MIG device),
 * per-process utilisation samples with NVML's lastSeenTimeStamp semantics, and what older GPUs and
 * drivers do not support.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ClockType, NvmlReturn } from '../../src/nvml/codes.js';
import { isNotSupported, type NvmlError } from '../../src/nvml/errors.js';
import { type OpenedMock, openMockNvml, twoGpuState } from '../helpers/mock-nvml.js';
import { type MonitorMockState, monitorState } from '../helpers/monitor-state.js';

const MIB = 1024 * 1024;

let opened: OpenedMock | undefined;
afterEach(async () => {
  await opened?.close();
  opened = undefined;
});

function stateWithReadings(): MonitorMockState {
  const state = monitorState(twoGpuState());
  const gpu = state.devices[0]!;
  gpu.totalEnergyMj = 123_456_789;
  gpu.clocksMHz = { sm: 1275, memory: 1512 };
  gpu.memoryReservedMiB = 600;
  return state;
}

function thrown(call: () => unknown): unknown {
  try {
    call();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

describe('board readings', () => {
  it('reads the energy counter in millijoules and the SM and memory clocks in MHz', async () => {
    opened = await openMockNvml(stateWithReadings());
    const { nvml, node } = opened;
    const gpu = nvml.deviceByIndex(0);
    expect(nvml.totalEnergyMillijoules(gpu)).toBe(123_456_789);
    expect(nvml.clockMHz(gpu, ClockType.SM)).toBe(1275);
    expect(nvml.clockMHz(gpu, ClockType.MEMORY)).toBe(1512);
    expect(nvml.clockMHz(gpu, ClockType.GRAPHICS)).toBe(1275); // follows the SM clock unless set
    await node.update((s) => {
      monitorState(s).devices[0]!.totalEnergyMj = 123_460_000;
    });
    await expect.poll(() => nvml.totalEnergyMillijoules(gpu)).toBe(123_460_000);
  });

  it('says "not supported" for energy before Volta and for board readings on MIG devices', async () => {
    const state = stateWithReadings();
    state.devices[1]!.computeCapability = [6, 0]; // Pascal
    opened = await openMockNvml(state);
    const { nvml } = opened;
    expect(isNotSupported(thrown(() => nvml.totalEnergyMillijoules(nvml.deviceByIndex(1))))).toBe(true);
    await opened.close();

    opened = await openMockNvml('mixed-mig');
    const mig = opened.nvml.migDevices(opened.nvml.deviceByIndex(0))[0]!;
    for (const read of [
      () => opened!.nvml.totalEnergyMillijoules(mig),
      () => opened!.nvml.clockMHz(mig, ClockType.SM),
      () => opened!.nvml.utilization(mig),
    ]) {
      expect(thrown(read)).toMatchObject({ code: NvmlReturn.NOT_SUPPORTED });
    }
    // The MIG device's GPU answers for the board.
    expect(opened.nvml.clockMHz(opened.nvml.deviceByIndex(0), ClockType.SM)).toBeGreaterThan(0);
  });

  it('reports reserved memory from the v2 query, and nothing (not 0) when only v1 answers', async () => {
    const state = stateWithReadings();
    state.devices[1]!.memoryReservedMiB = 600;
    state.devices[1]!.failures = { nvmlDeviceGetMemoryInfo_v2: 'NOT_SUPPORTED' };
    opened = await openMockNvml(state);
    const { nvml } = opened;
    // GPU 0: processes use 1536 MiB; v2's `used` is what they allocated, `reserved` the driver's own.
    expect(nvml.memoryInfo(nvml.deviceByIndex(0))).toEqual({
      totalBytes: 81920 * MIB,
      reservedBytes: 600 * MIB,
      usedBytes: 1536 * MIB,
      freeBytes: (81920 - 600 - 1536) * MIB,
    });
    // GPU 1 (no processes) through v1: `used` includes the reserved memory, which is not given apart.
    const v1 = nvml.memoryInfo(nvml.deviceByIndex(1));
    expect(v1).toEqual({ totalBytes: 81920 * MIB, usedBytes: 600 * MIB, freeBytes: (81920 - 600) * MIB });
    expect('reservedBytes' in v1).toBe(false);
  });
});

describe('process lists', () => {
  it('lists compute, graphics and MPS processes apart, a process in both lists in each', async () => {
    const state = stateWithReadings();
    state.devices[1]!.processes = [
      { pid: 10, usedMemoryMiB: 100 },
      { pid: 11, usedMemoryMiB: 200, kind: 'graphics' },
      { pid: 12, usedMemoryMiB: 300, kind: 'compute+graphics' },
      { pid: 13, usedMemoryMiB: 400, kind: 'mps' },
    ];
    opened = await openMockNvml(state);
    const { nvml } = opened;
    const gpu = nvml.deviceByIndex(1);
    const pids = (list: 'compute' | 'graphics' | 'mps') => nvml.runningProcesses(gpu, list).map((p) => p.pid);
    expect(pids('compute')).toEqual([10, 12]);
    expect(pids('graphics')).toEqual([11, 12]);
    expect(pids('mps')).toEqual([13]);
    expect(nvml.runningProcesses(gpu, 'graphics')[1]).toEqual({ pid: 12, usedMemoryBytes: 300 * MIB });
    // Memory counts each process once, whatever lists it is in.
    expect(nvml.memoryInfo(gpu).usedBytes).toBe(1000 * MIB);
  });

  it('lists each MIG device its own processes, with their instance ids', async () => {
    opened = await openMockNvml('mixed-mig');
    const { nvml, node } = opened;
    await node.update((s) => {
      monitorState(s).devices[0]!.migDevices![2]!.processes = [
        { pid: 778, usedMemoryMiB: 64, kind: 'graphics' },
      ];
    });
    const migs = nvml.migDevices(nvml.deviceByIndex(0));
    const spec = node.state.devices[0]!.migDevices!;
    await expect.poll(() => nvml.runningProcesses(migs[2]!, 'graphics').map((p) => p.pid)).toEqual([778]);
    for (const [i, mig] of migs.entries()) {
      const expected = (spec[i]!.processes ?? [])
        .filter((p) => (p as { kind?: string }).kind !== 'graphics')
        .map((p) => ({
          pid: p.pid,
          usedMemoryBytes: p.usedMemoryMiB * MIB,
          gpuInstanceId: spec[i]!.giId,
          computeInstanceId: spec[i]!.ciId,
        }));
      expect(nvml.computeProcesses(mig)).toEqual(expected);
    }
  });

  it('falls back to the _v2 graphics and MPS lists on an older driver', async () => {
    const state = stateWithReadings();
    state.devices[0]!.processes = [{ pid: 21, usedMemoryMiB: 5, kind: 'mps' }];
    opened = await openMockNvml(state, { variant: 'legacy' });
    const { nvml } = opened;
    expect(nvml.missingSymbols).toEqual(
      expect.arrayContaining([
        'nvmlDeviceGetGraphicsRunningProcesses_v3',
        'nvmlDeviceGetMPSComputeRunningProcesses_v3',
      ]),
    );
    expect(nvml.runningProcesses(nvml.deviceByIndex(0), 'mps')).toEqual([
      { pid: 21, usedMemoryBytes: 5 * MIB },
    ]);
  });
});

describe('per-process utilisation samples', () => {
  it('returns only busy processes, then only samples newer than lastSeen; nothing newer is not an error', async () => {
    const state = stateWithReadings();
    state.devices[0]!.processes!.push({ pid: 4444, usedMemoryMiB: 8 }); // idle: no sample
    const errors: NvmlError[] = [];
    opened = await openMockNvml(state, { onError: (e) => errors.push(e) });
    const { nvml, node } = opened;
    const gpu = nvml.deviceByIndex(0);
    const first = nvml.processUtilization(gpu, 0);
    expect(first.map((s) => [s.pid, s.smPercent])).toEqual([
      [4242, 30],
      [4343, 5],
    ]);
    const lastSeen = Math.max(...first.map((s) => s.timestampUs));
    expect(nvml.processUtilization(gpu, lastSeen)).toEqual([]);
    // A new state version is a new driver sample, newer than lastSeen.
    await node.update((s) => {
      s.devices[0]!.processes![0]!.smUtil = 70;
    });
    await expect
      .poll(() => nvml.processUtilization(gpu, lastSeen).map((s) => [s.pid, s.smPercent]))
      .toEqual([
        [4242, 70],
        [4343, 5],
      ]);
    expect(errors).toEqual([]);
  });

  it('samples every processSamplePeriodMs: each period brings a newer sample', async () => {
    const state = stateWithReadings();
    state.devices[0]!.processSamplePeriodMs = 50;
    opened = await openMockNvml(state);
    const { nvml } = opened;
    const gpu = nvml.deviceByIndex(0);
    const first = nvml.processUtilization(gpu, 0);
    expect(first).toHaveLength(2);
    const lastSeen = first[0]!.timestampUs;
    // Later periods have samples again, stamped later, with no change to the state file.
    await expect.poll(() => nvml.processUtilization(gpu, lastSeen).length).toBe(2);
    expect(nvml.processUtilization(gpu, lastSeen)[0]!.timestampUs).toBeGreaterThan(lastSeen);
  });

  it('is not supported on MIG devices or MIG-enabled GPUs', async () => {
    opened = await openMockNvml('mixed-mig');
    const { nvml } = opened;
    const parent = nvml.deviceByIndex(0);
    expect(thrown(() => nvml.processUtilization(parent, 0))).toMatchObject({
      code: NvmlReturn.NOT_SUPPORTED,
    });
    const mig = nvml.migDevices(parent)[0]!;
    expect(thrown(() => nvml.processUtilization(mig, 0))).toMatchObject({ code: NvmlReturn.NOT_SUPPORTED });
  });
});
