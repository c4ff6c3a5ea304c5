/**
 * HealthMonitor through the real koffi binding on the mock NVML: a lost GPU is taken out of the shared
 * event set (so the other GPUs' Xids still arrive) and said once, a device stays Unhealthy for
 * recoverAfterSeconds, and a wait failure that keeps recurring is logged at most once per interval.
 * Log lines are captured from pino, the clock is a counter the test moves: nothing here depends on how
 * fast the machine is. An error thrown out of the monitor's timer (which would end the agent) fails
 * the test that caused it.
 */
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HealthMonitor, type HealthSettings } from '../../src/devices/health-monitor.js';
import { buildInventory } from '../../src/devices/inventory.js';
import { createLogger } from '../../src/log.js';
import type { NvmlError } from '../../src/nvml/errors.js';
import type { MockNvmlState } from '../../src/sim/mock-node.js';
import { type OpenedMock, openMockNvml, twoGpuState } from '../helpers/mock-nvml.js';

const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';
const WAIT_FAILED = 'NVML event wait failed; probing every GPU';
const settings: HealthSettings = { enabled: true, disabledXids: new Set([13]), recoverAfterSeconds: 0 };

let opened: OpenedMock | undefined;
let monitor: HealthMonitor | undefined;
/** Errors no one caught, such as one thrown by a probe round: in the agent they end the process. */
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);
beforeAll(() => {
  process.on('uncaughtException', onUncaught);
});
afterAll(() => {
  process.off('uncaughtException', onUncaught);
});
afterEach(async () => {
  await monitor?.stop();
  monitor = undefined;
  await opened?.close();
  opened = undefined;
  expect(uncaught.splice(0)).toEqual([]);
});

interface MonitorSetup {
  /** GPU 1 is lost after the inventory was read, before the monitor registers it for events */
  lostAtStart?: boolean;
  recoverAfterSeconds?: number;
  /** the node (default: the two-GPU mock) */
  state?: string | MockNvmlState;
  settings?: Partial<HealthSettings>;
  /** edits the node after the inventory was read, before the monitor starts */
  beforeStart?: (opened: OpenedMock) => Promise<void>;
  /** default 20 ms; an hour leaves only the probes a failed event wait runs */
  probeIntervalMs?: number;
  /** default 20 ms */
  eventErrorBackoffMs?: number;
  /** start the monitor without an onXid callback (`seen` and `xids` stay empty) */
  withoutOnXid?: boolean;
}

/**
 * A monitor on the mock; `failures` counts failed NVML calls by function, `xids` the Xids it saw with
 * whether it acted, `changes` its onChange calls. `clock.reads` counts the monitor's looks at the
 * clock (one per probe round at least).
 */
async function startMonitor(setup: MonitorSetup = {}) {
  const nvmlErrors: NvmlError[] = [];
  opened = await openMockNvml(setup.state ?? twoGpuState(), { onError: (e) => nvmlErrors.push(e) });
  const inventory = await buildInventory(opened.nvml, opened.node.hostPaths);
  if (setup.lostAtStart) await setLostAndWaitUntilSeen(opened, GPU1);
  await setup.beforeStart?.(opened);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const clock = { ms: 1_000_000, reads: 0 };
  const xids: number[] = [];
  const seen: [number, boolean][] = [];
  const changes = { count: 0 };
  monitor = new HealthMonitor({
    nvml: opened.nvml,
    inventory,
    settings: { ...settings, recoverAfterSeconds: setup.recoverAfterSeconds ?? 0, ...setup.settings },
    logger: createLogger({ level: 'debug', destination: sink }),
    onChange: () => changes.count++,
    ...(setup.withoutOnXid
      ? {}
      : {
          onXid: (xid: number, acted: boolean) => {
            xids.push(xid);
            seen.push([xid, acted]);
          },
        }),
    probeIntervalMs: setup.probeIntervalMs ?? 20,
    eventWaitTimeoutMs: 100,
    eventErrorBackoffMs: setup.eventErrorBackoffMs ?? 20,
    now: () => {
      clock.reads++;
      return clock.ms;
    },
  });
  monitor.start();
  const failures = (fn: string) => nvmlErrors.filter((e) => e.functionName.startsWith(fn)).length;
  const lines = (msg: string) => logs.filter((l) => l.msg === msg);
  /** Resolves once at least `count` more probe rounds have run. */
  const rounds = async (count: number) => {
    const reads = clock.reads;
    await expect.poll(() => clock.reads, { timeout: 10_000 }).toBeGreaterThanOrEqual(reads + count);
  };
  return { node: opened.node, monitor, logs, lines, clock, xids, seen, changes, failures, rounds, inventory };
}

