/**
 * `vgpu-agent plugin` as a component on the node runtime (NVML, inventory, metrics registry): the
 * config and the inventory give the resources, one device plugin server each, with health monitoring.
 * live-plugin.ts starts it, with its live config, for the CLI, the demo and the tests.
 */
import type { Logger } from 'pino';
import { healthChecksFromEnv } from '../config/health-checks.js';
import type { EffectiveConfig } from '../config/schema.js';
import { HealthMonitor } from '../devices/health-monitor.js';
import type { Inventory } from '../devices/inventory-types.js';
import type { ResourceSpec } from '../devices/resource-types.js';
import { buildResources, ResourceConfigError, sharingConfigOf } from '../devices/resources.js';
import { HamiAllocator } from '../hami/allocator.js';
import { HamiRegistrar, registeredGpus } from '../hami/registrar.js';
import { topologyScoresFor } from '../hami/topology-score.js';
import type { HamiKubeClient } from '../kube/client.js';
import { detectHamiCore } from '../runtime/hami-core-host.js';
import type { Component, NodeRuntime } from '../runtime/node-runtime.js';
import { allocateSettingsFrom } from './allocate-settings.js';
import type { ServerTuning } from './device-plugin-server.js';
import { PluginManager } from './manager.js';
import { PluginMetrics } from './metrics.js';
import { lostDevices, type NodeLabelPublisher } from './node-label-publisher.js';
import { TopologyScores } from './preferred-allocation.js';
import type { ResourceContext } from './resource.js';
import { SplitAllocator } from './split-allocation.js';

/** Timing knobs; the defaults suit production, tests shorten them. */
export interface PluginTuning extends ServerTuning {
  watchPollIntervalMs?: number;
  healthProbeIntervalMs?: number;
  eventWaitTimeoutMs?: number;
}

export interface PluginAgentOptions {
  runtime: NodeRuntime;
  config: EffectiveConfig;
  /** kubelet's device plugin directory */
  pluginDir: string;
  /** for DP_DISABLE_HEALTHCHECKS / DP_ENABLE_HEALTHCHECKS */
  env: NodeJS.ProcessEnv;
  tuning?: PluginTuning;
  /** the API and this node's name: HAMi mode (`sharing.hami`) needs them */
  kube?: { client: HamiKubeClient; nodeName: string } | undefined;
  /** GPU feature labels to keep current (`--node-labels`); none when off */
  nodeLabels?: NodeLabelPublisher;
}

/** What a config gives on this node: the resources and what their servers need to answer kubelet. */
interface Plan {
  resources: ResourceSpec[];
  context: ResourceContext;
}

export class PluginAgent implements Component {
  readonly metrics: PluginMetrics;
  readonly health: HealthMonitor;
  readonly manager: PluginManager;
  private readonly logger: Logger;
  private config: EffectiveConfig;
  /** HAMi mode's API side, made when the agent has API access */
  private readonly hami: { allocator: HamiAllocator; registrar: HamiRegistrar } | undefined;
  /** the register annotation is on the node (HAMi mode was on) */
  private hamiRegistered = false;
  /** GPU pair scores: the inventory's topology does not change while the agent runs */
  private readonly topology: TopologyScores;

  private constructor(private readonly options: PluginAgentOptions) {
    const { runtime, tuning } = options;
    this.logger = runtime.logger;
    this.config = options.config;
    this.topology = TopologyScores.of(runtime.inventory);
    const metrics = new PluginMetrics(runtime.metrics.registry);
    this.metrics = metrics;
    const { warnings, ...checks } = healthChecksFromEnv(options.env, options.config.health);
    for (const warning of warnings) this.logger.warn(warning);
    this.health = new HealthMonitor({
      nvml: runtime.nvml,
      inventory: runtime.inventory,
      settings: { ...checks, recoverAfterSeconds: options.config.health.recoverAfterSeconds },
      logger: this.logger,
      probeIntervalMs: tuning?.healthProbeIntervalMs,
      eventWaitTimeoutMs: tuning?.eventWaitTimeoutMs,
      onXid: (xid, acted) =>
        metrics.healthEvents.inc({ xid: String(xid), action: acted ? 'unhealthy' : 'ignored' }),
      onChange: (state) => {
        metrics.unhealthyDevices.set(state.records().length);
        this.manager.healthChanged();
        this.registerForHami();
        this.refreshLabels();
      },
    });
    this.manager = new PluginManager({
      pluginDir: options.pluginDir,
      logger: this.logger,
      metrics,
      ...tuning,
    });
    const { kube } = options;
    this.hami = kube && {
      allocator: new HamiAllocator({ ...kube, logger: this.logger }),
      registrar: new HamiRegistrar({ ...kube, logger: this.logger }),
    };
  }

