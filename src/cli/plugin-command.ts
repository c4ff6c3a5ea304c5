/** `vgpu-agent plugin`: flags → config → the plugin on the node runtime → run until SIGTERM/SIGINT. */
import type { Logger } from 'pino';
import { configInFileForm } from '../config/file-form.js';
import { parseConfig } from '../config/load.js';
import type { EffectiveConfig } from '../config/schema.js';
import { CONFIG_LABEL } from '../config/select.js';
import { type ApplyOverrides, ConfigLoadError } from '../config/source.js';
import { MigStrategyError } from '../devices/mig-strategy.js';
import { ResourceConfigError } from '../devices/resources.js';
import type { HttpKubeClient } from '../kube/client.js';
import type { NodeLabelWatcher } from '../kube/node-label-watcher.js';
import { DEFAULT_DEVICE_PLUGIN_DIR } from '../kubelet-api/proto.js';
import { createLogger, type LogFormat, type LogLevel } from '../log.js';
import { NvmlLibraryError } from '../nvml/errors.js';
import { type LiveConfig, LivePlugin, type LivePluginOptions } from '../plugin/live-plugin.js';
import type { LabelSink } from '../plugin/node-label-publisher.js';
import { DEFAULT_NFD_FEATURES_DIR, NfdFeatureFile } from '../runtime/nfd-feature-file.js';
import { type Command, ExitCode } from './command.js';
import { hostPathsFrom, loggingOptions, nvmlOptions } from './common-options.js';
import { type OptionValues, UsageError } from './options.js';
import { overrideOptions, overridesFrom } from './override-options.js';
import { stopWithin, waitForSignal } from './signals.js';
import { agentVersion } from './version.js';

/** SIGTERM must end the process within 2 s even if something hangs. */
const STOP_DEADLINE_MS = 1800;

export const pluginCommand: Command = {
  name: 'plugin',
  options: [
    ...loggingOptions,
    ...nvmlOptions,
    {
      flag: 'node-name',
      env: 'NODE_NAME',
      type: 'string',
      description: 'This node (for logs and label lookup)',
    },
    {
      flag: 'config',
      env: 'CONFIG_FILE',
      type: 'string',
      description: 'Config file, or a mounted ConfigMap directory (one named config per key); followed live',
    },
    {
      flag: 'config-name',
      env: 'CONFIG_NAME',
      type: 'string',
      description:
        'Key of the ConfigMap directory to use (else the node label, else "default", else the only key)',
    },
    {
      flag: 'kube-api',
      env: 'KUBE_API',
      type: 'boolean',
      default: false,
      description: `Read and watch this Node's ${CONFIG_LABEL} label through the API (service account; needs NODE_NAME)`,
    },
    {
      flag: 'node-labels',
      env: 'NODE_LABELS_OUTPUT',
      type: 'string',
      default: 'off',
      choices: ['off', 'nfd', 'api'],
      description:
        "GPU feature labels (gpu-feature-discovery's, plus vgpu-agent's): nfd = an NFD local feature file, " +
        'api = patched onto this Node (service account; needs NODE_NAME), off = none',
    },
    {
      flag: 'nfd-features-dir',
      env: 'NFD_FEATURES_DIR',
      type: 'string',
      default: DEFAULT_NFD_FEATURES_DIR,
      description: "NFD's local feature file directory, for --node-labels nfd",
    },
    {
      flag: 'device-plugin-dir',
      env: 'DEVICE_PLUGIN_DIR',
      type: 'string',
      default: DEFAULT_DEVICE_PLUGIN_DIR,
      description: "kubelet's device plugin directory (kubelet.sock)",
    },
    {
      flag: 'metrics-address',
      env: 'METRICS_ADDRESS',
      type: 'string',
      default: ':9396',
      description: 'Listen address of /metrics, /healthz, /readyz ("" to disable)',
    },
    ...overrideOptions,
  ],
  async run(args, io) {
    const v = args.values;
    const logger = createLogger({ level: v['log-level'] as LogLevel, format: v['log-format'] as LogFormat });
    const nodeName = v['node-name'] as string | undefined;
    const { sink, labels } = await openApiSide(v, nodeName, logger, io.env);
    const config = await openConfig(v, io.env, labels?.value, logger);
    logger.info(
      { config: configInFileForm(config.current), node: nodeName, configName: config.name },
      'effective configuration',
    );
    const closeConfig = async () => {
      await labels?.watcher.stop();
      await config.close();
    };
    // The same client serves HAMi mode (sharing.hami), which a reload may turn on at any time.
    const kube = labels && nodeName ? { client: labels.client, nodeName } : undefined;
    const plugin = await startPlugin(config, v, io.env, logger, closeConfig, kube, sink);
    if (!plugin) return ExitCode.OK;
    labels?.follow((value) => config.source?.setNodeLabel(value));
    // NVIDIA restarts on SIGHUP; we only need to re-read the config.
    const onHangup = () => void config.source?.reload();
    process.on('SIGHUP', onHangup);

    const signal = await waitForSignal();
    logger.info({ signal }, 'stopping');
    await stopWithin(STOP_DEADLINE_MS, logger, async () => {
      process.off('SIGHUP', onHangup);
      await labels?.watcher.stop();
      await plugin.stop();
    });
    logger.info('stopped: sockets removed');
    return ExitCode.OK;
  },
};

/**
 * The plugin on the opened config; undefined once it has idled until a signal (NVML unavailable and
 * failOnInitError=false). A config that cannot apply to this node is a usage error (exit 2).
 */
