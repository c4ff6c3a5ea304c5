/**
 * The mock NVML state fields the monitor reads (energy counter, clocks, reserved memory, process
 * kinds, utilisation sampling period; native/mock-nvml/README.md), typed for tests and the demo. They
 * extend mock-node.ts's types, which describe what the plugin uses; MockNode writes the state as
 * JSON, so the extra fields reach the mock unchanged.
 */
import type { MockDevice, MockMigDevice, MockNvmlState, MockProcess } from './mock-node.js';

export interface MonitorMockProcess extends MockProcess {
  /** which NVML lists it is in; default compute */
  kind?: 'compute' | 'graphics' | 'compute+graphics' | 'mps';
  encUtil?: number;
  decUtil?: number;
}

export interface MonitorMockMigDevice extends MockMigDevice {
  processes?: MonitorMockProcess[];
}

export interface MonitorMockDevice extends MockDevice {
  totalEnergyMj?: number;
  clocksMHz?: { graphics?: number; sm?: number; memory?: number; video?: number };
  memoryReservedMiB?: number;
  /** the driver takes a utilisation sample every this many ms; 0 = one per state version */
  processSamplePeriodMs?: number;
  processes?: MonitorMockProcess[];
  migDevices?: MonitorMockMigDevice[];
}

export interface MonitorMockState extends MockNvmlState {
  devices: MonitorMockDevice[];
}

/** The monitor's view of a state a MockNode hands to `update()`. */
export function monitorState(state: MockNvmlState): MonitorMockState {
  return state as MonitorMockState;
}
