import { afterEach, describe, expect, it } from 'vitest';
import { NvmlEventType, NvmlReturn } from '../../src/nvml/codes.js';
import type { NvmlError } from '../../src/nvml/errors.js';
import { DeviceEventWatcher, type Registration } from '../../src/nvml/events.js';
import type { Nvml } from '../../src/nvml/nvml.js';
import type { DeviceEvent } from '../../src/nvml/types.js';
import { type OpenedMock, openMockNvml, twoGpuState } from '../helpers/mock-nvml.js';

const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
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
  return expect.poll(() => events.length, { timeout: 10_000, interval: 20 }).toBeGreaterThanOrEqual(count);
}

/**
 * Polls until the mock has loaded the last state written: a wait on a fresh set succeeds (or, given
 * `failing`, that function fails as the state says).
 */
async function waitUntilMockSees(nvml: Nvml, failing?: 'nvmlEventSetCreate'): Promise<void> {
  const answer = async (): Promise<string> => {
    try {
      const probe = nvml.eventSetCreate();
      try {
        await nvml.eventSetWait(probe, 0);
      } finally {
        nvml.eventSetFree(probe);
      }
      return 'ok';
    } catch (err) {
      return (err as NvmlError).functionName;
    }
  };
  await expect.poll(answer, { timeout: 10_000, interval: 10 }).toBe(failing ?? 'ok');
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

  it('watch() rebuilds the set without a lost GPU, so the others keep their events, and adds it back later', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml, node } = opened;
    const [gpu0, gpu1] = [nvml.deviceByIndex(0), nvml.deviceByIndex(1)];
    const errors: NvmlError[] = [];
    const events: DeviceEvent[] = [];
    const sets: Registration[][] = [];
    const w = DeviceEventWatcher.start(nvml, [gpu0, gpu1], {
      waitTimeoutMs: 200,
      errorBackoffMs: 50,
      onEvent: (e) => events.push(e),
      onError: (e) => errors.push(e),
      onRegistered: (r) => sets.push([...r]),
    });
    watcher = w;
    await node.setLost(GPU1, true);
    // While GPU 1 is in the set every wait fails at once: nothing of GPU 0's could arrive.
    await expect.poll(() => errors.length, { timeout: 5000 }).toBeGreaterThan(0);
    w.watch([gpu0]);
    await expect.poll(() => sets.length, { timeout: 5000 }).toBe(1);
    expect(sets[0]!.map((r) => r.device)).toEqual([gpu0]);
    expect(w.registrations).toEqual(sets[0]);
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await nextEvent(events, 1);
    expect(events[0]).toMatchObject({ device: gpu0, eventData: 48 });
    expect(node.state.devices[1]!.lost).toBe(true);

    await node.setLost(GPU1, false);
    w.watch([gpu0, gpu1]);
    await expect.poll(() => sets.length, { timeout: 5000 }).toBe(2);
    expect(sets[1]!.map((r) => [r.device, r.mask, r.error])).toEqual([
      [gpu0, 0xbn, undefined],
      [gpu1, 0xbn, undefined],
    ]);
    await node.injectEvent({ uuid: GPU1, xid: 94 });
    await nextEvent(events, 2);
    expect(events[1]).toMatchObject({ device: gpu1, eventData: 94 });
    expect(errors.every((e) => e.code === NvmlReturn.GPU_IS_LOST)).toBe(true);
  });

  it('delivers what the replaced set still holds: no event falls between two sets', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml, node } = opened;
    const [gpu0, gpu1] = [nvml.deviceByIndex(0), nvml.deviceByIndex(1)];
    const errors: NvmlError[] = [];
    const events: DeviceEvent[] = [];
    const w = DeviceEventWatcher.start(nvml, [gpu0, gpu1], {
      waitTimeoutMs: 200,
      // Parked in its backoff after one failed wait: the Xid below stays in the set, unread.
      errorBackoffMs: 600_000,
      onEvent: (e) => events.push(e),
      onError: (e) => errors.push(e),
    });
    watcher = w;
    await node.update((state) => {
      state.failures = { nvmlEventSetWait_v2: 'UNKNOWN' };
    });
    await expect.poll(() => errors.length, { timeout: 5000 }).toBe(1);
    await node.update((state) => {
      state.failures = {};
    });
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await waitUntilMockSees(nvml);

    // The new set starts after the Xid (a set never replays history): only the old one has it.
    w.watch([gpu0]);
    await nextEvent(events, 1);
    expect(events).toEqual([{ device: gpu0, eventType: NvmlEventType.XID_CRITICAL_ERROR, eventData: 48 }]);
  });

  it('a set that cannot be built is reported and retried while the old set keeps serving', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml, node } = opened;
    const [gpu0, gpu1] = [nvml.deviceByIndex(0), nvml.deviceByIndex(1)];
    const errors: NvmlError[] = [];
    const events: DeviceEvent[] = [];
    const sets: Registration[][] = [];
    const w = DeviceEventWatcher.start(nvml, [gpu0, gpu1], {
      waitTimeoutMs: 100,
      errorBackoffMs: 50,
      onEvent: (e) => events.push(e),
      onError: (e) => errors.push(e),
      onRegistered: (r) => sets.push([...r]),
    });
    watcher = w;
    await node.update((state) => {
      state.failures = { nvmlEventSetCreate: 'MEMORY' };
    });
    await waitUntilMockSees(nvml, 'nvmlEventSetCreate');
    w.watch([gpu0]);
    await expect.poll(() => errors.length, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
    expect(errors[0]).toMatchObject({ functionName: 'nvmlEventSetCreate', code: NvmlReturn.MEMORY });
    await node.injectEvent({ uuid: GPU1, xid: 31 });
    await nextEvent(events, 1);

    await node.update((state) => {
      state.failures = {};
    });
    await expect.poll(() => sets.length, { timeout: 5000 }).toBe(1);
    // GPU 1 is out of the new set: its Xid is passed over, GPU 0's later one arrives.
    await node.injectEvent({ uuid: GPU1, xid: 79 });
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await nextEvent(events, 2);
    expect(events.map((e) => [e.device, e.eventData])).toEqual([
      [gpu1, 31],
      [gpu0, 48],
    ]);
  });

  it('stop() ends the loop though no event ever comes, and nothing is delivered after it', async () => {
    opened = await openMockNvml(twoGpuState());
    const { nvml, node } = opened;
    const events: DeviceEvent[] = [];
    const w = DeviceEventWatcher.start(nvml, [nvml.deviceByIndex(0)], {
      waitTimeoutMs: 300,
      onEvent: (event) => events.push(event),
      onError: () => {},
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Resolves after the wait under way times out (a stop that waited for an event would hang).
    await w.stop();
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(events).toEqual([]);
  });
});