const unhealthy = (m: HealthMonitor) => m.state.records().map((r) => r.uuid);
const reasons = (m: HealthMonitor) => m.state.records().map((r) => [r.uuid, r.reason]);

async function setLostAndWaitUntilSeen({ nvml, node }: OpenedMock, uuid: string, lost = true): Promise<void> {
  await node.setLost(uuid, lost);
  await expect.poll(() => answers(nvml, uuid), { timeout: 10_000, interval: 10 }).toBe(!lost);
}

/** NVML stops finding the node's GPU `index` (its handle lookup fails with NOT_FOUND). */
async function setNotFoundAndWaitUntilSeen({ nvml, node }: OpenedMock, index: number): Promise<void> {
  await node.update((state) => {
    state.devices[index]!.failures = { nvmlDeviceGetHandleByUUID: 'NOT_FOUND' };
  });
  await expect
    .poll(() => answers(nvml, node.state.devices[index]!.uuid), { timeout: 10_000, interval: 10 })
    .toBe(false);
}

/** Whether NVML finds the device and answers a memory query for it. */
function answers(nvml: OpenedMock['nvml'], uuid: string): boolean {
  try {
    nvml.memoryInfo(nvml.deviceByUuid(uuid));
    return true;
  } catch {
    return false;
  }
}

