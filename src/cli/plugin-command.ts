/** `vgpu-agent plugin`: flags → config → PluginAgent → run until SIGTERM/SIGINT. */
import { type EffectiveConfig, formatIssue, loadConfigFile, parseConfig } from '../config/index.js';
import { MigStrategyError } from '../devices/mig-strategy.js';
import { ResourceConfigError } from '../devices/resources.js';
import { createLogger, type LogFormat, type LogLevel } from '../log.js';
import { NvmlLibraryError } from '../nvml/errors.js';
import { PluginAgent } from '../plugin/agent.js';
import { DEFAULT_DEVICE_PLUGIN_DIR } from '../plugin/proto.js';
import { type Command, ExitCode } from './command.js';
import { loggingOptions, nvmlOptions } from './common-options.js';
import { hostPathsFrom } from './host-paths.js';
import { UsageError } from './options.js';
import { overrideOptions, overridesFrom } from './override-options.js';
import { agentVersion } from './version.js';

/** SIGTERM must end the process within 2 s even if something hangs. */
const STOP_DEADLINE_MS = 1800;

async function loadConfig(path: string | undefined, source = 'defaults'): Promise<EffectiveConfig> {
  const result = path ? await loadConfigFile(path) : parseConfig('version: v1', source);
  if (!result.ok) throw new UsageError(`invalid config:\n${result.errors.map(formatIssue).join('\n')}`);
  return result.config;
}

export const pluginCommand: Command = {
  name: 'plugin',
  summary: 'Run the kubelet device plugin',
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
      description: 'Config file, or a mounted ConfigMap directory',
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
    const fromFile = await loadConfig(v.config as string | undefined);
    const overridden = applyFlags(fromFile);
    if (!overridden.ok) throw new UsageError(overridden.errors.join('\n'));
    const config = overridden.config;
    logger.info({ config, node: v['node-name'] }, 'effective configuration');

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
        throw new UsageError(`the config cannot apply to this node: ${err.message}`);
      }
      if (err instanceof NvmlLibraryError && !config.flags.failOnInitError) {
        // NVIDIA's failOnInitError=false: a node without GPUs keeps the pod running, idle.
        logger.error({ err: err.message }, 'NVML unavailable and failOnInitError=false: idling');
        await waitForSignal();
        return ExitCode.OK;
      }
      throw err;
    }

    const signal = await waitForSignal();
    logger.info({ signal }, 'stopping');
    const deadline = setTimeout(() => {
      logger.error('stop took too long: exiting');
      process.exit(ExitCode.OK);
    }, STOP_DEADLINE_MS);
    deadline.unref();
    await agent.stop();
    clearTimeout(deadline);
    logger.info('stopped: sockets removed');
    return ExitCode.OK;
  },
};

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const done = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      resolve(signal);
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
  });
}
