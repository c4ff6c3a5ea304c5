/** `vgpu-agent plugin`: flags → config → PluginAgent → run until SIGTERM/SIGINT. */
import type { Logger } from 'pino';
import { configInFileForm } from '../config/file-form.js';
import { type EffectiveConfig, parseConfig } from '../config/index.js';
import { CONFIG_LABEL } from '../config/select.js';
import { type ApplyOverrides, ConfigLoadError, ConfigSource } from '../config/source.js';
import { MigStrategyError } from '../devices/mig-strategy.js';
import { ResourceConfigError } from '../devices/resources.js';
import { KubeConfigError } from '../kube/in-cluster.js';
import { NodeLabelWatcher } from '../kube/node-label-watcher.js';
import { DEFAULT_DEVICE_PLUGIN_DIR } from '../kubelet-api/proto.js';
import { createLogger, type LogFormat, type LogLevel } from '../log.js';
import { NvmlLibraryError } from '../nvml/errors.js';
import { PluginAgent } from '../plugin/agent.js';
import { followConfigUpdates, nodeValidator } from '../plugin/live-config.js';
import { type Command, ExitCode } from './command.js';
import { loggingOptions, nvmlOptions } from './common-options.js';
import { hostPathsFrom } from './host-paths.js';
import { UsageError } from './options.js';
import { overrideOptions, overridesFrom } from './override-options.js';
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
    const applyFlags = overridesFrom(v, io.env);
    const nodeName = v['node-name'] as string | undefined;
    const labels = v['kube-api'] ? await watchNodeLabel(nodeName, logger) : undefined;
    const forThisNode = nodeValidator();
    const source = await openConfig(v.config as string | undefined, {
      configName: v['config-name'] as string | undefined,
      nodeLabel: labels?.value,
      overrides: applyFlags,
      validate: forThisNode.validate,
      logger,
    });
    const config = source ? source.current.config : defaultConfig(applyFlags);
    logger.info(
      { config: configInFileForm(config), node: nodeName, configName: source?.current.name ?? null },
      'effective configuration',
    );

    let agent: PluginAgent;
    try {
      agent = await PluginAgent.start({
        config,
        logger,
        nvmlLibrary: v['nvml-library'] as string,
        hostPaths: hostPathsFrom(v),
        pluginDir: v['device-plugin-dir'] as string,
        metricsAddress: (v['metrics-address'] as string) || null,
        env: io.env,
        agentVersion: agentVersion(),
      });
    } catch (err) {
      if (err instanceof MigStrategyError || err instanceof ResourceConfigError) {
        // The config watch would keep the process alive: exit 2 needs it closed.
        await labels?.watcher.stop();
        await source?.close();
        throw new UsageError(`the config cannot apply to this node: ${err.message}`);
      }
      if (err instanceof NvmlLibraryError && !config.flags.failOnInitError) {
        // NVIDIA's failOnInitError=false: a node without GPUs keeps the pod running, idle.
        logger.error({ err: err.message }, 'NVML unavailable and failOnInitError=false: idling');
        await waitForSignal();
        return ExitCode.OK;
      }
      await labels?.watcher.stop();
      await source?.close();
      throw err;
    }
    forThisNode.bind(agent);
    if (source) followConfigUpdates(source, agent, logger);
    labels?.follow((value) => source?.setNodeLabel(value));
    // NVIDIA restarts on SIGHUP; we only need to re-read the config.
    const onHangup = () => void source?.reload();
    process.on('SIGHUP', onHangup);

    const signal = await waitForSignal();
    logger.info({ signal }, 'stopping');
    const deadline = setTimeout(() => {
      logger.error('stop took too long: exiting');
      process.exit(ExitCode.OK);
    }, STOP_DEADLINE_MS);
    deadline.unref();
    process.off('SIGHUP', onHangup);
    await labels?.watcher.stop();
    await source?.close();
    await agent.stop();
    clearTimeout(deadline);
    logger.info('stopped: sockets removed');
    return ExitCode.OK;
  },
};

interface OpenConfigOptions {
  configName: string | undefined;
  nodeLabel: string | undefined;
  overrides: ApplyOverrides;
  validate: (config: EffectiveConfig) => string[];
  logger: Logger;
}

/** The live config source, or undefined when no --config is given (NVIDIA's defaults, plus flags). */
async function openConfig(
  path: string | undefined,
  options: OpenConfigOptions,
): Promise<ConfigSource | undefined> {
  if (!path) return undefined;
  try {
    return await ConfigSource.open({ path, ...options });
  } catch (err) {
    if (err instanceof ConfigLoadError) throw new UsageError(`invalid config:\n${err.issues.join('\n')}`);
    throw err;
  }
}

function defaultConfig(applyFlags: ApplyOverrides): EffectiveConfig {
  const parsed = parseConfig('version: v1', 'defaults');
  if (!parsed.ok) throw new Error('the built-in default config is invalid');
  const overridden = applyFlags(parsed.config);
  if (!overridden.ok) throw new UsageError(overridden.errors.join('\n'));
  return overridden.config;
}

/** Reads the node's config label once, then reports changes to whoever follows. */
async function watchNodeLabel(nodeName: string | undefined, logger: Logger) {
  if (!nodeName) throw new UsageError('--kube-api needs --node-name (NODE_NAME, from the downward API)');
  let follower: ((value: string | undefined) => void) | undefined;
  let watcher: NodeLabelWatcher;
  try {
    watcher = await NodeLabelWatcher.start({
      nodeName,
      labelKey: CONFIG_LABEL,
      logger,
      onChange: (value) => follower?.(value),
    });
  } catch (err) {
    if (err instanceof KubeConfigError) throw new UsageError(`--kube-api: ${err.message}`);
    throw err;
  }
  return {
    watcher,
    value: watcher.value,
    /** Starts reporting changes, beginning with the current value (it may have changed meanwhile). */
    follow(callback: (value: string | undefined) => void) {
      follower = callback;
      callback(watcher.value);
    },
  };
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    // Signal handlers do not keep Node alive; when idling (failOnInitError=false) nothing else does.
    const keepAlive = setInterval(() => {}, 1 << 30);
    const done = (signal: NodeJS.Signals) => {
      clearInterval(keepAlive);
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve(signal);
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
}
