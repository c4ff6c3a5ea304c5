/**
 * A simulated GPU node with the plugin running on it: mock NVML (through the real koffi binding),
 * a kubelet simulator and the plugin started as the CLI starts it (LivePlugin), all over real Unix
 * sockets in a temp directory.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { EffectiveConfig } from '../../src/config/schema.js';
import type { ConfigSource } from '../../src/config/source.js';
import { createLogger, type Logger } from '../../src/log.js';
import { mockNvmlLibraryPath } from '../../src/paths.js';
import { type LiveConfigOptions, LivePlugin, type LivePluginOptions } from '../../src/plugin/live-plugin.js';
import { ConfigMapVolume } from '../../src/sim/configmap-volume.js';
import { KubeletSimulator } from '../../src/sim/kubelet.js';
import { MockNode, type MockNvmlState } from '../../src/sim/mock-node.js';

export interface PluginNode {
  node: MockNode;
  kubelet: KubeletSimulator | undefined;
  agent: LivePlugin['agent'];
  pluginDir: string;
  /** every log line the agent wrote, parsed */
  logs: Record<string, unknown>[];
  configMap: ConfigMapVolume | undefined;
  source: ConfigSource | undefined;
  /** where the kubelet simulator serves PodResources (option `podResources`) */
  podResourcesSocket: string | undefined;
  startKubelet(): Promise<KubeletSimulator>;
  stop(): Promise<void>;
}

export interface PluginNodeOptions {
  /** YAML/JSON config text; default: NVIDIA defaults */
  config?: string;
  /** serve from a ConfigMap volume with these keys instead, following its updates live */
  configMap?: Record<string, string>;
  configName?: string;
  env?: NodeJS.ProcessEnv;
  /** start the agent before kubelet exists */
  kubeletAbsent?: boolean;
  /** create /dev/nvidiactl etc. under a temp dev root and point nvidiaDevRoot at it */
  fakeDevRoot?: boolean;
  metrics?: boolean;
  /** the kubelet simulator also serves PodResources, from its admissions */
  podResources?: boolean;
  /** timing knobs over the fast defaults below */
  tuning?: LivePluginOptions['tuning'];
  /** API access for HAMi mode */
  kube?: LivePluginOptions['kube'];
  /** publish GPU feature labels to this sink (retries fast) */
  nodeLabels?: LivePluginOptions['nodeLabels'];
}

export async function startPluginNode(
  state: string | MockNvmlState,
  options: PluginNodeOptions = {},
): Promise<PluginNode> {
  const node = await MockNode.create(state);
  node.exportEnv();
  const pluginDir = path.join(node.dir, 'device-plugins');
  await mkdir(pluginDir, { recursive: true });
  const { logger, logs } = collectingLogger();
  const configMap = options.configMap
    ? await ConfigMapVolume.create(options.configMap, path.join(node.dir, 'config'))
    : undefined;
  const config = await configOf(options, node.dir, configMap, logger);
  const podResourcesSocket = options.podResources
    ? path.join(node.dir, 'pod-resources', 'kubelet.sock')
    : undefined;
  if (podResourcesSocket) await mkdir(path.dirname(podResourcesSocket), { recursive: true });
  const startKubelet = () => KubeletSimulator.start({ dir: pluginDir, podResourcesSocket });
  let kubelet = options.kubeletAbsent ? undefined : await startKubelet();
  const plugin = await LivePlugin.start({
    config,
    logger,
    nvmlLibrary: mockNvmlLibraryPath(),
    hostPaths: node.hostPaths,
    agentVersion: 'test',
    pluginDir,
    metricsAddress: options.metrics ? '127.0.0.1:0' : null,
    env: options.env ?? {},
    tuning: { ...FAST_TUNING, ...options.tuning },
    kube: options.kube,
    ...(options.nodeLabels
      ? { nodeLabels: { retry: { initialMs: 50, maxMs: 200 }, ...options.nodeLabels } }
      : {}),
  });
  return {
    node,
    configMap,
    source: plugin.config.source,
    get kubelet() {
      return kubelet;
    },
    agent: plugin.agent,
    pluginDir,
    logs,
    podResourcesSocket,
    async startKubelet() {
      kubelet = await startKubelet();
      return kubelet;
    },
    async stop() {
      await plugin.stop();
      await kubelet?.stop();
      await node.remove();
    },
  };
}

const FAST_TUNING: LivePluginOptions['tuning'] = {
  retryInitialMs: 50,
  retryMaxMs: 200,
  watchPollIntervalMs: 100,
  healthProbeIntervalMs: 100,
  eventWaitTimeoutMs: 200,
};

/** A debug logger whose every line is kept, parsed. */
function collectingLogger(): { logger: Logger; logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination: sink }), logs };
}

/** The ConfigMap volume followed live, or the fixed config text (NVIDIA defaults when none). */
async function configOf(
  options: PluginNodeOptions,
  nodeDir: string,
  configMap: ConfigMapVolume | undefined,
  logger: Logger,
): Promise<LiveConfigOptions> {
  if (configMap) {
    return { follow: { path: configMap.dir, configName: options.configName, logger, debounceMs: 50 } };
  }
  const parsed = parseConfig(options.config ?? 'version: v1', 'test-config.yaml');
  if (!parsed.ok) throw new Error(parsed.error.map((e) => `${e.path}: ${e.message}`).join('\n'));
  const { config } = parsed.value;
  if (options.fakeDevRoot) await fakeDevRoot(nodeDir, config);
  return { fixed: config };
}

/** /dev/nvidiactl etc. under a temp driver root, which the config's nvidiaDevRoot then names. */
async function fakeDevRoot(nodeDir: string, config: EffectiveConfig): Promise<void> {
  const devRoot = path.join(nodeDir, 'driver-root');
  await mkdir(path.join(devRoot, 'dev'), { recursive: true });
  for (const file of ['nvidiactl', 'nvidia-uvm']) await writeFile(path.join(devRoot, 'dev', file), '');
  config.flags.nvidiaDevRoot = devRoot;
}

export type RunningPluginNode = PluginNode & { kubelet: KubeletSimulator };

/**
 * For a test file: `const start = usePluginNodes()`; each test starts the node(s) it needs and they
 * are stopped after it, even when it fails.
 */
export function usePluginNodes(): (
  ...args: Parameters<typeof startPluginNode>
) => Promise<RunningPluginNode> {
  const started: PluginNode[] = [];
  afterEach(async () => {
    for (const node of started.splice(0).reverse()) await node.stop();
  });
  return async (...args) => {
    const node = await startPluginNode(...args);
    started.push(node);
    return node as RunningPluginNode;
  };
}

/** The first line of the agent's /metrics text matching `line` (e.g. /^vgpu_agent_registered\{/). */
export async function metricLine(node: PluginNode, line: RegExp): Promise<string | undefined> {
  return (await node.agent.metrics.registry.metrics()).split('\n').find((l) => line.test(l));
}

/** The value of that line, or undefined. */
export async function metricValue(node: PluginNode, line: RegExp): Promise<number | undefined> {
  const found = await metricLine(node, line);
  return found === undefined ? undefined : Number(found.split(' ').pop());
}

export async function tempDir(prefix: string): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
