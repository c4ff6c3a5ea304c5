/**
 * The monitor's optional sources, each behind its own flag, opened once NVML and the inventory are
 * ready: container names from the pods on this node (`--kube-api`), allocations from kubelet's
 * PodResources (`--pod-resources-socket`), split slices' host directories (`--hook-path`) and the
 * compatibility series (`--compat`). Each one missing only makes the series less complete: without
 * names they carry pod_uid / container_id, without allocations nothing is called unallocated.
 */
import type { Logger } from 'pino';
import { inClusterClient, KubeConfigError } from '../kube/in-cluster.js';
import type { MonitorSources } from '../monitor/agent.js';
import type { SplitUsageSource } from '../monitor/collector.js';
import { type CompatMode, compatFamilySets, isCompatMode } from '../monitor/compat.js';
import { PodNamer } from '../monitor/pod-namer.js';
import {
  DEFAULT_POD_RESOURCES_SOCKET,
  PodResourcesAllocations,
} from '../monitor/pod-resources-allocations.js';
import { DEFAULT_SPLIT_GRACE_PERIOD_MS, SplitDirectories } from '../monitor/split-directories.js';
import type { NodeRuntime } from '../runtime/node-runtime.js';
import { type OptionSpec, type OptionValues, UsageError } from './options.js';

/** A deleted pod's names are kept at least this long, so a last collection can still name it. */
const MIN_FORGET_AFTER_MS = 30_000;

export const monitorSourceOptions: OptionSpec[] = [
  {
    flag: 'kube-api',
    env: 'KUBE_API',
    type: 'boolean',
    default: false,
    description:
      'Name containers from the pods on this node, listed and watched through the API (service account; needs NODE_NAME and list/watch on pods)',
  },
  {
    flag: 'pod-resources-socket',
    env: 'POD_RESOURCES_SOCKET',
    type: 'string',
    default: DEFAULT_POD_RESOURCES_SOCKET,
    description:
      "kubelet's PodResources socket: which devices each container was allocated (empty: not asked, nothing is called unallocated)",
  },
  {
    flag: 'hook-path',
    env: 'HOOK_PATH',
    type: 'string',
    multiple: true,
    description:
      "The plugin's split.hookPath or sharing.hami.hookPath (repeat, or comma-separated): split slices' and HAMi-mode containers' limits and GPUs, HAMi-core's usage, and removal of directories no container holds",
  },
  {
    flag: 'split-gc-grace',
    env: 'SPLIT_GC_GRACE',
    type: 'string',
    default: `${DEFAULT_SPLIT_GRACE_PERIOD_MS / 1000}s`,
    description: "How long a split slice's directory stays unallocated before it is removed",
  },
  {
    flag: 'compat',
    env: 'MONITOR_COMPAT',
    type: 'string',
    multiple: true,
    description:
      "Also serve other exporters' series: dcgm (DCGM_FI_DEV_*), hami (hami_*); repeat, or comma-separated",
  },
];

/** What the sources need besides the flags. */
export interface MonitorSourceContext {
  values: OptionValues;
  env: NodeJS.ProcessEnv;
  runtime: NodeRuntime;
  intervalMs: number;
  parseDuration: (text: string, flag: string) => number;
}

/** Checks the source flags before NVML is touched (usage errors exit 2). */
export function checkMonitorSourceFlags(
  values: OptionValues,
  parseDuration: (text: string, flag: string) => number,
): void {
  compatModes(values);
  parseDuration(values['split-gc-grace'] as string, 'split-gc-grace');
  if (values['kube-api'] && !values['node-name']) {
    throw new UsageError('--kube-api needs --node-name (NODE_NAME, from the downward API)');
  }
}

/** Opens every source the flags ask for; on failure, stops those already open. */
export async function openMonitorSources(context: MonitorSourceContext): Promise<MonitorSources> {
  const { values, runtime } = context;
  const logger = runtime.logger;
  const stops: (() => Promise<void>)[] = [];
  try {
    const namer = values['kube-api'] ? await openPodNamer(context, logger) : undefined;
    if (namer) stops.push(() => namer.stop());
    const allocations = await openAllocations(context, logger);
    if (allocations) stops.push(() => allocations.stop());
    const splits = allocations && openSplitDirectories(context, allocations, logger);
    const modes = compatModes(values);
    return {
      ...(namer && { namer }),
      ...(allocations && { allocations }),
      ...(splits && { splits }),
      familySets: compatFamilySets(modes, { nodeName: values['node-name'] as string | undefined }),
      stop: async () => {
        for (const stop of stops.reverse()) await stop();
      },
    };
  } catch (err) {
    for (const stop of stops.reverse()) await stop();
    throw err;
  }
}

async function openPodNamer(context: MonitorSourceContext, logger: Logger): Promise<PodNamer> {
  const nodeName = context.values['node-name'] as string;
  try {
    return await PodNamer.start({
      nodeName,
      client: await inClusterClient(context.env),
      logger,
      forgetAfterMs: Math.max(MIN_FORGET_AFTER_MS, 2 * context.intervalMs),
    });
  } catch (err) {
    if (err instanceof KubeConfigError) throw new UsageError(`--kube-api: ${err.message}`);
    throw err;
  }
}

async function openAllocations(
  context: MonitorSourceContext,
  logger: Logger,
): Promise<PodResourcesAllocations | undefined> {
  const socketPath = (context.values['pod-resources-socket'] as string).trim();
  if (socketPath === '') return undefined;
  const { inventory } = context.runtime;
  const knownUuids = new Set(
    inventory.gpus.flatMap((gpu) => [gpu.uuid, ...gpu.migDevices.map((m) => m.uuid)]),
  );
  return PodResourcesAllocations.start({ socketPath, intervalMs: context.intervalMs, knownUuids, logger });
}

/** One scanner per hook path; undefined without --hook-path. Joins need kubelet's allocations. */
function openSplitDirectories(
  context: MonitorSourceContext,
  allocations: PodResourcesAllocations,
  logger: Logger,
): SplitUsageSource | undefined {
  const hookPaths = listValue(context.values['hook-path']);
  if (hookPaths.length === 0) return undefined;
  const gracePeriodMs = context.parseDuration(context.values['split-gc-grace'] as string, 'split-gc-grace');
  const gpus = context.runtime.inventory.gpus.map((g) => ({ uuid: g.uuid, index: g.index }));
  const scanners = hookPaths.map(
    (hookPath) =>
      new SplitDirectories({
        hookPath,
        assignments: allocations,
        gpus,
        gracePeriodMs,
        hostProc: context.values['host-proc'] as string,
        logger,
      }),
  );
  return { scan: async () => (await Promise.all(scanners.map((s) => s.scan()))).flat() };
}

function compatModes(values: OptionValues): CompatMode[] {
  const modes = listValue(values.compat);
  for (const mode of modes) {
    if (!isCompatMode(mode)) {
      throw new UsageError(`--compat (MONITOR_COMPAT): "${mode}" is not one of dcgm, hami`);
    }
  }
  return [...new Set(modes)] as CompatMode[];
}

/** A repeatable flag's value (comma-joined by the parser, or a comma list in its variable). */
function listValue(value: OptionValues[string]): string[] {
  if (typeof value !== 'string') return [];
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}
