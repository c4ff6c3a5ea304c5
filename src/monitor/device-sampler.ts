/**
 * Reads one monitored device (a whole GPU, or a MIG device) through NVML for one collection.
 *
 * Each device has its own sampler, which keeps its NVML handle, the readings the device turned out
 * not to support (asked once, then never again: the answer does not change while the driver runs),
 * and the newest per-process utilisation timestamp NVML gave it, passed back as `lastSeen` so each
 * collection gets the samples of its own interval. A reading that fails for another reason is absent
 * this time; a device failure (lost, reset required, ...) marks the whole device down for this
 * collection and the next one asks again. NVML calls are microseconds and run inline, as everywhere
 * in the agent (docs/design.md); the collector yields to the event loop between devices.
 */
import { ClockType } from '../nvml/codes.js';
import { isDeviceFailure, isNotSupported } from '../nvml/errors.js';
import type { Nvml } from '../nvml/nvml.js';
import type { DeviceHandle, ProcessList } from '../nvml/types.js';
import type { DeviceReadings, MonitoredDevice } from './snapshot.js';

/** What a sampler reads: memory and processes where they live, board readings on whole GPUs. */
export interface SamplerRole {
  /** temperature, power, energy, clocks: the board's, read on the GPU (also when MIG is enabled) */
  board: boolean;
  /** device utilisation and per-process samples: whole GPUs without MIG only (NVML has none for MIG) */
  utilization: boolean;
  /** memory and processes: a GPU without MIG, or a MIG device (a MIG-enabled GPU's are per instance) */
  memoryAndProcesses: boolean;
}

/** One process as NVML lists it on this device, with its newest SM sample when NVML gave one. */
export interface SampledProcess {
  pid: number;
  usedMemoryBytes?: number;
  /** 0–1; undefined when the device gives no per-process samples */
  smUtilizationRatio?: number;
}

export type DeviceSample =
  | { up: true; readings: DeviceReadings; processes: SampledProcess[] }
  | { up: false; error: string };

/** The NVML calls a sampler makes (the binding, or a stand-in in pure tests). */
export type SamplerNvml = Pick<
  Nvml,
  | 'deviceByUuid'
  | 'memoryInfo'
  | 'utilization'
  | 'temperatureCelsius'
  | 'powerMilliwatts'
  | 'totalEnergyMillijoules'
  | 'clockMHz'
  | 'runningProcesses'
  | 'processUtilization'
>;

const PROCESS_LISTS: readonly ProcessList[] = ['compute', 'graphics', 'mps'];

export class DeviceSampler {
  private handle: DeviceHandle | undefined;
  private readonly unsupported = new Set<string>();
  /** NVML's newest per-process sample timestamp seen (µs); 0 asks for the driver's whole buffer */
  private lastSeenUs = 0;

  constructor(
    private readonly nvml: SamplerNvml,
    readonly device: MonitoredDevice,
    private readonly role: SamplerRole,
  ) {}

  sample(): DeviceSample {
    try {
      this.handle ??= this.nvml.deviceByUuid(this.device.uuid);
      const handle = this.handle;
      const readings: DeviceReadings = {};
      if (this.role.memoryAndProcesses) this.readMemory(handle, readings);
      if (this.role.utilization) this.readUtilization(handle, readings);
      if (this.role.board) this.readBoard(handle, readings);
      const processes = this.role.memoryAndProcesses ? this.readProcesses(handle) : [];
      return { up: true, readings, processes };
    } catch (err) {
      return { up: false, error: err instanceof Error ? err.message : String(err) };
    }
  }

  /** Runs one reading: undefined when unsupported (remembered) or failed; a device failure is thrown. */
  private read<T>(name: string, reading: () => T): T | undefined {
    if (this.unsupported.has(name)) return undefined;
    try {
      return reading();
    } catch (err) {
      if (isNotSupported(err)) this.unsupported.add(name);
      else if (isDeviceFailure(err)) throw err;
      return undefined; // counted by the NVML error hook; the other readings still count
    }
  }