async function startPlugin(
  config: LiveConfig,
  v: OptionValues,
  env: NodeJS.ProcessEnv,
  logger: Logger,
  closeConfig: () => Promise<void>,
  kube: LivePluginOptions['kube'],
  labelSink: LabelSink | undefined,
): Promise<LivePlugin | undefined> {
  try {
    return await LivePlugin.startWith(config, {
      logger,
      nvmlLibrary: v['nvml-library'] as string,
      hostPaths: hostPathsFrom(v),
      agentVersion: agentVersion(),
      pluginDir: v['device-plugin-dir'] as string,
      metricsAddress: (v['metrics-address'] as string) || null,
      env,
      kube,
      ...(labelSink ? { nodeLabels: { sink: labelSink } } : {}),
    });
  } catch (err) {
    if (err instanceof NvmlLibraryError && !config.current.flags.failOnInitError) {
      // NVIDIA's failOnInitError=false: a node without GPUs keeps the pod running, idle. Nothing a
      // config or label change brings can load NVML: their watches close before idling.
      await closeConfig();
      const { idleUntilSignal } = await import('./idle.js');
      await idleUntilSignal({
        logger,
        err,
        metricsAddress: (v['metrics-address'] as string) || null,
        agentVersion: agentVersion(),
      });
      return undefined;
    }
    // The config watch would keep the process alive: exit 2 needs it closed.
    await closeConfig();
    if (err instanceof MigStrategyError || err instanceof ResourceConfigError)
      throw new UsageError(`the config cannot apply to this node: ${err.message}`);
    throw err;
  }
}

/** The followed config (--config), or NVIDIA's defaults plus the flags; bad config is exit 2. */
async function openConfig(
  v: OptionValues,
  env: NodeJS.ProcessEnv,
  nodeLabel: string | undefined,
  logger: Logger,
): Promise<LiveConfig> {
  const overrides = overridesFrom(v, env);
  const path = v.config as string | undefined;
  if (!path) return LivePlugin.openConfig({ fixed: defaultConfig(overrides) });
  try {
    return await LivePlugin.openConfig({
      follow: { path, configName: v['config-name'] as string | undefined, nodeLabel, overrides, logger },
    });
  } catch (err) {
    if (err instanceof ConfigLoadError) throw new UsageError(`invalid config:\n${err.issues.join('\n')}`);
    throw err;
  }
}

function defaultConfig(applyFlags: ApplyOverrides): EffectiveConfig {
  const parsed = parseConfig('version: v1', 'defaults');
  if (!parsed.ok) throw new Error('the built-in default config is invalid');
  const overridden = applyFlags(parsed.value.config);
  if (!overridden.ok) throw new UsageError(overridden.error.join('\n'));
  return overridden.value;
}

/**
 * The GPU feature label sink and the config label watch, as the flags ask, on one API client: the
 * process opens it once (one token reader, one CA) and only when --kube-api or --node-labels api wants it.
 */
export async function openApiSide(
  v: OptionValues,
  nodeName: string | undefined,
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
) {
  const client = await apiClient(v, nodeName, env);
  const sink = await labelSink(v, nodeName, client);
  const labels = client && v['kube-api'] ? await watchNodeLabel(nodeName!, logger, client) : undefined;
  return { sink, labels };
}

/** The flags asking for the API, in the order their errors are reported. */
function apiUsers(v: OptionValues): string[] {
  return [
    ...(v['node-labels'] === 'api' ? ['--node-labels api'] : []),
    ...(v['kube-api'] ? ['--kube-api'] : []),
  ];
}

/** The in-cluster client, when a flag asks for the API (each needs the node name); else undefined. */
async function apiClient(
  v: OptionValues,
  nodeName: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<HttpKubeClient | undefined> {
  const users = apiUsers(v);
  if (users.length === 0) return undefined;
  if (!nodeName) throw new UsageError(`${users[0]} needs --node-name (NODE_NAME, from the downward API)`);
  // Loaded only then: a plugin without API access has no use for the client.
  const { inClusterClient, KubeConfigError } = await import('../kube/in-cluster.js');
  try {
    return await inClusterClient(env);
  } catch (err) {
    if (err instanceof KubeConfigError) throw new UsageError(`${users.join(', ')}: ${err.message}`);
    throw err;
  }
}

/** Where GPU feature labels go (the API client given for api); undefined when off. */
async function labelSink(
  v: OptionValues,
  nodeName: string | undefined,
  client: HttpKubeClient | undefined,
): Promise<LabelSink | undefined> {
  const mode = v['node-labels'] as 'off' | 'nfd' | 'api';
  if (mode === 'nfd') return new NfdFeatureFile(v['nfd-features-dir'] as string);
  if (mode === 'off' || !client || !nodeName) return undefined;
  const { NodeLabelPatcher } = await import('../kube/node-label-patcher.js');
  return new NodeLabelPatcher(client, nodeName);
}

/** Reads the node's config label once, then reports changes to whoever follows. */
async function watchNodeLabel(nodeName: string, logger: Logger, client: HttpKubeClient) {
  const { NodeLabelWatcher: Watcher } = await import('../kube/node-label-watcher.js');
  const { KubeConfigError } = await import('../kube/in-cluster.js');
  let follower: ((value: string | undefined) => void) | undefined;
  let watcher: NodeLabelWatcher;
  try {
    watcher = await Watcher.start({
      nodeName,
      labelKey: CONFIG_LABEL,
      logger,
      client,
      onChange: (value) => follower?.(value),
    });
  } catch (err) {
    if (err instanceof KubeConfigError) throw new UsageError(`--kube-api: ${err.message}`);
    throw err;
  }
  return {
    watcher,
    client,
    value: watcher.value,
    /** Starts reporting changes, beginning with the current value (it may have changed meanwhile). */
    follow(callback: (value: string | undefined) => void) {
      follower = callback;
      callback(watcher.value);
    },
  };
}