describe('HealthMonitor', () => {
  it('a GPU that stays lost is said once when it goes and once when it returns; the other keeps its Xids', async () => {
    const { node, monitor, lines, xids, failures } = await startMonitor();
    await node.setLost(GPU1, true);
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([GPU1]);
    await expect
      .poll(() => lines('GPU taken out of the event set; probing it on its own').length, { timeout: 10_000 })
      .toBe(1);

    // GPU 1 stays lost through many probe rounds (20 ms apart) while GPU 0's Xid is acted on.
    const probedBefore = failures('nvmlDeviceGetMemoryInfo');
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await expect.poll(() => xids, { timeout: 10_000 }).toEqual([48]);
    await expect
      .poll(() => failures('nvmlDeviceGetMemoryInfo') - probedBefore, { timeout: 10_000 })
      .toBeGreaterThanOrEqual(20);
    expect(reasons(monitor)).toEqual([
      [GPU1, 'GPU is lost (NVML_ERROR_GPU_IS_LOST)'],
      [GPU0, 'Xid 48'],
    ]);
    expect(lines('device marked Unhealthy').map((l) => l.device)).toEqual([GPU1, GPU0]);
    expect(lines('GPU taken out of the event set; probing it on its own')).toHaveLength(1);
    expect(lines(WAIT_FAILED)).toHaveLength(1);

    await node.setLost(GPU1, false);
    await expect
      .poll(() => lines('GPU back in the event set').map((l) => l.gpu), { timeout: 10_000 })
      .toEqual([GPU1]);
    await node.injectEvent({ uuid: GPU1, xid: 94 });
    await expect.poll(() => xids, { timeout: 10_000 }).toEqual([48, 94]);
    expect(lines('GPU back in the event set')).toHaveLength(1);
    expect(lines(WAIT_FAILED)).toHaveLength(1);
  });

  it('a GPU lost when the set is built does not block the others, and joins the set when it answers', async () => {
    const { node, monitor, lines, xids } = await startMonitor({ lostAtStart: true });
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await expect.poll(() => xids, { timeout: 10_000 }).toEqual([48]);
    expect(unhealthy(monitor)).toContain(GPU1);

    await node.setLost(GPU1, false);
    await expect
      .poll(() => lines('GPU back in the event set').map((l) => l.gpu), { timeout: 10_000 })
      .toEqual([GPU1]);
    await node.injectEvent({ uuid: GPU1, xid: 94 });
    await expect.poll(() => xids, { timeout: 10_000 }).toEqual([48, 94]);
    expect(lines('GPU refused event registration; probing it on its own').map((l) => l.gpu)).toEqual([GPU1]);
  });

  it('keeps a device Unhealthy for recoverAfterSeconds although NVML answers for it, then brings it back', async () => {
    const { node, monitor, lines, clock, changes, rounds } = await startMonitor({ recoverAfterSeconds: 300 });
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([GPU0]);
    // kubelet hears of a change only: the one mark so far, none for probe rounds that change nothing.
    expect(changes.count).toBe(1);
    // One second short: GPU 0 answers every probe round (20 ms apart), many rounds pass, it stays out.
    clock.ms += 299_000;
    await rounds(10);
    expect(unhealthy(monitor)).toEqual([GPU0]);
    expect(lines('device recovered: Healthy')).toEqual([]);
    expect(changes.count).toBe(1);

    clock.ms += 1000;
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([]);
    expect(lines('device recovered: Healthy').map((l) => l.device)).toEqual([GPU0]);
    await rounds(10);
    expect(changes.count).toBe(2);
  });

  it('a wait failure that keeps recurring is logged once per interval, with the count held back', async () => {
    const { node, monitor, lines, clock, failures } = await startMonitor();
    await node.update((state) => {
      state.failures = { nvmlEventSetWait_v2: 'UNKNOWN' };
    });
    // Many failed waits (one per 20 ms backoff), all within one minute of the test's clock.
    await expect.poll(() => failures('nvmlEventSetWait'), { timeout: 10_000 }).toBeGreaterThanOrEqual(5);
    expect(lines(WAIT_FAILED)).toHaveLength(1);
    expect(lines(WAIT_FAILED)[0]).toMatchObject({ err: { codeName: 'NVML_ERROR_UNKNOWN' } });
    expect(lines(WAIT_FAILED)[0]).not.toHaveProperty('repeatsNotLogged');

    clock.ms += 60_000;
    await expect.poll(() => lines(WAIT_FAILED).length, { timeout: 10_000 }).toBe(2);
    const heldBack = lines(WAIT_FAILED)[1]!.repeatsNotLogged;
    expect(heldBack).toBeGreaterThanOrEqual(4);
    expect(heldBack).toBeLessThan(failures('nvmlEventSetWait'));
    // Every GPU answers its probe: the failure is not theirs, nothing is marked or taken out.
    expect(unhealthy(monitor)).toEqual([]);
    expect(lines('GPU taken out of the event set; probing it on its own')).toHaveLength(0);
  });
});

