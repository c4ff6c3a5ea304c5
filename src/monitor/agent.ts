/**
 * `vgpu-agent monitor` as a component on the node runtime (NVML, inventory, metrics registry): the
 * collector on the host /proc, the snapshot's families and the monitor's own metrics on the runtime's
 * registry, GPU health by the plugin's rules, and the hostPID check said once at start. Where names,
 * allocations and any further families come from is the caller's (MonitorSources), so the CLI, the
 * demo and the tests wire their own. live-monitor.ts starts it with the status endpoint.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Component, NodeRuntime } from '../runtime/node-runtime.js';
import { Collector } from './collector.js';
import { type AllocationSource, type ContainerNamer, NO_ALLOCATIONS, NO_NAMES } from './containers.js';
import { checkHostPidNamespace } from './host-pid.js';
import { MonitorHealth } from './monitor-health.js';
import { MonitorMetrics } from './monitor-metrics.js';
import { HostProcesses } from './proc.js';
import type { MonitorSnapshot } from './snapshot.js';
import { registerSnapshotMetrics } from './snapshot-metrics.js';

/** Where container names, allocations and any further series come from (the wiring's choice). */
export interface MonitorSources {
  namer?: ContainerNamer;
  allocations?: AllocationSource;
  /** adds further families to the registry, served from the latest snapshot */
  registerFamilies?(registry: Registry, latest: () => MonitorSnapshot | undefined): void;
  /** stops what the sources run (watches, connections) */
  stop?(): Promise<void>;
}

/** Timing knobs; the defaults suit production, tests shorten them. */
export interface MonitorTuning {
  healthProbeIntervalMs?: number;
  eventWaitTimeoutMs?: number;
}

export interface MonitorAgentOptions {
  runtime: NodeRuntime;
  /** the host's /proc (`--host-proc`) */
  hostProc: string;
  intervalMs: number;
  /** opened once NVML and the inventory are ready; stopped with the monitor */
  openSources: (runtime: NodeRuntime) => Promise<MonitorSources>;
  /** for DP_DISABLE_HEALTHCHECKS / DP_ENABLE_HEALTHCHECKS */
  env: NodeJS.ProcessEnv;
  tuning?: MonitorTuning;
}

export class MonitorAgent implements Component {
  readonly metrics: MonitorMetrics;
  readonly health: MonitorHealth;
  readonly collector: Collector;

  private constructor(
    private readonly options: MonitorAgentOptions,
    private readonly sources: MonitorSources,
  ) {
    const { runtime, tuning } = options;
    this.metrics = new MonitorMetrics(runtime.metrics.registry);
    this.health = new MonitorHealth({
      nvml: runtime.nvml,
      inventory: runtime.inventory,
      env: options.env,
      registry: runtime.metrics.registry,
      logger: runtime.logger,
      probeIntervalMs: tuning?.healthProbeIntervalMs,
      eventWaitTimeoutMs: tuning?.eventWaitTimeoutMs,
    });
    this.collector = new Collector({
      nvml: runtime.nvml,
      inventory: runtime.inventory,
      hostProcesses: new HostProcesses(options.hostProc),
      namer: sources.namer ?? NO_NAMES,
      allocations: sources.allocations ?? NO_ALLOCATIONS,
      intervalMs: options.intervalMs,
      hooks: this.metrics,
      logger: runtime.logger,
    });
    const latest = () => this.collector.latest;
    registerSnapshotMetrics(runtime.metrics.registry, latest);
    sources.registerFamilies?.(runtime.metrics.registry, latest);
  }

  /** Opens the sources, says whether attribution can work here, then starts health and collection. */
  static async start(options: MonitorAgentOptions): Promise<MonitorAgent> {
    const sources = await options.openSources(options.runtime);
    try {
      const agent = new MonitorAgent(options, sources);
      await agent.checkHostPid();
      agent.health.start();
      agent.collector.start();
      return agent;
    } catch (err) {
      await sources.stop?.();
      throw err;
    }
  }

  /** null once the first collection is done (the snapshot /metrics serves exists). */
  notReadyReason(): string | null {
    return this.collector.latest ? null : 'no collection done yet';
  }

  /** Stops collecting, health checks and the sources; NVML is the runtime's to shut down. */
  async stop(): Promise<void> {
    await this.collector.stop();
    await this.health.stop();
    await this.sources.stop?.();
  }

  /** Says once, with the fix, when NVML's PIDs will not be the host /proc's. */
  private async checkHostPid(): Promise<void> {
    const { hostProc } = this.options;
    const check = await checkHostPidNamespace({ hostProc });
    this.metrics.reportHostPidNamespace(check.shared);
    logHostPid(this.options.runtime.logger, check.shared, { hostProc, how: check.method });
  }
}

function logHostPid(logger: Logger, shared: boolean | undefined, fields: Record<string, string>): void {
  if (shared === true) {
    logger.info(fields, "the monitor shares the host's PID namespace: NVML's PIDs are the host /proc's");
  } else if (shared === false) {
    logger.warn(
      fields,
      "the monitor is not in the host's PID namespace: NVIDIA drivers since 535.113 report only the " +
        "processes of the caller's PID namespace, so other pods' GPU use is not attributed (counted in " +
        "vgpu_agent_processes_not_in_proc, or missing). Fix: hostPID: true on the monitor's pod (the chart " +
        'sets it) and the host /proc mounted at --host-proc',
    );
  } else {
    logger.warn(fields, "cannot tell whether the monitor shares the host's PID namespace");
  }
}
