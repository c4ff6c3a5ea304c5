/**
 * The plugin's own metrics (`vgpu_agent_*`), added to the runtime's registry (build info, NVML errors
 * and process metrics are there already); a registry of their own when a test builds one alone.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MetricFamilies } from '../runtime/metrics.js';

export class PluginMetrics extends MetricFamilies {
  constructor(registry: Registry = new Registry()) {
    super(registry);
  }

  readonly devices = new Gauge({
    name: 'vgpu_agent_devices',
    help: 'Devices advertised to kubelet, by resource and health',
    labelNames: ['resource', 'health'] as const,
    registers: [this.registry],
  });

  readonly allocations = new Counter({
    name: 'vgpu_agent_allocate_total',
    help: 'Allocate calls from kubelet, by resource and result (ok or the gRPC status name)',
    labelNames: ['resource', 'result'] as const,
    registers: [this.registry],
  });

  readonly allocateDuration = new Histogram({
    name: 'vgpu_agent_allocate_duration_seconds',
    help: 'Time to answer an Allocate call, by resource and result',
    labelNames: ['resource', 'result'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });

  readonly registrations = new Counter({
    name: 'vgpu_agent_registrations_total',
    help: 'Registrations with kubelet, by resource and result (ok or error)',
    labelNames: ['resource', 'result'] as const,
    registers: [this.registry],
  });

  readonly registered = new Gauge({
    name: 'vgpu_agent_registered',
    help: '1 when the resource is registered with kubelet and serving, else 0',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });

  readonly listAndWatchFailures = new Counter({
    name: 'vgpu_agent_list_and_watch_failures_total',
    help: "Device lists kubelet did not get, by resource and reason (too_large: over kubelet's 4 MiB message limit; stream_error: the stream failed)",
    labelNames: ['resource', 'reason'] as const,
    registers: [this.registry],
  });

  readonly kubeletRestarts = new Counter({
    name: 'vgpu_agent_kubelet_restarts_total',
    help: 'Kubelet restarts seen (kubelet.sock re-created)',
    registers: [this.registry],
  });

  readonly healthEvents = new Counter({
    name: 'vgpu_agent_health_events_total',
    help: 'Xid events seen, by xid and action (unhealthy or ignored)',
    labelNames: ['xid', 'action'] as const,
    registers: [this.registry],
  });

  readonly unhealthyDevices = new Gauge({
    name: 'vgpu_agent_unhealthy_gpus',
    help: 'GPUs and MIG devices currently marked Unhealthy',
    registers: [this.registry],
  });

  readonly configReloads = new Counter({
    name: 'vgpu_agent_config_reloads_total',
    help: 'Config updates seen, by result: applied, or invalid (the last good config is still served)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly configInfo = new Gauge({
    name: 'vgpu_agent_config_info',
    help: 'Always 1 for the config being served: its name (ConfigMap key) and hash',
    labelNames: ['name', 'hash'] as const,
    registers: [this.registry],
  });

  readonly splitLimitsEnforced = new Gauge({
    name: 'vgpu_agent_split_limits_enforced',
    help: "1 when split.hookPath's ld.so.preload names a libvgpu.so that split containers get mounted there, so HAMi-core loads in them and enforces the limits; 0 when slices are advertised without enforcement",
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });

  /** Exactly one config_info series: the one being served. */
  setConfigInfo(name: string, hash: string): void {
    this.configInfo.reset();
    this.configInfo.set({ name, hash }, 1);
  }
}