describe('HealthMonitor: what marks a device, and what brings it back', () => {
  it('records why: Xid 79 as the GPU off the bus, other Xids by number; ignored ones are logged and counted', async () => {
    const { node, monitor, seen, lines } = await startMonitor();
    await node.injectEvent({ uuid: GPU0, xid: 79 });
    await node.injectEvent({ uuid: GPU1, xid: 13 });
    await node.injectEvent({ uuid: GPU1, xid: 48 });
    await expect.poll(() => seen, { timeout: 10_000 }).toHaveLength(3);
    expect(seen).toEqual([
      [79, true],
      [13, false],
      [48, true],
    ]);
    expect(reasons(monitor)).toEqual([
      [GPU0, 'Xid 79 (GPU has fallen off the bus)'],
      [GPU1, 'Xid 48'],
    ]);
    expect(lines('Xid ignored (application error or disabled)')).toMatchObject([{ gpu: GPU1, xid: 13 }]);
  });

  it('ECC events are logged and mark nothing', async () => {
    const { node, monitor, lines, seen } = await startMonitor();
    await node.injectEvent({ uuid: GPU0, type: 'dbe' });
    await expect.poll(() => lines('GPU ECC event (no action)').length, { timeout: 10_000 }).toBe(1);
    expect(lines('GPU ECC event (no action)')[0]).toMatchObject({ gpu: GPU0 });
    expect(monitor.state.records()).toEqual([]);
    expect(seen).toEqual([]);
  });

  it('with onlyXids, those Xids alone mark a device', async () => {
    const { node, monitor, seen } = await startMonitor({ settings: { onlyXids: new Set([48]) } });
    await node.injectEvent({ uuid: GPU0, xid: 79 });
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await expect.poll(() => seen, { timeout: 10_000 }).toHaveLength(2);
    expect(seen).toEqual([
      [79, false],
      [48, true],
    ]);
    expect(reasons(monitor)).toEqual([[GPU0, 'Xid 48']]);
  });

  it('a lost GPU stays Unhealthy past recoverAfterSeconds while it does not answer, and recovers once it does', async () => {
    const { node, monitor, lines, clock, rounds } = await startMonitor({ recoverAfterSeconds: 1 });
    await node.setLost(GPU1, true);
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([GPU1]);
    clock.ms += 10_000;
    await rounds(10);
    expect(unhealthy(monitor)).toEqual([GPU1]);
    expect(lines('device recovered: Healthy')).toEqual([]);
    await node.setLost(GPU1, false);
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([]);
    expect(lines('device recovered: Healthy').map((l) => l.device)).toEqual([GPU1]);
  });

  it('a MIG device marked by its own Xid recovers only once it answers', async () => {
    const { node, monitor, lines, clock, rounds, inventory } = await startMonitor({
      state: 'mixed-mig',
      recoverAfterSeconds: 300,
    });
    const parent = inventory.gpus.find((g) => g.migDevices.length > 0)!;
    const mig = parent.migDevices[1]!;
    await node.injectEvent({
      uuid: parent.uuid,
      xid: 94,
      giId: mig.gpuInstanceId,
      ciId: mig.computeInstanceId,
    });
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([mig.uuid]);
    await node.update((state) => {
      const device = state.devices.find((d) => d.uuid === parent.uuid)!;
      (device.migDevices![1] as { failures?: Record<string, string> }).failures = {
        nvmlDeviceGetMemoryInfo: 'GPU_IS_LOST',
      };
    });
    // Past recoverAfterSeconds only once the mock fails the MIG device (it sees a write 5 ms on).
    const answers = () => {
      try {
        opened!.nvml.memoryInfo(opened!.nvml.deviceByUuid(mig.uuid));
        return true;
      } catch {
        return false;
      }
    };
    await expect.poll(answers, { timeout: 10_000, interval: 10 }).toBe(false);
    clock.ms += 400_000;
    await rounds(10);
    expect(unhealthy(monitor)).toEqual([mig.uuid]);
    await node.update((state) => {
      const device = state.devices.find((d) => d.uuid === parent.uuid)!;
      delete (device.migDevices![1] as { failures?: Record<string, string> }).failures;
    });
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([]);
    expect(lines('device recovered: Healthy').map((l) => l.device)).toEqual([mig.uuid]);
  });

  it('checks turned off by a reload clear every mark, once; turned on again, probes mark again', async () => {
    const { node, monitor, lines, changes, rounds } = await startMonitor();
    expect(lines('health checks disabled (DP_DISABLE_HEALTHCHECKS=all or health.enabled=false)')).toEqual([]);
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([GPU0]);
    const before = changes.count;
    monitor.updateSettings({ ...settings, enabled: false });
    expect(unhealthy(monitor)).toEqual([]);
    expect(changes.count).toBe(before + 1);
    monitor.updateSettings({ ...settings, enabled: false });
    expect(lines('health checks turned off by config: every device is Healthy again')).toHaveLength(1);
    expect(changes.count).toBe(before + 1);

    // Off: a GPU that stops answering is not marked.
    await node.update((state) => {
      state.devices[1]!.failures = { nvmlDeviceGetMemoryInfo: 'RESET_REQUIRED' };
    });
    await rounds(10);
    expect(unhealthy(monitor)).toEqual([]);
    monitor.updateSettings({ ...settings, enabled: true });
    expect(lines('health checks turned on by config')).toHaveLength(1);
    monitor.updateSettings({ ...settings, enabled: true });
    expect(lines('health checks turned on by config')).toHaveLength(1);
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([GPU1]);
  });

  it('started with checks off: says so and marks nothing', async () => {
    const { node, monitor, lines, rounds } = await startMonitor({ settings: { enabled: false } });
    expect(
      lines('health checks disabled (DP_DISABLE_HEALTHCHECKS=all or health.enabled=false)'),
    ).toHaveLength(1);
    await node.setLost(GPU1, true);
    await rounds(10);
    expect(unhealthy(monitor)).toEqual([]);
  });

  it('stop() ends the probes', async () => {
    const { monitor: m, clock, rounds } = await startMonitor();
    await rounds(2);
    await m.stop();
    const reads = clock.reads;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(clock.reads).toBe(reads);
  });
});

