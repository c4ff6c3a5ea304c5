/**
 * The monitor's own metrics (`vgpu_agent_*`, like the plugin's): how collections go, whether the
 * host /proc shows NVML's processes (it does not without hostPID), and how many series the last
 * snapshot exports. It listens to the collector through CollectorHooks; the registry is the node
 * runtime's (NVML errors and process metrics live there).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CollectorHooks } from './collector.js';
import { metricFamilies } from './metric-families.js';
import type { MonitorSnapshot } from './snapshot.js';

export class MonitorMetrics implements CollectorHooks {
  private readonly collections: Counter;
  private readonly overruns: Counter;
  private readonly duration: Histogram;
  private readonly lastCollection: Gauge;
  private readonly notInProc: Gauge;
  private readonly series: Gauge;
  private readonly registry: Registry;

  constructor(registry: Registry) {
    const registers = [registry];
    this.collections = new Counter({
      name: 'vgpu_agent_collections_total',
      help: 'Monitor collections done',
      registers,
    });
    this.overruns = new Counter({
      name: 'vgpu_agent_collection_overruns_total',
      help: 'Collection ticks skipped because the previous collection was still running',
      registers,
    });
    this.duration = new Histogram({
      name: 'vgpu_agent_collection_duration_seconds',
      help: 'Time one collection took (NVML readings of every device and /proc attribution)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.lastCollection = new Gauge({
      name: 'vgpu_agent_last_collection_timestamp_seconds',
      help: 'When the snapshot being served was collected',
      registers,
    });
    this.notInProc = new Gauge({
      name: 'vgpu_agent_processes_not_in_proc',
      help: 'GPU processes of the last collection that the host /proc does not show: they exited meanwhile, or the monitor lacks hostPID (then their use is not attributed)',
      registers,
    });
    this.series = new Gauge({
      name: 'vgpu_agent_monitor_series',
      help: 'Series the last snapshot exports in the vgpu_gpu_*, vgpu_mig_*, vgpu_container_* and vgpu_unallocated_* families',
      registers,
    });
    this.registry = registry;
  }

  /**
   * Whether the monitor shares the host's PID namespace, said once at start; when that cannot be told
   * the gauge is left out (a label-less gauge would read 0).
   */
  reportHostPidNamespace(shared: boolean | undefined): void {
    if (shared === undefined) return;
    new Gauge({
      name: 'vgpu_agent_host_pid_namespace',
      help: "1 when the monitor runs in the host's PID namespace (hostPID: true), 0 when not: NVIDIA drivers since 535.113 then report only the monitor's own processes and other pods' GPU use goes unattributed",
      registers: [this.registry],
    }).set(shared ? 1 : 0);
  }

  onCollected(snapshot: MonitorSnapshot): void {
    this.collections.inc();
    this.duration.observe(snapshot.durationSeconds);
    this.lastCollection.set(snapshot.takenAtMs / 1000);
    this.notInProc.set(snapshot.processesNotInProc);
    let series = 0;
    for (const samples of metricFamilies(snapshot).values()) series += samples.length;
    this.series.set(series);
  }

  onOverrun(): void {
    this.overruns.inc();
  }
}
