/**
 * HealthMonitor through the real koffi binding on the mock NVML: a lost GPU is taken out of the shared
 * event set (so the other GPUs' Xids still arrive) and said once, a device stays Unhealthy for
 * recoverAfterSeconds, and a wait failure that keeps recurring is logged at most once per interval. Log lines are captured from pino, the clock is a
 * counter the test moves: nothing here depends on how fast the machine is.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthMonitor, type HealthSettings } from '../../src/devices/health-monitor.js';
import { buildInventory } from '../../src/devices/inventory.js';
import { createLogger } from '../../src/log.js';
import type { NvmlError } from '../../src/nvml/errors.js';
import { type OpenedMock, openMockNvml, twoGpuState } from '../helpers/mock-nvml.js';

const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';
const WAIT_FAILED = 'NVML event wait failed; probing every GPU';
const settings: HealthSettings = { enabled: true, disabledXids: new Set([13]), recoverAfterSeconds: 0 };

let opened: OpenedMock | undefined;
let monitor: HealthMonitor | undefined;
afterEach(async () => {
  await monitor?.stop();
  monitor = undefined;
  await opened?.close();
  opened = undefined;
});

/**
 * A monitor on the two-GPU mock; `failures` counts failed NVML calls by function. `lostAtStart`: GPU 1
 * is lost after the inventory was read, before the monitor registers it for events. `clock.reads`
 * counts the monitor's looks at the clock (one per probe round at least).
 */
async function startMonitor({ lostAtStart = false, recoverAfterSeconds = 0 } = {}) {
  const nvmlErrors: NvmlError[] = [];
  opened = await openMockNvml(twoGpuState(), { onError: (e) => nvmlErrors.push(e) });
  const inventory = await buildInventory(opened.nvml, opened.node.hostPaths);
  if (lostAtStart) await setLostAndWaitUntilSeen(opened, GPU1);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const clock = { ms: 1_000_000, reads: 0 };
  const xids: number[] = [];
  monitor = new HealthMonitor({
    nvml: opened.nvml,
    inventory,
    settings: { ...settings, recoverAfterSeconds },
    logger: createLogger({ level: 'debug', destination: sink }),
    onChange: () => {},
    onXid: (xid) => xids.push(xid),
    probeIntervalMs: 20,
    eventWaitTimeoutMs: 100,
    eventErrorBackoffMs: 20,
    now: () => {
      clock.reads++;
      return clock.ms;
    },
  });
  monitor.start();
  const failures = (fn: string) => nvmlErrors.filter((e) => e.functionName.startsWith(fn)).length;
  const lines = (msg: string) => logs.filter((l) => l.msg === msg);
  return { node: opened.node, monitor, logs, lines, clock, xids, failures };
}

const unhealthy = (m: HealthMonitor) => m.state.records().map((r) => r.uuid);

async function setLostAndWaitUntilSeen({ nvml, node }: OpenedMock, uuid: string): Promise<void> {
  await node.setLost(uuid, true);
  const answers = () => {
    try {
      nvml.memoryInfo(nvml.deviceByUuid(uuid));
      return true;
    } catch {
      return false;
    }
  };
  await expect.poll(answers, { timeout: 5000, interval: 10 }).toBe(false);
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
    expect(unhealthy(monitor)).toEqual([GPU1, GPU0]);
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
    const { node, monitor, lines, clock } = await startMonitor({ recoverAfterSeconds: 300 });
    await node.injectEvent({ uuid: GPU0, xid: 48 });
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([GPU0]);
    // One second short: GPU 0 answers every probe round (20 ms apart), many rounds pass, it stays out.
    clock.ms += 299_000;
    const reads = clock.reads;
    await expect.poll(() => clock.reads, { timeout: 10_000 }).toBeGreaterThanOrEqual(reads + 10);
    expect(unhealthy(monitor)).toEqual([GPU0]);
    expect(lines('device recovered: Healthy')).toEqual([]);

    clock.ms += 1000;
    await expect.poll(() => unhealthy(monitor), { timeout: 10_000 }).toEqual([]);
    expect(lines('device recovered: Healthy').map((l) => l.device)).toEqual([GPU0]);
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