describe('HealthMonitor: GPUs the event set cannot watch', () => {
  it('a GPU that supports no health events is probed only, the other keeps its Xids', async () => {
    const state = twoGpuState();
    state.devices[1]!.supportedEvents = [];
    const { node, monitor, lines, xids } = await startMonitor({ state });
    expect(lines('GPU supports none of the health events (Xid, ECC): relying on probes')).toMatchObject([
      { gpu: GPU1 },
    ]);
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await expect.poll(() => xids, { timeout: 10_000 }).toEqual([48]);
    await node.setLost(GPU1, true);
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([GPU0, GPU1]);
  });

  it('a GPU that refuses registration for a reason that is not a failure is probed only', async () => {
    const state = twoGpuState();
    state.devices[1]!.failures = { nvmlDeviceRegisterEvents: 'NOT_SUPPORTED' };
    const { node, monitor, lines, xids } = await startMonitor({ state });
    expect(lines('GPU refused event registration: relying on probes')).toMatchObject([{ gpu: GPU1 }]);
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await expect.poll(() => xids, { timeout: 10_000 }).toEqual([48]);
    expect(unhealthy(monitor)).toEqual([GPU0]);
  });

  it('no event set at all: said once, and probes still mark a lost GPU', async () => {
    const state = twoGpuState();
    state.failures = { nvmlEventSetCreate: 'UNKNOWN' };
    const { node, monitor, lines } = await startMonitor({ state });
    expect(lines('NVML event set unavailable: health relies on periodic probes only')).toMatchObject([
      { err: { codeName: 'NVML_ERROR_UNKNOWN' } },
    ]);
    await node.setLost(GPU1, true);
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([GPU1]);
  });

  it('a GPU NVML cannot find at start is marked, then watched once it answers', async () => {
    const { node, monitor, lines, xids } = await startMonitor({
      recoverAfterSeconds: 1,
      beforeStart: (o) => setNotFoundAndWaitUntilSeen(o, 1),
    });
    expect(monitor.state.records()).toMatchObject([
      { uuid: GPU1, reason: expect.stringMatching(/^cannot watch for events: /) },
    ]);
    await node.update((state) => {
      delete state.devices[1]!.failures;
    });
    await expect
      .poll(() => lines('GPU back in the event set').map((l) => l.gpu), { timeout: 10_000 })
      .toEqual([GPU1]);
    await node.injectEvent({ uuid: GPU1, xid: 94 });
    await expect.poll(() => xids, { timeout: 10_000 }).toEqual([94]);
  });
});

/** Two A100s in MIG mode, each with GPU instance 1 split into compute instances 0 and 1. */
function twoMigGpuState(): MockNvmlState {
  const state = twoGpuState();
  state.devices.forEach((device, g) => {
    device.migEnabled = true;
    device.migDevices = [0, 1].map((ci) => ({
      uuid: `MIG-${g}${ci}000000-0000-0000-0000-000000000000`,
      giId: 1,
      ciId: ci,
      profile: `${ci + 1}c.3g.40gb`,
      memoryMiB: 40192,
      multiprocessors: 14 * (ci + 1),
    }));
  });
  return state;
}

