/**
 * The demo's story, one small step per thing a newcomer should see. Each step decides from the node's
 * inventory, and from what the agent says about the config it is about to write, whether it can run
 * here; when it cannot it gives the reason in one line. So every simulated node gets the story that
 * fits it: MIG resources where GPUs are in MIG mode, a pod left Pending and then sharing where there
 * is a single GPU.
 */
import { once } from 'node:events';
import path from 'node:path';
import { formatIssue } from '../config/errors.js';
import { parseConfig } from '../config/load.js';
import type { EffectiveConfig } from '../config/schema.js';
import type { ConfigSource, InvalidConfig } from '../config/source.js';
import { formatInventory } from '../devices/format-inventory.js';
import type { Gpu } from '../devices/inventory-types.js';
import { GPU_RESOURCE } from '../devices/mig-strategy.js';
import type { LivePlugin } from '../plugin/live-plugin.js';
import { describeEnforcement, detectHamiCore } from '../runtime/hami-core-host.js';
import type { ConfigMapVolume } from './configmap-volume.js';
import type { DeferredKubeClient } from './deferred-kube-client.js';
import { type DemoMonitor, monitorStep } from './demo-monitor.js';
import { connectedResources, describeDevice, describeResources, deviceOf, freeDevices } from './demo-view.js';
import type { KubeletSimulator, KubeletState } from './kubelet.js';
import type { MockNode } from './mock-node.js';

export interface DemoContext {
  say: (line?: string) => void;
  node: MockNode;
  plugin: LivePlugin;
  /** the monitor on the same node, with the containers the monitor step declares */
  monitor: DemoMonitor;
  kubelet: KubeletSimulator;
  configMap: ConfigMapVolume;
  source: ConfigSource;
  /** The MIG strategy every config edit writes (the MIG step switches it to mixed). */
  migStrategy: 'none' | 'mixed';
  /** Pods admitted since the last config edit; they finish before the next one. */
  pods: { resource: string; deviceIds: string[] }[];
  podsStarted: number;
  /** the plugin's Kubernetes API, connected by the HAMi step, and the node's name there */
  api: { client: DeferredKubeClient; nodeName: string };
  /** runs `cleanup` when the demo stops, after the agent (for what a step starts) */
  atExit: (cleanup: () => Promise<void>) => void;
}

export interface DemoStep {
  /** Names the step in an error message. */
  name: string;
  heading: (ctx: DemoContext) => string;
  /** Why the step cannot run on this node; null when it can. */
  skipReason?: (ctx: DemoContext) => string | null;
  run: (ctx: DemoContext) => Promise<void>;
}

const REPLICAS = 4;
const WAIT_MS = 10_000;
/** The initial ConfigMap: all defaults, whole GPUs. */
export const DEFAULT_CONFIG = 'version: v1\n';

const inventoryStep: DemoStep = {
  name: 'inventory',
  heading: () => 'What NVML reports (through koffi)',
  run: async (ctx) => {
    for (const line of formatInventory(ctx.plugin.runtime.inventory).split('\n'))
      ctx.say(`   ${line.trim()}`);
  },
};

const registrationStep: DemoStep = {
  name: 'registration',
  heading: () => 'The plugin registered with kubelet; kubelet sees (config "default": whole GPUs)',
  run: async (ctx) => {
    const state = await waitForAdvertised(ctx, advertisedUnder(ctx, configText(ctx)));
    for (const line of describeResources(state)) ctx.say(`   ${line}`);
    if (migModeGpus(ctx).length > 0) ctx.say('   (migStrategy none: a GPU in MIG mode is advertised whole)');
  },
};

const migStep: DemoStep = {
  name: 'MIG strategy',
  heading: () => 'The ConfigMap is edited to migStrategy: mixed, each MIG profile its own resource',
  skipReason: (ctx) =>
    migModeGpus(ctx).length === 0
      ? 'no GPU on this node is in MIG mode'
      : whyNotApplicable(ctx, configText(ctx, '', 'mixed')),
  run: async (ctx) => {
    ctx.migStrategy = 'mixed';
    const { state } = await editConfig(ctx, configText(ctx));
    for (const line of describeResources(state)) ctx.say(`   ${line}`);
  },
};

const exclusiveStep: DemoStep = {
  name: 'allocation',
  heading: () =>
    'Pods ask for devices: kubelet calls GetPreferredAllocation, then Allocate for each container',
  run: async (ctx) => {
    for (const resource of connectedResources(ctx.kubelet.resources())) {
      const sizes = resource.devices.length >= 3 ? [2, 1] : [1];
      for (const size of sizes) await admitPod(ctx, resource.resourceName, size);
    }
    // Whole GPUs are exclusive: once they are taken, the next pod waits.
    if (freeDevices(ctx.kubelet.resource(GPU_RESOURCE)) === 0) await admitPod(ctx, GPU_RESOURCE, 1);
  },
};