  private readMemory(handle: DeviceHandle, readings: DeviceReadings): void {
    const memory = this.read('memory', () => this.nvml.memoryInfo(handle));
    if (!memory) return;
    readings.memoryTotalBytes = memory.totalBytes;
    readings.memoryUsedBytes = memory.usedBytes;
    readings.memoryFreeBytes = memory.freeBytes;
    if (memory.reservedBytes !== undefined) readings.memoryReservedBytes = memory.reservedBytes;
  }

  private readUtilization(handle: DeviceHandle, readings: DeviceReadings): void {
    const utilization = this.read('utilization', () => this.nvml.utilization(handle));
    if (!utilization) return;
    readings.gpuUtilizationRatio = percentToRatio(utilization.gpuPercent);
    readings.memoryControllerUtilizationRatio = percentToRatio(utilization.memoryPercent);
  }

  private readBoard(handle: DeviceHandle, readings: DeviceReadings): void {
    const temperature = this.read('temperature', () => this.nvml.temperatureCelsius(handle));
    if (temperature !== undefined) readings.temperatureCelsius = temperature;
    const power = this.read('power', () => this.nvml.powerMilliwatts(handle));
    if (power !== undefined) readings.powerWatts = power / 1000;
    const energy = this.read('energy', () => this.nvml.totalEnergyMillijoules(handle));
    if (energy !== undefined) readings.energyJoules = energy / 1000;
    const sm = this.read('smClock', () => this.nvml.clockMHz(handle, ClockType.SM));
    if (sm !== undefined) readings.smClockHertz = sm * 1e6;
    const memory = this.read('memoryClock', () => this.nvml.clockMHz(handle, ClockType.MEMORY));
    if (memory !== undefined) readings.memoryClockHertz = memory * 1e6;
  }

  /** The compute, graphics and MPS lists merged by PID, with each process's SM share when known. */
  private readProcesses(handle: DeviceHandle): SampledProcess[] {
    const byPid = new Map<number, SampledProcess>();
    for (const list of PROCESS_LISTS) {
      for (const p of this.read(`${list}Processes`, () => this.nvml.runningProcesses(handle, list)) ?? []) {
        const seen = byPid.get(p.pid) ?? { pid: p.pid };
        // "all of the memory used by the application" in each list: the same figure, counted once
        if (p.usedMemoryBytes !== undefined) {
          seen.usedMemoryBytes = Math.max(seen.usedMemoryBytes ?? 0, p.usedMemoryBytes);
        }
        byPid.set(p.pid, seen);
      }
    }
    const smByPid = this.role.utilization ? this.readProcessSamples(handle) : undefined;
    if (smByPid) for (const p of byPid.values()) p.smUtilizationRatio = smByPid.get(p.pid) ?? 0;
    return [...byPid.values()];
  }

  /**
   * SM share per PID from the samples newer than the last reply's newest one; a process with no
   * sample was idle (NVML lists only processes with non-zero use). Undefined when unavailable.
   */
  private readProcessSamples(handle: DeviceHandle): Map<number, number> | undefined {
    const samples = this.read('processUtilization', () =>
      this.nvml.processUtilization(handle, this.lastSeenUs),
    );
    if (!samples) return undefined;
    const newest = new Map<number, { timestampUs: number; ratio: number }>();
    for (const s of samples) {
      this.lastSeenUs = Math.max(this.lastSeenUs, s.timestampUs);
      const kept = newest.get(s.pid);
      if (!kept || s.timestampUs > kept.timestampUs) {
        newest.set(s.pid, { timestampUs: s.timestampUs, ratio: percentToRatio(s.smPercent) });
      }
    }
    return new Map([...newest].map(([pid, { ratio }]) => [pid, ratio]));
  }
}

/** NVML percentages as 0–1 ratios; values over 100 (seen from some drivers) are clamped. */
function percentToRatio(percent: number): number {
  return Math.min(Math.max(percent, 0), 100) / 100;
}