describe('HealthMonitor: which device an event or a probe concerns', () => {
  it('a MIG event marks its own compute instance, on its own GPU, which recovers while another GPU is down', async () => {
    const { node, monitor, lines, clock, inventory } = await startMonitor({
      state: twoMigGpuState(),
      recoverAfterSeconds: 1,
    });
    // GPU 0 has a MIG device with the same GPU and compute instance IDs: only GPU 1's is meant.
    const target = inventory.gpus[1]!.migDevices.find(
      (m) => m.gpuInstanceId === 1 && m.computeInstanceId === 1,
    )!;
    await node.injectEvent({ uuid: target.uuid, xid: 94 });
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([target.uuid]);

    await node.update((state) => {
      state.devices[0]!.failures = { nvmlDeviceGetMemoryInfo: 'RESET_REQUIRED' };
    });
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([target.uuid, GPU0]);
    clock.ms += 10_000;
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([GPU0]);
    expect(lines('device recovered: Healthy').map((l) => l.device)).toEqual([target.uuid]);
  });

  it('a GPU NVML no longer finds is marked, saying so', async () => {
    const { monitor } = await startMonitor();
    await setNotFoundAndWaitUntilSeen(opened!, 1);
    await expect
      .poll(() => reasons(monitor), { timeout: 10_000 })
      .toEqual([
        [
          GPU1,
          expect.stringMatching(
            /^NVML no longer finds the device: nvmlDeviceGetHandleByUUID.*\(NVML_ERROR_NOT_FOUND\)$/,
          ),
        ],
      ]);
  });

  it('a GPU failing a probe but not the event wait is marked and keeps its Xids', async () => {
    const { node, monitor, lines, seen } = await startMonitor();
    await node.update((state) => {
      state.devices[1]!.failures = { nvmlDeviceGetMemoryInfo: 'RESET_REQUIRED' };
    });
    await expect
      .poll(() => reasons(monitor), { timeout: 10_000 })
      .toEqual([[GPU1, expect.stringMatching(/NVML_ERROR_RESET_REQUIRED/)]]);
    await node.injectEvent({ uuid: GPU1, xid: 94 });
    await expect.poll(() => seen, { timeout: 10_000 }).toEqual([[94, true]]);
    expect(lines('GPU taken out of the event set; probing it on its own')).toEqual([]);
  });

  it('without an onXid callback, Xids are still ignored or acted on', async () => {
    const { node, monitor, lines } = await startMonitor({ withoutOnXid: true });
    await node.injectEvent({ uuid: GPU0, xid: 13 });
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await expect.poll(() => reasons(monitor), { timeout: 10_000 }).toEqual([[GPU0, 'Xid 48']]);
    expect(lines('Xid ignored (application error or disabled)')).toMatchObject([{ gpu: GPU0, xid: 13 }]);
    expect(lines(WAIT_FAILED)).toEqual([]);
  });
});

/** Long enough that no periodic probe runs in a test: only a failed event wait makes the monitor probe. */
const HOUR_MS = 3_600_000;

/** Makes every event wait fail until `until` resolves: each failure probes every GPU. */
async function failWaitsUntil(node: OpenedMock['node'], until: () => Promise<void>): Promise<void> {
  await node.update((state) => {
    state.failures = { nvmlEventSetWait_v2: 'UNKNOWN' };
  });
  await until();
  await node.update((state) => {
    delete state.failures;
  });
}

/** GPU1 rejoins the event set at the probe a failed wait makes, and its next Xid is seen again. */
async function expectBackInEventSet(
  node: OpenedMock['node'],
  lines: (msg: string) => { gpu?: string }[],
  xids: readonly number[],
): Promise<void> {
  await failWaitsUntil(node, () =>
    expect
      .poll(() => lines('GPU back in the event set').map((l) => l.gpu), { timeout: 10_000 })
      .toEqual([GPU1]),
  );
  await node.injectEvent({ uuid: GPU1, xid: 94 });
  await expect.poll(() => xids, { timeout: 10_000 }).toEqual([94]);
}