const timeSlicingStep: DemoStep = {
  name: 'time-slicing',
  heading: () =>
    `The ConfigMap is edited to time-slice every device ${REPLICAS} ways. No restart: the plugin reloads it`,
  skipReason: (ctx) =>
    advertisedNames(ctx).length === 0
      ? 'the node advertises no devices'
      : whyNotApplicable(ctx, timeSlicingConfig(ctx)),
  run: async (ctx) => {
    const shared = sharedResource(ctx);
    const { state, ms } = await editConfig(ctx, timeSlicingConfig(ctx));
    ctx.say(`   kubelet saw the new list ${ms} ms after the update:`);
    for (const line of describeResources(state)) ctx.say(`   ${line}`);
    await admitPod(ctx, shared, 1);
    await admitPod(ctx, shared, 1);
  },
};

const splitStep: DemoStep = {
  name: 'split',
  heading: () =>
    'Edited again: split each whole GPU in 2 slices, each with half its memory and SMs (HAMi-core limits)',
  skipReason: (ctx) =>
    whyNotApplicable(ctx, splitConfig(ctx)) ??
    (advertisedUnder(ctx, splitConfig(ctx)).has(GPU_RESOURCE)
      ? null
      : `no whole GPU is advertised as ${GPU_RESOURCE} here (split slices are of whole GPUs)`),
  run: async (ctx) => {
    const { state } = await editConfig(ctx, splitConfig(ctx));
    for (const line of describeResources(state)) ctx.say(`   ${line}`);
    await admitPod(ctx, GPU_RESOURCE, 1);
    await saySplitEnforcement(ctx);
  },
};

/** What the HAMi step's pod asks for (a container's limits, as a HAMi user writes them). */
const HAMI_REQUEST = { memoryMiB: 3000, cores: 30 };

const hamiStep: DemoStep = {
  name: 'HAMi',
  heading: () =>
    `Edited to sharing.hami: HAMi's scheduler sizes each pod; one asks for nvidia.com/gpumem: ${HAMI_REQUEST.memoryMiB}, nvidia.com/gpucores: ${HAMI_REQUEST.cores}`,
  skipReason: (ctx) => whyNoHamiStep(ctx),
  run: async (ctx) => {
    // Loaded here: the simulated API server and the HTTP client cost the other steps nothing.
    const hami = await import('./demo-hami.js');
    const api = await hami.prepareHamiNode(ctx, hamiHookPathOf(ctx));
    const { state } = await editConfig(ctx, hamiConfig(ctx));
    for (const line of describeResources(state)) ctx.say(`   ${line}`);
    const pod = await hami.scheduleHamiPod(ctx, api, { name: nextPodName(ctx), ...HAMI_REQUEST });
    ctx.pods.push(pod);
  },
};

/** HAMi mode must apply here, and a whole GPU must have room for the pod. */
function whyNoHamiStep(ctx: DemoContext): string | null {
  const problem = whyNotApplicable(ctx, hamiConfig(ctx));
  if (problem !== null) return problem;
  if (!advertisedUnder(ctx, hamiConfig(ctx)).has(GPU_RESOURCE))
    return `no whole GPU is advertised as ${GPU_RESOURCE} here (HAMi's scheduler shares whole GPUs)`;
  const roomy = ctx.plugin.runtime.inventory.gpus.some(
    (g) => !g.migEnabled && g.memoryMiB >= HAMI_REQUEST.memoryMiB,
  );
  return roomy ? null : `no whole GPU here has ${HAMI_REQUEST.memoryMiB} MiB`;
}

/** Whether the slice limits would hold on this node, and why not: what the agent itself checks. */
async function saySplitEnforcement(ctx: DemoContext): Promise<void> {
  const host = await detectHamiCore(hookPathOf(ctx));
  ctx.say(`   (${describeEnforcement(host)};`);
  ctx.say('    the agent says so in its log and in vgpu_agent_split_limits_enforced)');
}

