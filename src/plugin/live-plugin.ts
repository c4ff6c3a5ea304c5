/**
 * The plugin component, composed once: its live config, the node runtime (NVML, inventory, metrics
 * registry), the PluginAgent on that runtime, config updates followed, and the status endpoint. The
 * CLI, the demo and the tests all start the plugin through here; the CLI opens the config first
 * (`LivePlugin.openConfig`) to report config errors and read failOnInitError before NVML is touched.
 */
import { readHostLabelFacts } from '../runtime/host-label-facts.js';
import { NodeRuntime, type NodeRuntimeOptions } from '../runtime/node-runtime.js';
import { PluginAgent, type PluginAgentOptions, type PluginTuning } from './agent.js';
import { LiveConfig, type LiveConfigOptions } from './live-config.js';
import { type LabelSink, NodeLabelPublisher } from './node-label-publisher.js';

export type { LiveConfig, LiveConfigOptions } from './live-config.js';

export interface LivePluginOptions extends NodeRuntimeOptions {
  /** kubelet's device plugin directory */
  pluginDir: string;
  /** `:9396`; null = no HTTP endpoint */
  metricsAddress: string | null;
  /** for DP_DISABLE_HEALTHCHECKS / DP_ENABLE_HEALTHCHECKS */
  env: NodeJS.ProcessEnv;
  tuning?: PluginTuning;
  /** API access and this node's name, for HAMi mode */
  kube?: PluginAgentOptions['kube'];
  /** where GPU feature labels go (`--node-labels nfd|api`); none when off */
  nodeLabels?: { sink: LabelSink; retry?: { initialMs?: number; maxMs?: number } };
}

export class LivePlugin {
  private constructor(
    readonly config: LiveConfig,
    readonly runtime: NodeRuntime,
    readonly agent: PluginAgent,
    readonly nodeLabels: NodeLabelPublisher | undefined,
  ) {}

  /** Reads the config (ConfigLoadError when a followed one cannot be read or is invalid). */
  static openConfig(options: LiveConfigOptions): Promise<LiveConfig> {
    return LiveConfig.open(options);
  }

  /** Opens the config, then starts the plugin with it; nothing is left open when either fails. */
  static async start(options: LivePluginOptions & { config: LiveConfigOptions }): Promise<LivePlugin> {
    const config = await LiveConfig.open(options.config);
    try {
      return await LivePlugin.startWith(config, options);
    } catch (err) {
      await config.close();
      throw err;
    }
  }

  /** Starts the runtime and the plugin on an open config; on failure the runtime is stopped. */
  static async startWith(config: LiveConfig, options: LivePluginOptions): Promise<LivePlugin> {
    const runtime = await NodeRuntime.open(options);
    const nodeLabels = options.nodeLabels && {
      ...options.nodeLabels,
      logger: options.logger,
      host: await readHostLabelFacts(options.hostPaths.sysfsRoot, runtime.inventory.gpus),
    };
    const publisher = nodeLabels && new NodeLabelPublisher(nodeLabels);
    const agent = await runtime.start((onRuntime) =>
      PluginAgent.start({
        runtime: onRuntime,
        config: config.current,
        pluginDir: options.pluginDir,
        env: options.env,
        tuning: options.tuning,
        kube: options.kube,
        nodeLabels: publisher,
      }),
    );
    config.follow(agent, options.logger);
    try {
      await runtime.serveStatus(options.metricsAddress, () => agent.notReadyReason());
    } catch (err) {
      await runtime.stop();
      await publisher?.stop();
      throw err;
    }
    return new LivePlugin(config, runtime, agent, publisher);
  }

  /**
   * Stops following the config, then the status endpoint, the plugin (sockets removed) and NVML, then
   * the GPU feature labels (the NFD feature file is removed).
   */
  async stop(): Promise<void> {
    await this.config.close();
    await this.runtime.stop();
    await this.nodeLabels?.stop();
  }
}
