/**
 * HealthState on plain data: what a mark records, fan-out from a GPU to what is derived from it,
 * clearing, and recovery only after recoverAfterMs and only for devices that answer. The clock is a
 * number passed in; HealthMonitor (health-monitor.test.ts) drives it from NVML.
 */
import { describe, expect, it } from 'vitest';
import { HealthState } from '../../src/devices/health-state.js';
import type { DeviceTarget } from '../../src/devices/resource-types.js';

const target = (uuid: string, gpuUuid = uuid): DeviceTarget => ({
  kind: uuid.startsWith('MIG-') ? 'mig' : 'gpu',
  uuid,
  index: '0',
  gpuUuid,
  deviceNodes: [],
  numaNode: null,
  memoryMiB: 0,
});

describe('HealthState', () => {
  it('records why and since when, with the Xid when there is one; a second mark changes nothing', () => {
    const state = new HealthState();
    expect(state.markUnhealthy('GPU-a', 'Xid 48', 1000, 48)).toBe(true);
    expect(state.markUnhealthy('GPU-b', 'GPU is lost', 2000)).toBe(true);
    expect(state.markUnhealthy('GPU-a', 'Xid 79', 3000, 79)).toBe(false);
    expect(state.records()).toEqual([
      { uuid: 'GPU-a', reason: 'Xid 48', xid: 48, sinceMs: 1000 },
      { uuid: 'GPU-b', reason: 'GPU is lost', sinceMs: 2000 },
    ]);
    expect(state.records()[1]).not.toHaveProperty('xid');
  });

  it('a GPU mark covers its MIG devices and shares; a MIG mark covers that MIG device only', () => {
    const state = new HealthState();
    state.markUnhealthy('MIG-1', 'Xid 94', 0, 94);
    expect(state.isHealthy(target('MIG-1', 'GPU-a'))).toBe(false);
    expect(state.isHealthy(target('MIG-2', 'GPU-a'))).toBe(true);
    expect(state.isHealthy(target('GPU-a'))).toBe(true);
    state.markUnhealthy('GPU-a', 'Xid 79', 0, 79);
    expect(state.isHealthy(target('MIG-2', 'GPU-a'))).toBe(false);
    expect(state.isHealthy(target('GPU-a'))).toBe(false);
    expect(state.isHealthy(target('GPU-b'))).toBe(true);
  });

  it('clear() forgets every mark and says whether there was one', () => {
    const state = new HealthState();
    expect(state.clear()).toBe(false);
    state.markUnhealthy('GPU-a', 'Xid 48', 0, 48);
    expect(state.clear()).toBe(true);
    expect(state.records()).toEqual([]);
    expect(state.isHealthy(target('GPU-a'))).toBe(true);
    expect(state.clear()).toBe(false);
  });

  it('recovers a device that answers once recoverAfterMs has passed since its mark, not before', () => {
    const state = new HealthState();
    state.markUnhealthy('GPU-a', 'Xid 48', 1000, 48);
    state.markUnhealthy('GPU-b', 'Xid 48', 1500, 48);
    const asked: string[] = [];
    const answers = (uuid: string) => {
      asked.push(uuid);
      return true;
    };
    expect(state.recover(1000 + 299_999, 300_000, answers)).toEqual([]);
    expect(state.recover(1000 + 300_000, 300_000, answers)).toEqual([
      { uuid: 'GPU-a', reason: 'Xid 48', xid: 48, sinceMs: 1000 },
    ]);
    // Only devices whose time is up are probed.
    expect(asked).toEqual(['GPU-a']);
    expect(state.records().map((r) => r.uuid)).toEqual(['GPU-b']);
  });

  it('keeps a device that does not answer, and never recovers anything when recoverAfterMs is 0', () => {
    const state = new HealthState();
    state.markUnhealthy('GPU-a', 'GPU is lost', 0);
    expect(state.recover(10_000_000, 1000, () => false)).toEqual([]);
    expect(state.recover(10_000_000, 0, () => true)).toEqual([]);
    expect(state.recover(10_000_000, -1, () => true)).toEqual([]);
    expect(state.records().map((r) => r.uuid)).toEqual(['GPU-a']);
  });
});