  /** Advertises what the config gives on this node; throws when the config cannot apply here. */
  static async start(options: PluginAgentOptions): Promise<PluginAgent> {
    const agent = new PluginAgent(options);
    const plan = await agent.plan(options.config);
    await agent.manager.start(plan.resources, plan.context);
    agent.health.start();
    agent.registerForHami();
    agent.refreshLabels();
    return agent;
  }

  get inventory(): Inventory {
    return this.options.runtime.inventory;
  }

  get currentConfig(): EffectiveConfig {
    return this.config;
  }

  /** null when every resource is registered with kubelet and kubelet has its devices. */
  notReadyReason(): string | null {
    const reasons = this.manager.notReadyReasons();
    return reasons.length === 0 ? null : reasons.join('; ');
  }

  /** Why `config` cannot apply to this node (empty when it can). */
  problemsWith(config: EffectiveConfig): string[] {
    try {
      this.resourcesFor(config);
      return [];
    } catch (err) {
      return [`does not apply to this node: ${(err as Error).message}`];
    }
  }

  /** Resources the config gives on this node; throws when it cannot apply here. */
  resourcesFor(config: EffectiveConfig): { resources: ResourceSpec[]; warnings: string[] } {
    if (config.sharing.hami && !this.hami) {
      throw new ResourceConfigError(
        'sharing.hami needs the Kubernetes API: run the plugin with --kube-api and NODE_NAME',
      );
    }
    return buildResources(sharingConfigOf(config), this.inventory);
  }

  /** HAMi mode: the node annotations follow resources, health and config (patched on change). */
  private registerForHami(): void {
    if (!this.hami) return;
    const { hami } = this.config.sharing;
    if (!hami) {
      if (this.hamiRegistered) this.hami.registrar.withdraw();
      this.hamiRegistered = false;
      return;
    }
    const resource = this.manager.resource(hami.resourceCountName);
    const devices = resource?.devices ?? [];
    const gpus = registeredGpus(devices, this.inventory, this.health.state, hami);
    this.hami.registrar.update(gpus, topologyScoresFor(hami, gpus, this.topology));
    this.hamiRegistered = true;
  }

  /** Resolves once the register annotation carries the latest value; for tests. */
  async hamiRegistrationSettled(): Promise<void> {
    await this.hami?.registrar.settled();
  }

  /** Applies a new (validated) config: only resources whose devices changed see an update. */
  async applyConfig(config: EffectiveConfig): Promise<void> {
    const plan = await this.plan(config);
    await this.manager.apply(plan.resources, plan.context);
    const { warnings: _, ...checks } = healthChecksFromEnv(this.options.env, config.health);
    this.health.updateSettings({ ...checks, recoverAfterSeconds: config.health.recoverAfterSeconds });
    this.config = config;
    this.registerForHami();
    this.refreshLabels();
  }

  /** Stops health checks and every server (sockets removed); NVML is the runtime's to shut down. */
  async stop(): Promise<void> {
    this.hami?.registrar.stop();
    await this.health.stop();
    await this.manager.stop();
  }

  /** GPU feature labels follow the config, and GPUs lost or back. */
  private refreshLabels(): void {
    this.options.nodeLabels?.update({
      inventory: this.inventory,
      config: this.config,
      lostGpus: lostDevices(this.health.state),
    });
  }

  private async plan(config: EffectiveConfig): Promise<Plan> {
    const built = this.resourcesFor(config);
    for (const warning of built.warnings)
      this.logger.warn({ config: warning }, 'config does not apply fully to this node');
    const context: ResourceContext = {
      health: this.health.state,
      allocate: await allocateSettingsFrom(config),
      sharedAllocationPolicy: config.flags.plugin.sharedDevicesAllocationPolicy,
      topology: this.topology,
    };
    const split = built.resources.filter((r) => r.sharing === 'split');
    this.metrics.splitLimitsEnforced.reset();
    if (split.length > 0) {
      context.split = new SplitAllocator(await detectHamiCore(config.sharing.split.hookPath), this.logger);
      for (const r of split)
        this.metrics.splitLimitsEnforced.set({ resource: r.name }, context.split.enforced ? 1 : 0);
    }
    if (config.sharing.hami && this.hami) {
      const { hami } = config.sharing;
      const hamiCore = new SplitAllocator(await detectHamiCore(hami.hookPath), this.logger);
      context.hami = { allocator: this.hami.allocator, settings: hami, hamiCore };
    }
    this.logger.info(
      {
        resources: Object.fromEntries(
          built.resources.map((r) => [r.name, `${r.devices.length} (${r.sharing})`]),
        ),
      },
      'resources to advertise',
    );
    return { resources: built.resources, context };
  }
}
