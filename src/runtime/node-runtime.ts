/**
 * The node runtime every component of the agent (the device plugin, the monitor) starts from: grpc-js
 * logs routed through pino, one metrics registry (build info, NVML errors, process metrics) that the
 * component extends, NVML opened with a hook counting failed calls, the inventory read once, and the
 * HTTP status endpoint with the component's readiness. A start-up that fails after NVML is open shuts
 * NVML down again; stop() takes things down in the reverse order.
 */
import type { Logger } from 'pino';
import { buildInventory } from '../devices/inventory.js';
import type { Inventory } from '../devices/inventory-types.js';
import { Nvml } from '../nvml/nvml.js';
import { routeGrpcLogs } from './grpc-log.js';
import type { HostPaths } from './host.js';
import { RuntimeMetrics } from './metrics.js';
import { StatusServer } from './status-server.js';

export interface NodeRuntimeOptions {
  logger: Logger;
  /** path or soname of libnvidia-ml */
  nvmlLibrary: string;
  hostPaths: HostPaths;
  agentVersion: string;
}

/** What runs on the runtime: stopped before NVML shuts down. */
export interface Component {
  stop(): Promise<void>;
}

export class NodeRuntime {
  private statusServer: StatusServer | undefined;
  private readonly components: Component[] = [];

  private constructor(
    readonly logger: Logger,
    readonly metrics: RuntimeMetrics,
    readonly nvml: Nvml,
    readonly inventory: Inventory,
  ) {}

  static async open(options: NodeRuntimeOptions): Promise<NodeRuntime> {
    const { logger } = options;
    routeGrpcLogs(logger);
    const metrics = new RuntimeMetrics();
    const nvml = await Nvml.open({
      libraryPath: options.nvmlLibrary,
      onError: (e) => metrics.countNvmlError(e),
    });
    try {
      const inventory = await buildInventory(nvml, options.hostPaths);
      metrics.buildInfo.set({ version: options.agentVersion, driver_version: inventory.driverVersion }, 1);
      logInventory(logger, nvml, inventory);
      return new NodeRuntime(logger, metrics, nvml, inventory);
    } catch (err) {
      nvml.shutdown();
      throw err;
    }
  }

  /** Starts a component on this runtime; when that fails the runtime stops (NVML shut down). */
  async start<C extends Component>(start: (runtime: NodeRuntime) => Promise<C>): Promise<C> {
    let component: C;
    try {
      component = await start(this);
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.components.push(component);
    return component;
  }

  /** Serves /metrics, /healthz and /readyz on `address` (`:9396`); null serves nothing. */
  async serveStatus(address: string | null, notReadyReason: () => string | null): Promise<void> {
    if (address === null) return;
    this.statusServer = await StatusServer.start({
      address,
      registry: this.metrics.registry,
      notReadyReason,
    });
    this.logger.info({ address, port: this.statusServer.port }, 'serving /metrics, /healthz, /readyz');
  }

  /** The status endpoint's port, when it serves. */
  get statusPort(): number | undefined {
    return this.statusServer?.port;
  }

  /** Stops serving status, then the components (last started first), then shuts NVML down. */
  async stop(): Promise<void> {
    await this.statusServer?.stop();
    this.statusServer = undefined;
    for (const component of this.components.splice(0).reverse()) await component.stop();
    this.nvml.shutdown();
  }
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