describe('HealthMonitor: joining the event set again', () => {
  it('a GPU NVML cannot find at start joins the event set at the first probe that finds it', async () => {
    const { node, lines, xids } = await startMonitor({
      probeIntervalMs: HOUR_MS,
      beforeStart: (o) => setNotFoundAndWaitUntilSeen(o, 1),
    });
    await node.update((state) => {
      delete state.devices[1]!.failures;
    });
    await expect.poll(() => answers(opened!.nvml, GPU1), { timeout: 10_000, interval: 10 }).toBe(true);
    await expectBackInEventSet(node, lines, xids);
  });

  it('a GPU lost for a moment joins the event set again at the first probe it answers', async () => {
    const { node, monitor, lines, xids } = await startMonitor({ probeIntervalMs: HOUR_MS });
    await node.setLost(GPU1, true);
    await expect
      .poll(() => lines('GPU taken out of the event set; probing it on its own').map((l) => l.gpu), {
        timeout: 10_000,
      })
      .toEqual([GPU1]);
    expect(reasons(monitor)).toEqual([[GPU1, 'GPU is lost (NVML_ERROR_GPU_IS_LOST)']]);
    await setLostAndWaitUntilSeen(opened!, GPU1, false);
    await expectBackInEventSet(node, lines, xids);
  });

  it('a GPU that refuses registration with a failure while answering probes is said once, not retried each round', async () => {
    const state = twoGpuState();
    state.devices[1]!.failures = { nvmlDeviceRegisterEvents: 'UNKNOWN' };
    const { node, monitor, lines, xids, rounds, failures } = await startMonitor({ state });
    // Probe rounds run; two Xids after them, each after the other, pass the loop's rebuild point twice.
    await rounds(2);
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await expect.poll(() => xids, { timeout: 10_000 }).toEqual([48]);
    await node.injectEvent({ uuid: GPU0, xid: 94 });
    await expect.poll(() => xids, { timeout: 10_000 }).toEqual([48, 94]);
    expect(lines('GPU refused event registration; probing it on its own')).toMatchObject([{ gpu: GPU1 }]);
    expect(failures('nvmlDeviceRegisterEvents')).toBe(1);
    expect(unhealthy(monitor)).toEqual([GPU0]);
  });

  it('no event set: a GPU NVML could not find at start is probed, and recovers once it answers', async () => {
    const state = twoGpuState();
    state.failures = { nvmlEventSetCreate: 'UNKNOWN' };
    const { node, monitor, lines, clock } = await startMonitor({
      state,
      recoverAfterSeconds: 1,
      beforeStart: (o) => setNotFoundAndWaitUntilSeen(o, 1),
    });
    expect(unhealthy(monitor)).toEqual([GPU1]);
    await node.update((s) => {
      delete s.devices[1]!.failures;
    });
    clock.ms += 10_000;
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([]);
    expect(lines('device recovered: Healthy').map((l) => l.device)).toEqual([GPU1]);
  });
});

describe('HealthMonitor: a failing event wait', () => {
  it('is retried after eventErrorBackoffMs, not sooner, and stop() ends that pause', async () => {
    const {
      node,
      monitor: m,
      lines,
      failures,
      rounds,
    } = await startMonitor({ eventErrorBackoffMs: HOUR_MS });
    await node.update((state) => {
      state.failures = { nvmlEventSetWait_v2: 'UNKNOWN' };
    });
    await expect.poll(() => failures('nvmlEventSetWait'), { timeout: 10_000 }).toBe(1);
    // 100 probe rounds 20 ms apart: at least 2 s, and no second wait within the hour's pause.
    await rounds(100);
    expect(failures('nvmlEventSetWait')).toBe(1);
    expect(lines(WAIT_FAILED)).toHaveLength(1);
    await m.stop();
  });
});