const xidStep: DemoStep = {
  name: 'Xid',
  heading: (ctx) => {
    const victim = xidVictim(ctx);
    return `The driver reports Xid 79 (GPU has fallen off the bus) on ${victim ? `GPU ${victim.index}` : 'a GPU'}`;
  },
  skipReason: (ctx) => (xidVictim(ctx) ? null : 'the node has no GPU'),
  run: async (ctx) => {
    const victim = xidVictim(ctx)!;
    await ctx.node.injectEvent({ uuid: victim.uuid, xid: 79 });
    const state = await ctx.kubelet.waitFor(everyDeviceOfUnhealthy(ctx, victim), {
      timeoutMs: WAIT_MS,
      description: `the devices of GPU ${victim.index} to turn Unhealthy`,
    });
    for (const line of describeResources(state)) ctx.say(`   ${line}`);
    ctx.say(`   (replicas, slices and MIG devices of GPU ${victim.index} share its health; it turns Healthy`);
    ctx.say('    again after health.recoverAfterSeconds, 300 s by default, once NVML answers for it)');
  },
};

/** Each resource sends its own list: wait until every device carved out of `gpu` shows Unhealthy. */
function everyDeviceOfUnhealthy(ctx: DemoContext, gpu: Gpu): (state: KubeletState) => boolean {
  const uuids = new Set([gpu.uuid, ...gpu.migDevices.map((m) => m.uuid)]);
  const inventory = ctx.plugin.runtime.inventory;
  return (state) => {
    const devices = connectedResources(state)
      .flatMap((r) => r.devices)
      .filter((d) => uuids.has(deviceOf(inventory, d.ID)?.uuid ?? ''));
    return devices.length > 0 && devices.every((d) => d.health === 'Unhealthy');
  };
}

const brokenEditStep: DemoStep = {
  name: 'rejected edit',
  heading: () => 'A broken edit (replicas: 1) is rejected; the last good config keeps being served',
  run: async (ctx) => {
    const rejection = nextRejection(ctx.source);
    await ctx.configMap.write({ default: configText(ctx, timeSlicingYaml([GPU_RESOURCE], 1)) });
    for (const issue of await rejection) ctx.say(`   ${issue}`);
  },
};

/** The story, in order; steps that do not fit the node skip themselves. */
export const DEMO_STEPS: readonly DemoStep[] = [
  inventoryStep,
  registrationStep,
  migStep,
  exclusiveStep,
  timeSlicingStep,
  splitStep,
  hamiStep,
  xidStep,
  brokenEditStep,
  monitorStep,
];

// --- Configs --------------------------------------------------------------------------------------

function configText(ctx: DemoContext, sharing = '', migStrategy = ctx.migStrategy): string {
  const flags = migStrategy === 'none' ? '' : `flags:\n  migStrategy: ${migStrategy}\n`;
  return `version: v1\n${flags}${sharing}`;
}

function timeSlicingYaml(resources: readonly string[], replicas: number): string {
  const entries = resources.map((name) => `      - name: ${name}\n        replicas: ${replicas}\n`);
  return `sharing:\n  timeSlicing:\n    resources:\n${entries.join('')}`;
}

function timeSlicingConfig(ctx: DemoContext): string {
  return configText(ctx, timeSlicingYaml(advertisedNames(ctx), REPLICAS));
}

/** The simulated node has no HAMi-core: the demo shows what the agent says about that. */
function hookPathOf(ctx: DemoContext): string {
  return path.join(ctx.node.dir, 'hami-core');
}

function splitConfig(ctx: DemoContext): string {
  return configText(
    ctx,
    `sharing:\n  split:\n    hookPath: ${hookPathOf(ctx)}\n    resources:\n      - name: ${GPU_RESOURCE}\n        count: 2\n`,
  );
}

/** HAMi-core's host directory for HAMi mode, laid out by the HAMi step as HAMi's vgpu-init.sh does. */
function hamiHookPathOf(ctx: DemoContext): string {
  return path.join(ctx.node.dir, 'hami-vgpu');
}

/** HAMi's defaults (10 replicas per GPU), HAMi-core where the HAMi step puts it. */
function hamiConfig(ctx: DemoContext): string {
  return configText(ctx, `sharing:\n  hami:\n    hookPath: ${hamiHookPathOf(ctx)}\n`);
}

function parseDemoConfig(text: string): EffectiveConfig {
  const parsed = parseConfig(text, 'demo config');
  if (!parsed.ok)
    throw new Error(`the demo's own config is invalid: ${parsed.error.map(formatIssue).join('; ')}`);
  return parsed.value.config;
}

/** Resource name → device count the agent advertises under `text`. */
function advertisedUnder(ctx: DemoContext, text: string): Map<string, number> {
  const { resources } = ctx.plugin.agent.resourcesFor(parseDemoConfig(text));
  return new Map(resources.map((r) => [r.name, r.devices.length]));
}

