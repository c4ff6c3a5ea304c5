/**
 * `vgpu-agent plugin` as a component: NVML → inventory → (config, inventory) → resources → one
 * device plugin server per resource, with health monitoring and the HTTP status endpoint. The CLI,
 * the demo and the integration tests all start it through here.
 */
import type { Logger } from 'pino';
import { type HealthCheckSettings, healthChecksFromEnv } from '../config/health-checks.js';
import type { EffectiveConfig } from '../config/schema.js';
import { HealthMonitor } from '../devices/health-monitor.js';
import { buildInventory } from '../devices/inventory.js';
import type { Inventory } from '../devices/inventory-types.js';
import type { ResourceSpec } from '../devices/resource-types.js';
import { buildResources, type SharingConfig } from '../devices/resources.js';
import type { HostPaths } from '../devices/sysfs.js';
import { StatusServer } from '../http/status-server.js';
import { Nvml } from '../nvml/nvml.js';
import { allocateSettingsFrom } from './allocate-settings.js';
import { routeGrpcLogs } from './grpc-log.js';
import { detectHamiCore } from './hami-core-host.js';
import { PluginManager } from './manager.js';
import { PluginMetrics } from './metrics.js';
import { TopologyScores } from './preferred-allocation.js';
import type { ResourceContext } from './resource.js';
import { SplitAllocator } from './split-allocation.js';

export interface PluginAgentOptions {
  config: EffectiveConfig;
  logger: Logger;
  nvmlLibrary: string;
  hostPaths: HostPaths;
  /** kubelet's device plugin directory */
  pluginDir: string;
  /** `:9396`; null = no HTTP endpoint (tests that do not need it) */
  metricsAddress: string | null;
  /** for DP_DISABLE_HEALTHCHECKS / DP_ENABLE_HEALTHCHECKS */
  env: NodeJS.ProcessEnv;
  agentVersion: string;
  /** timing knobs; defaults suit production, tests shorten them */
  tuning?: {
    registerTimeoutMs?: number;
    retryInitialMs?: number;
    retryMaxMs?: number;
    watchPollIntervalMs?: number;
    connectionIdleMs?: number;
    healthProbeIntervalMs?: number;
    eventWaitTimeoutMs?: number;
  };
}

export function sharingConfigOf(config: EffectiveConfig): SharingConfig {
  return {
    migStrategy: config.flags.migStrategy,
    timeSlicing: config.sharing.timeSlicing,
    split: config.sharing.split,
  };
}

export class PluginAgent {
  private statusServer: StatusServer | undefined;

  private constructor(
    private readonly options: PluginAgentOptions,
    readonly metrics: PluginMetrics,
    private readonly nvml: Nvml,
    readonly inventory: Inventory,
    readonly health: HealthMonitor,
    readonly manager: PluginManager,
    private config: EffectiveConfig,
  ) {}

  static async start(options: PluginAgentOptions): Promise<PluginAgent> {
    const { logger } = options;
    routeGrpcLogs(logger);
    const metrics = new PluginMetrics();
    const nvml = await Nvml.open({
      libraryPath: options.nvmlLibrary,
      onError: (e) => metrics.countNvmlError(e),
    });
    try {
      const inventory = await buildInventory(nvml, options.hostPaths);
      metrics.buildInfo.set({ version: options.agentVersion, driver_version: inventory.driverVersion }, 1);
      logInventory(logger, nvml, inventory);

      const built = buildResources(sharingConfigOf(options.config), inventory);
      for (const warning of built.warnings)
        logger.warn({ config: warning }, 'config does not apply fully to this node');

      const healthChecks = healthChecksFromEnv(options.env, options.config.health);
      for (const warning of healthChecks.warnings) logger.warn(warning);
      let manager: PluginManager | undefined;
      const health = new HealthMonitor({
        nvml,
        inventory,
        settings: healthSettings(healthChecks, options.config),
        logger,
        probeIntervalMs: options.tuning?.healthProbeIntervalMs,
        eventWaitTimeoutMs: options.tuning?.eventWaitTimeoutMs,
        onXid: (xid, acted) =>
          metrics.healthEvents.inc({ xid: String(xid), action: acted ? 'unhealthy' : 'ignored' }),
        onChange: (state) => {
          metrics.unhealthyDevices.set(state.records().length);
          manager?.healthChanged();
        },
      });
      manager = new PluginManager({
        pluginDir: options.pluginDir,
        logger,
        metrics,
        context: await resourceContext(options.config, inventory, health, built.resources, metrics, logger),
        registerTimeoutMs: options.tuning?.registerTimeoutMs,
        retryInitialMs: options.tuning?.retryInitialMs,
        retryMaxMs: options.tuning?.retryMaxMs,
        watchPollIntervalMs: options.tuning?.watchPollIntervalMs,
        connectionIdleMs: options.tuning?.connectionIdleMs,
      });
      const agent = new PluginAgent(options, metrics, nvml, inventory, health, manager, options.config);
      logResources(logger, built.resources);
      await manager.start(built.resources);
      health.start();
      if (options.metricsAddress !== null) {
        agent.statusServer = await StatusServer.start({
          address: options.metricsAddress,
          registry: metrics.registry,
          notReadyReason: () => agent.notReadyReason(),
        });
        logger.info(
          { address: options.metricsAddress, port: agent.statusServer.port },
          'serving /metrics, /healthz, /readyz',
        );
      }
      return agent;
    } catch (err) {
      nvml.shutdown();
      throw err;
    }
  }

