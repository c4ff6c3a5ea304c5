/**
 * The monitor component, composed once, as LivePlugin composes the plugin: the node runtime (NVML
 * opened once, the inventory read at start, one metrics registry with process metrics), the
 * MonitorAgent on it, and the status endpoint (/metrics, /healthz, /readyz once the first collection
 * is done). The CLI, the demo and the tests all start the monitor through here. stop() takes it down
 * in reverse: HTTP closed, collection and health stopped, NVML shut down.
 */
import { NodeRuntime, type NodeRuntimeOptions } from '../runtime/node-runtime.js';
import { MonitorAgent, type MonitorSources, type MonitorTuning } from './agent.js';

export type { MonitorSources, MonitorTuning } from './agent.js';

export interface LiveMonitorOptions extends NodeRuntimeOptions {
  /** `:9394`; port 0 picks a free one */
  metricsAddress: string;
  intervalMs: number;
  /** names, allocations, further families; default none (series carry pod_uid / container_id) */
  openSources?: (runtime: NodeRuntime) => Promise<MonitorSources>;
  /** for DP_DISABLE_HEALTHCHECKS / DP_ENABLE_HEALTHCHECKS */
  env: NodeJS.ProcessEnv;
  tuning?: MonitorTuning;
}

export class LiveMonitor {
  private constructor(
    readonly runtime: NodeRuntime,
    readonly agent: MonitorAgent,
  ) {}

  /** Opens the runtime, starts the monitor and serves status; nothing is left open when a step fails. */
  static async start(options: LiveMonitorOptions): Promise<LiveMonitor> {
    const runtime = await NodeRuntime.open(options);
    const agent = await runtime.start((onRuntime) =>
      MonitorAgent.start({
        runtime: onRuntime,
        hostProc: options.hostPaths.procRoot,
        intervalMs: options.intervalMs,
        openSources: options.openSources ?? (async () => ({})),
        env: options.env,
        tuning: options.tuning,
      }),
    );
    try {
      await runtime.serveStatus(options.metricsAddress, () => agent.notReadyReason());
    } catch (err) {
      await runtime.stop();
      throw err;
    }
    return new LiveMonitor(runtime, agent);
  }

  /** The port /metrics is served on. */
  get port(): number {
    return this.runtime.statusPort!;
  }

  /** Closes HTTP, stops collection, health and the sources, then shuts NVML down. */
  stop(): Promise<void> {
    return this.runtime.stop();
  }
}
