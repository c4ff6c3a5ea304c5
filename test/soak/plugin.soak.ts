/**
 * Soak: the plugin process on the simulated 8 × A100 node for SOAK_MINUTES, cycle after cycle:
 * kubelet restarted; the ConfigMap swapped to a valid config (time-slicing, 2 and 4 replicas in
 * turn) then to an invalid one (three kinds in turn); an Xid storm on one GPU while another is lost,
 * under Allocate load from the kubelet simulator, until both recover. Every outcome is counted and
 * must hold each time (re-registered, devices as the config says, the invalid one rejected with the
 * last good served, health lost and recovered, no Allocate error but the expected races with a device
 * turning Unhealthy). RSS, open descriptors and event-loop delay are read after each cycle; the last
 * quarter of the run must stay within a bound relative to the first (no wall-clock limits). The
 * counts and figures are printed and written to SOAK_REPORT (default bench/results/soak-latest.md).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/paths.js';
import { ConfigMapVolume } from '../../src/sim/configmap-volume.js';
import { KubeletSimulator } from '../../src/sim/kubelet.js';
import { MockNode } from '../../src/sim/mock-node.js';
import { chartNodeOptions, type ProbeSample, type SoakPlugin, startSoakPlugin } from './soak-plugin.js';
import { type Counts, newCounts, type Windows, windows } from './soak-report.js';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const REPORT = process.env.SOAK_REPORT ?? path.join(packageRoot(), 'bench/results/soak-latest.md');
const GPU = 'nvidia.com/gpu';
const GPUS = 8;
const XIDS_PER_STORM = 50;
const ALLOCATIONS_PER_CYCLE = 100;
const WAIT = { timeoutMs: 30_000 };

const validConfig = (replicas: number) =>
  `version: v1\nhealth:\n  recoverAfterSeconds: 1\nsharing:\n  timeSlicing:\n    resources:\n    - name: ${GPU}\n      replicas: ${replicas}\n`;
const INVALID_CONFIGS = [
  validConfig(1), // replicas must be >= 2
  'version: v1\nsharing: [\n', // not YAML
  'version: v1\nflags:\n  migStrategy: sideways\n', // not a strategy
];

interface Rig {
  node: MockNode;
  kubelet: KubeletSimulator;
  configMap: ConfigMapVolume;
  plugin: SoakPlugin;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startRig(): Promise<Rig> {
  const node = await MockNode.create('dgx-a100');
  cleanups.push(() => node.remove());
  const pluginDir = path.join(node.dir, 'device-plugins');
  await mkdir(pluginDir, { recursive: true });
  const kubelet = await KubeletSimulator.start({ dir: pluginDir });
  cleanups.push(() => kubelet.stop());
  const configMap = await ConfigMapVolume.create({ default: validConfig(2) }, path.join(node.dir, 'config'));
  const plugin = await startSoakPlugin(node, pluginDir, configMap.dir);
  cleanups.push(() => plugin.stop());
  await kubelet.waitFor((s) => s.get(GPU)?.devices.length === GPUS * 2, WAIT);
  return { node, kubelet, configMap, plugin };
}

/** Runs `step`; a failure is recorded under `name` instead of ending the soak. */
async function attempt(
  counts: Counts,
  name: keyof Counts['passed'],
  step: () => Promise<void>,
): Promise<void> {
  counts.tried[name]++;
  try {
    await step();
    counts.passed[name]++;
  } catch (err) {
    counts.failures.push(`${name}, cycle ${counts.cycles + 1}: ${(err as Error).message}`);
  }
}

async function restartKubelet({ kubelet }: Rig, replicas: number): Promise<void> {
  const before = kubelet.resource(GPU)!.registrations;
  await kubelet.restart();
  await kubelet.waitFor((s) => {
    const r = s.get(GPU);
    return r?.registrations === before + 1 && r.connected && r.devices.length === GPUS * replicas;
  }, WAIT);
}

async function reloadValid({ kubelet, configMap }: Rig, replicas: number): Promise<void> {
  await configMap.write({ default: validConfig(replicas) });
  await kubelet.waitFor((s) => s.get(GPU)?.devices.length === GPUS * replicas, WAIT);
}

async function reloadInvalid(
  { kubelet, configMap, plugin }: Rig,
  text: string,
  replicas: number,
): Promise<void> {
  const rejected = /^vgpu_agent_config_reloads_total\{result="invalid"\}/;
  const before = await plugin.metric(rejected);
  await configMap.write({ default: text });
  await expect.poll(() => plugin.metric(rejected), { timeout: WAIT.timeoutMs }).toBe(before + 1);
  const served = kubelet.resource(GPU)!;
  if (!served.connected || served.devices.length !== GPUS * replicas)
    throw new Error(`after a rejected config kubelet has ${served.devices.length} devices`);
}

const devicesOf = (rig: Rig, uuid: string) =>
  rig.kubelet.resource(GPU)!.devices.filter((d) => d.ID.includes(uuid));