  get currentConfig(): EffectiveConfig {
    return this.config;
  }

  get statusPort(): number | undefined {
    return this.statusServer?.port;
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
    return buildResources(sharingConfigOf(config), this.inventory);
  }

  /** Applies a new (validated) config: only resources whose devices changed see an update. */
  async applyConfig(config: EffectiveConfig): Promise<void> {
    const built = this.resourcesFor(config);
    for (const warning of built.warnings)
      this.options.logger.warn({ config: warning }, 'config does not apply fully to this node');
    const context = await resourceContext(
      config,
      this.inventory,
      this.health,
      built.resources,
      this.metrics,
      this.options.logger,
    );
    await this.manager.apply(built.resources, context);
    this.health.updateSettings(healthSettings(healthChecksFromEnv(this.options.env, config.health), config));
    this.config = config;
    logResources(this.options.logger, built.resources);
  }

  async stop(): Promise<void> {
    await this.statusServer?.stop();
    await this.health.stop();
    await this.manager.stop();
    this.nvml.shutdown();
  }
}

async function resourceContext(
  config: EffectiveConfig,
  inventory: Inventory,
  health: HealthMonitor,
  resources: readonly ResourceSpec[],
  metrics: PluginMetrics,
  logger: Logger,
): Promise<ResourceContext> {
  const context: ResourceContext = {
    health: health.state,
    allocate: await allocateSettingsFrom(config),
    sharedAllocationPolicy: config.flags.plugin.sharedDevicesAllocationPolicy,
    topology: TopologyScores.of(inventory),
  };
  const split = resources.filter((r) => r.sharing === 'split');
  metrics.splitLimitsEnforced.reset();
  if (split.length > 0) {
    context.split = new SplitAllocator(await detectHamiCore(config.sharing.split.hookPath), logger);
    for (const r of split)
      metrics.splitLimitsEnforced.set({ resource: r.name }, context.split.enforced ? 1 : 0);
  }
  return context;
}

function healthSettings(checks: HealthCheckSettings, config: EffectiveConfig) {
  return {
    enabled: checks.enabled,
    disabledXids: checks.disabledXids,
    onlyXids: checks.onlyXids,
    recoverAfterSeconds: config.health.recoverAfterSeconds,
  };
}

function logInventory(logger: Logger, nvml: Nvml, inventory: Inventory): void {
  logger.info(
    {
      library: nvml.libraryPath,
      driver: inventory.driverVersion,
      cuda: inventory.cudaDriverVersion,
      gpus: inventory.gpus.map((g) => ({
        index: g.index,
        uuid: g.uuid,
        name: g.name,
        mig: g.migEnabled ? g.migDevices.length : undefined,
      })),
      missingNvmlSymbols: nvml.missingSymbols.length > 0 ? nvml.missingSymbols : undefined,
    },
    'NVML inventory',
  );
  for (const problem of inventory.problems) logger.error(problem, 'device left out: NVML cannot read it');
}

function logResources(logger: Logger, resources: readonly ResourceSpec[]): void {
  logger.info(
    { resources: Object.fromEntries(resources.map((r) => [r.name, `${r.devices.length} (${r.sharing})`])) },
    'resources to advertise',
  );
}