function whyNotApplicable(ctx: DemoContext, text: string): string | null {
  return ctx.plugin.agent.problemsWith(parseDemoConfig(text))[0] ?? null;
}

/** The resources of the config being served now. */
function advertisedNames(ctx: DemoContext): string[] {
  return ctx.plugin.agent.resourcesFor(ctx.plugin.agent.currentConfig).resources.map((r) => r.name);
}

/** Writes the ConfigMap as kubelet does and waits until kubelet sees what the agent should advertise. */
async function editConfig(ctx: DemoContext, text: string): Promise<{ state: KubeletState; ms: number }> {
  const expected = advertisedUnder(ctx, text);
  finishPods(ctx);
  const started = performance.now();
  await ctx.configMap.write({ default: text });
  const state = await waitForAdvertised(ctx, expected);
  return { state, ms: Math.round(performance.now() - started) };
}

function waitForAdvertised(ctx: DemoContext, expected: Map<string, number>): Promise<KubeletState> {
  const wanted = [...expected].map(([name, count]) => `${count} × ${name}`).join(', ');
  return ctx.kubelet.waitFor(
    (state) => {
      const connected = connectedResources(state);
      return (
        connected.length === expected.size &&
        connected.every((r) => expected.get(r.resourceName) === r.devices.length)
      );
    },
    { timeoutMs: WAIT_MS, description: `kubelet to see ${wanted || 'no resources'}` },
  );
}

/** The issues of the next rejected config update (listening starts now, before the write). */
function nextRejection(source: ConfigSource): Promise<string[]> {
  return once(source, 'invalid', { signal: AbortSignal.timeout(WAIT_MS) }).then(
    ([event]) => (event as InvalidConfig).issues,
    () => {
      throw new Error(`the broken config was not rejected within ${WAIT_MS / 1000} s`);
    },
  );
}

// --- Pods -----------------------------------------------------------------------------------------

const POD_KINDS = ['train', 'infer', 'batch', 'notebook', 'llm', 'eval', 'serve', 'etl'];

function nextPodName(ctx: DemoContext): string {
  const n = ctx.podsStarted++;
  return `${POD_KINDS[n % POD_KINDS.length]}-${String.fromCharCode(97 + (n % 26))}`;
}

/** One pod's container asking for `count` devices: admitted, or left Pending when too few are free. */
async function admitPod(ctx: DemoContext, resource: string, count: number): Promise<void> {
  const pod = nextPodName(ctx);
  const free = freeDevices(ctx.kubelet.resource(resource));
  if (free < count) {
    const available = free === 0 ? 'none free' : `only ${free} free`;
    ctx.say(
      `   pod ${pod}: ${count} × ${resource} → ${available}: the pod stays Pending until one is released`,
    );
    return;
  }
  const { deviceIds, response } = await ctx.kubelet.allocate(resource, count);
  ctx.pods.push({ resource, deviceIds });
  const devices = deviceIds.map((id) => describeDevice(ctx.plugin.runtime.inventory, id));
  ctx.say(`   pod ${pod}: ${count} × ${resource} → ${devices.join(', ')}`);
  for (const [key, value] of Object.entries(response.envs ?? {})) ctx.say(`     env ${key}=${value}`);
}

/** The demo's pods end before the next edit, so each step starts with every device free. */
function finishPods(ctx: DemoContext): void {
  for (const pod of ctx.pods.splice(0)) ctx.kubelet.release(pod.resource, pod.deviceIds);
}

// --- Choices from the inventory -------------------------------------------------------------------

function migModeGpus(ctx: DemoContext): Gpu[] {
  return ctx.plugin.runtime.inventory.gpus.filter((g) => g.migEnabled && g.migDevices.length > 0);
}

/** Where two time-sliced pods are shown: a MIG resource when there is one, the fewest devices first. */
function sharedResource(ctx: DemoContext): string {
  const { resources } = ctx.plugin.agent.resourcesFor(ctx.plugin.agent.currentConfig);
  const ranked = [...resources].sort(
    (a, b) =>
      Number(b.name !== GPU_RESOURCE) - Number(a.name !== GPU_RESOURCE) ||
      a.devices.length - b.devices.length ||
      a.name.localeCompare(b.name),
  );
  return ranked[0]!.name;
}

/** The GPU the Xid hits: one in MIG mode when there is one (its MIG devices follow it), else the last. */
function xidVictim(ctx: DemoContext): Gpu | undefined {
  return migModeGpus(ctx).at(-1) ?? ctx.plugin.runtime.inventory.gpus.at(-1);
}
