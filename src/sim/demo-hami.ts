/**
 * The demo's HAMi step, loaded only when it runs: a simulated API server holding what HAMi's
 * scheduler writes (hami-api.ts), the plugin connected to it, and the scheduler played for one pod.
 * The scheduler reads the GPUs the node registered, picks one with room, writes the pod's decision
 * and the node lock in its own formats; kubelet then admits the pod, and the transcript shows what
 * the container got (the plugin's Allocate answer) and what the API server holds afterwards.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GPU_RESOURCE } from '../devices/mig-strategy.js';
import {
  BIND_PHASE_ANNOTATION,
  NODE_LOCK_ANNOTATION,
  REGISTER_ANNOTATION,
  type RegisteredGpu,
  TO_ALLOCATE_ANNOTATION,
  workLeft,
} from '../hami/protocol.js';
import { HttpKubeClient } from '../kube/client.js';
import type { DemoContext } from './demo-steps.js';
import { describeDevice } from './demo-view.js';
import { HamiApiSimulator, scheduledPod, schedulerDecision } from './hami-api.js';

const WAIT_MS = 10_000;

/**
 * Starts the simulated API server, connects the plugin to it and lays `hookPath` out as HAMi's
 * vgpu-init.sh leaves it (libvgpu.so, and ld.so.preload naming it); the library is an empty stand-in.
 */
export async function prepareHamiNode(ctx: DemoContext, hookPath: string): Promise<HamiApiSimulator> {
  const api = await HamiApiSimulator.start(ctx.api.nodeName);
  ctx.atExit(() => api.close());
  ctx.api.client.connect(new HttpKubeClient({ server: api.url }));
  await mkdir(hookPath, { recursive: true });
  const library = path.join(hookPath, 'libvgpu.so');
  await writeFile(library, '');
  await writeFile(path.join(hookPath, 'ld.so.preload'), `${library}\n`);
  return api;
}

export interface HamiPodRequest {
  name: string;
  memoryMiB: number;
  cores: number;
}

/**
 * HAMi's scheduler places a one-GPU pod on the first registered GPU with room and binds it here;
 * kubelet admits it. Returns what kubelet allocated, for the demo to release before the next edit.
 */
export async function scheduleHamiPod(
  ctx: DemoContext,
  api: HamiApiSimulator,
  request: HamiPodRequest,
): Promise<{ resource: string; deviceIds: string[] }> {
  const inventory = ctx.plugin.runtime.inventory;
  const registered = await registeredGpus(api);
  ctx.say(
    `   the node registered ${registered.length} GPU(s) for the scheduler (${REGISTER_ANNOTATION}); the first:`,
  );
  ctx.say(`     ${JSON.stringify(registered[0])}`);
  const gpu = registered.find(
    (g) => g.health === true && (g.devmem ?? 0) >= request.memoryMiB && (g.devcore ?? 0) >= request.cores,
  );
  if (!gpu) throw new Error(`no registered GPU has ${request.memoryMiB} MiB and ${request.cores} % free`);

  api.bind(
    scheduledPod({
      name: request.name,
      nodeName: api.nodeName,
      toAllocate: schedulerDecision([[{ uuid: gpu.id, ...request }]]),
      containers: [{ name: 'main', resources: { limits: hamiLimits(request) } }],
    }),
  );
  ctx.say(
    `   HAMi's scheduler puts pod ${request.name} on ${describeDevice(inventory, gpu.id)} and binds it:`,
  );
  const pod = api.pod('default', request.name);
  ctx.say(`     pod  ${TO_ALLOCATE_ANNOTATION}=${pod.metadata.annotations![TO_ALLOCATE_ANNOTATION]}`);
  ctx.say(`     node ${NODE_LOCK_ANNOTATION}=${api.nodeAnnotations[NODE_LOCK_ANNOTATION]}`);

  const container = { namespace: pod.metadata.namespace, pod: request.name, container: 'main' };
  const { deviceIds, response } = await ctx.kubelet.allocate(GPU_RESOURCE, 1, { container });
  const replicas = deviceIds.map((id) => describeDevice(inventory, id)).join(', ');
  ctx.say(`   kubelet admits it with replica ${replicas}: a count only, the GPU is the scheduler's.`);
  ctx.say("   The plugin's Allocate answers:");
  for (const [key, value] of Object.entries(response.envs ?? {})) ctx.say(`     env ${key}=${value}`);
  for (const m of response.mounts ?? [])
    ctx.say(`     mount ${m.container_path}${m.read_only ? ' (read-only)' : ''}`);
  sayApiState(ctx, api, request.name);
  ctx.say('   (libvgpu.so here is an empty stand-in: on a real node HAMi-core enforces these limits)');
  return { resource: GPU_RESOURCE, deviceIds };
}

function hamiLimits(request: HamiPodRequest): Record<string, string> {
  return {
    [GPU_RESOURCE]: '1',
    'nvidia.com/gpumem': String(request.memoryMiB),
    'nvidia.com/gpucores': String(request.cores),
  };
}

/** What the plugin left in the API server: the pod's bind phase and decision, and the node lock. */
function sayApiState(ctx: DemoContext, api: HamiApiSimulator, podName: string): void {
  const annotations = api.pod('default', podName).metadata.annotations ?? {};
  const decision = annotations[TO_ALLOCATE_ANNOTATION];
  const lock = api.nodeAnnotations[NODE_LOCK_ANNOTATION];
  ctx.say(
    `   then the API server holds: pod ${BIND_PHASE_ANNOTATION}=${annotations[BIND_PHASE_ANNOTATION]}, ` +
      `${TO_ALLOCATE_ANNOTATION}=${decision}${workLeft(decision) ? '' : ' (nothing left to hand out)'},`,
  );
  ctx.say(`     node ${lock === undefined ? 'lock released' : `lock still held: ${lock}`}`);
}

/** A register annotation entry as JSON: Go leaves every zero value out (no `health`: unhealthy). */
type RegisteredEntry = Partial<RegisteredGpu> & { id: string };

/** The register annotation once the plugin has written it, as the scheduler reads it. */
async function registeredGpus(api: HamiApiSimulator): Promise<RegisteredEntry[]> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = api.nodeAnnotations[REGISTER_ANNOTATION];
    if (value !== undefined) return JSON.parse(value) as RegisteredEntry[];
    if (Date.now() > deadline)
      throw new Error(`the plugin did not write ${REGISTER_ANNOTATION} within ${WAIT_MS / 1000} s`);
    await sleep(50);
  }
}