/** An Xid storm on one GPU while another is lost, under Allocate load; both must recover. */
async function healthStorm(rig: Rig, counts: Counts, stormed: string, lost: string): Promise<void> {
  const load = allocateLoad(rig, counts);
  try {
    for (let i = 0; i < XIDS_PER_STORM; i++) await rig.node.injectEvent({ uuid: stormed, xid: 48 });
    await rig.node.setLost(lost, true);
    await rig.kubelet.waitFor(
      () => [stormed, lost].every((uuid) => devicesOf(rig, uuid).every((d) => d.health === 'Unhealthy')),
      WAIT,
    );
    await rig.node.setLost(lost, false);
    // The mock keeps every event it was given: keep the last (its seq numbers the next) only.
    await rig.node.update((state) => {
      state.events = state.events?.slice(-1);
    });
    await rig.kubelet.waitFor((s) => s.get(GPU)!.devices.every((d) => d.health === 'Healthy'), WAIT);
  } finally {
    await load.stop();
  }
}

/** Allocations of one device, released at once, until stopped; failures sorted into expected or not. */
function allocateLoad({ kubelet }: Rig, counts: Counts) {
  let stopped = false;
  const running = (async () => {
    for (let i = 0; i < ALLOCATIONS_PER_CYCLE && !stopped; i++) {
      try {
        const { deviceIds } = await kubelet.allocate(GPU, 1);
        kubelet.release(GPU, deviceIds);
        counts.allocations.ok++;
      } catch (err) {
        const message = (err as Error).message;
        // kubelet picked a device that turned Unhealthy before Allocate reached the plugin.
        if (/FAILED_PRECONDITION|unhealthy/i.test(message)) counts.allocations.expectedErrors++;
        else counts.allocations.unexpected.push(message);
      }
    }
  })();
  return {
    async stop() {
      stopped = true;
      await running;
    },
  };
}

async function cycle(rig: Rig, counts: Counts): Promise<number> {
  const n = counts.cycles;
  const replicas = n % 2 === 0 ? 4 : 2;
  const previous = n % 2 === 0 ? 2 : 4;
  await attempt(counts, 'restarts', () => restartKubelet(rig, previous));
  await attempt(counts, 'validReloads', () => reloadValid(rig, replicas));
  const invalid = INVALID_CONFIGS[n % INVALID_CONFIGS.length]!;
  await attempt(counts, 'invalidReloads', () => reloadInvalid(rig, invalid, replicas));
  const uuids = rig.node.state.devices.map((d) => d.uuid);
  await attempt(counts, 'healthStorms', () =>
    healthStorm(rig, counts, uuids[n % GPUS]!, uuids[(n + 3) % GPUS]!),
  );
  counts.cycles++;
  return replicas;
}

describe(`the plugin under soak for ${MINUTES} min`, () => {
  it('survives kubelet restarts, config reloads, Xid storms, lost GPUs and Allocate load, with bounded RSS, descriptors and event-loop delay', async () => {
    const rig = await startRig();
    const counts = newCounts();
    const samples: ProbeSample[] = [];
    const end = Date.now() + MINUTES * 60_000;
    while (Date.now() < end || counts.cycles < 8) {
      await cycle(rig, counts);
      samples.push(await rig.plugin.probe());
    }
    const exitCode = await rig.plugin.stop();
    const result = windows(samples);
    await writeReport(counts, result, exitCode);

    expect(counts.failures).toEqual([]);
    expect(counts.allocations.unexpected).toEqual([]);
    expect(exitCode).toBe(0);
    expect(result.rss.last).toBeLessThanOrEqual(result.rss.first * 1.3);
    expect(result.fds.last).toBeLessThanOrEqual(result.fds.first * 1.25 + 2);
    expect(result.loopDelayP99Ms.last).toBeLessThanOrEqual(result.loopDelayP99Ms.first * 3);
  });
});

/** The most replicas per GPU whose list kubelet can receive on this node (docs/performance.md). */
const MAX_REPLICAS = 6863;

describe("the chart's heap flags", () => {
  it('leave room for the largest device list: 8 × 6,863 time-sliced devices registered, then allocated', async () => {
    const node = await MockNode.create('dgx-a100');
    cleanups.push(() => node.remove());
    const pluginDir = path.join(node.dir, 'device-plugins');
    await mkdir(pluginDir, { recursive: true });
    const kubelet = await KubeletSimulator.start({ dir: pluginDir });
    cleanups.push(() => kubelet.stop());
    const configMap = await ConfigMapVolume.create(
      { default: validConfig(MAX_REPLICAS) },
      path.join(node.dir, 'config'),
    );
    const plugin = await startSoakPlugin(node, pluginDir, configMap.dir);
    cleanups.push(() => plugin.stop());
    // V8 aborts the process when its old space is too small for this list (it did with 64 MiB).
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === GPUS * MAX_REPLICAS, { timeoutMs: 180_000 });
    const { deviceIds } = await kubelet.allocate(GPU, 8);
    expect(deviceIds).toHaveLength(8);
    expect(await plugin.stop()).toBe(0);
  });
});

async function writeReport(counts: Counts, result: Windows, exitCode: number | null): Promise<void> {
  const { renderReport } = await import('./soak-report.js');
  const text = renderReport(counts, result, {
    minutes: MINUTES,
    nodeOptions: chartNodeOptions(),
    node: process.version,
    exitCode,
  });
  await mkdir(path.dirname(REPORT), { recursive: true });
  await writeFile(REPORT, text);
  console.log(text);
}
