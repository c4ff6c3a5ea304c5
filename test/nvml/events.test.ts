import { afterEach, describe, expect, it } from 'vitest';
import { NvmlEventType, NvmlReturn } from '../../src/nvml/codes.js';
import type { NvmlError } from '../../src/nvml/errors.js';
import { DeviceEventWatcher } from '../../src/nvml/events.js';
import type { DeviceEvent } from '../../src/nvml/types.js';
import { type OpenedMock, openMockNvml, twoGpuState } from '../helpers/mock-nvml.js';

const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';

let opened: OpenedMock | undefined;
let watcher: DeviceEventWatcher | undefined;
afterEach(async () => {
  await watcher?.stop();
  watcher = undefined;
  await opened?.close();
  opened = undefined;
});

function nextEvent(events: DeviceEvent[], count: number): Promise<void> {
  return expect.poll(() => events.length, { timeout: 5000, interval: 20 }).toBeGreaterThanOrEqual(count);
}

describe('NVML events', () => {
  it('delivers an Xid event while the event loop keeps ticking', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml, node } = opened;
    const devices = [nvml.deviceByIndex(0), nvml.deviceByIndex(1)];
    const events: DeviceEvent[] = [];
    watcher = DeviceEventWatcher.start(nvml, devices, {
      waitTimeoutMs: 1000,
      onEvent: (e) => events.push(e),
      onError: (e) => {
        throw e;
      },
    });
    expect(watcher.registrations.map((r) => r.mask)).toEqual([0xbn, 0xbn]);

    // The wait runs with a 1 s timeout off the main thread: timers must keep firing meanwhile.
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(ticks).toBeGreaterThanOrEqual(10);
      await node.injectEvent({ uuid: GPU1, xid: 79 });
      await nextEvent(events, 1);
    } finally {
      clearInterval(ticker);
    }
    expect(events).toEqual([
      { device: devices[1], eventType: NvmlEventType.XID_CRITICAL_ERROR, eventData: 79 },
    ]);

    // Delivered once, in order.
    await node.injectEvent({ uuid: GPU1, xid: 31 });
    await node.injectEvent({ uuid: GPU1, type: 'dbe' });
    await nextEvent(events, 3);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(events.map((e) => [e.eventData, e.eventType])).toEqual([
      [79, NvmlEventType.XID_CRITICAL_ERROR],
      [31, NvmlEventType.XID_CRITICAL_ERROR],
      [0, NvmlEventType.DOUBLE_BIT_ECC_ERROR],
    ]);
  });

  it('registers only the event types a device supports, and reports a device that refuses', async () => {
    const state = twoGpuState();
    state.devices[0]!.supportedEvents = ['xid'];
    state.devices[1]!.failures = { nvmlDeviceGetSupportedEventTypes: 'GPU_IS_LOST' };
    opened = await openMockNvml(state);
    const { nvml } = opened;
    watcher = DeviceEventWatcher.start(nvml, [nvml.deviceByIndex(0), nvml.deviceByIndex(1)], {
      onEvent: () => {},
      onError: () => {},
    });
    expect(watcher.registrations[0]!.mask).toBe(NvmlEventType.XID_CRITICAL_ERROR);
    expect(watcher.registrations[1]).toMatchObject({ mask: 0n, error: { code: NvmlReturn.GPU_IS_LOST } });
  });

  it('reports GPU_IS_LOST from the wait and keeps going', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml, node } = opened;
    const errors: NvmlError[] = [];
    const events: DeviceEvent[] = [];
    watcher = DeviceEventWatcher.start(nvml, [nvml.deviceByIndex(0), nvml.deviceByIndex(1)], {
      waitTimeoutMs: 200,
      errorBackoffMs: 50,
      onEvent: (e) => events.push(e),
      onError: (e) => errors.push(e),
    });
    await node.setLost(GPU1, true);
    await expect.poll(() => errors.length, { timeout: 5000 }).toBeGreaterThan(0);
    expect(errors[0]).toMatchObject({ functionName: 'nvmlEventSetWait_v2', code: NvmlReturn.GPU_IS_LOST });
    await node.setLost(GPU1, false);
    await node.injectEvent({ uuid: GPU1, xid: 94 });
    await nextEvent(events, 1);
    expect(events[0]!.eventData).toBe(94);
  });

  it('stops within one wait timeout', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml } = opened;
    const w = DeviceEventWatcher.start(nvml, [nvml.deviceByIndex(0)], {
      waitTimeoutMs: 300,
      onEvent: () => {},
      onError: () => {},
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    await w.stop();
    // Generous bound: what matters is that stop() does not wait for an event that never comes.
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
