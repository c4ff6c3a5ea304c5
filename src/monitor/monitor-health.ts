/**
 * GPU health for the monitor, by the plugin's rules: the same HealthMonitor (Xid events through an
 * NVML event set, periodic probes, fan-out from a GPU to its MIG devices, recovery after 300 s once
 * NVML answers) with the default Xid rules (NVIDIA's application Xids ignored) and NVIDIA's
 * DP_DISABLE_HEALTHCHECKS / DP_ENABLE_HEALTHCHECKS variables. The monitor reads no config file, so a
 * ConfigMap's `health` section does not reach it.
 *
 * Exported as `vgpu_gpu_healthy` per monitored device (read from the health state at scrape time:
 * memory only, no NVML) and `vgpu_gpu_xid_errors_total` by GPU and xid.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { healthChecksFromEnv } from '../config/health-checks.js';
import { DEFAULT_DISABLED_XIDS } from '../config/schema.js';
import { HealthMonitor } from '../devices/health-monitor.js';
import type { Inventory } from '../devices/inventory-types.js';
import type { Nvml } from '../nvml/nvml.js';
import { monitoredDevices } from './collector.js';
import { DEVICE_LABELS, deviceLabels, GPU_LABELS } from './metric-families.js';

/** The plugin's default: an Unhealthy device that answers again is Healthy after 5 minutes. */
const RECOVER_AFTER_SECONDS = 300;

const XID_ERRORS_METRIC = 'vgpu_gpu_xid_errors_total';
const HEALTHY_METRIC = 'vgpu_gpu_healthy';
/** The series this module registers (the dashboard test checks its queries against them). */
export const MONITOR_HEALTH_METRICS = [XID_ERRORS_METRIC, HEALTHY_METRIC] as const;

export interface MonitorHealthOptions {
  nvml: Nvml;
  inventory: Inventory;
  /** DP_DISABLE_HEALTHCHECKS / DP_ENABLE_HEALTHCHECKS */
  env: NodeJS.ProcessEnv;
  registry: Registry;
  logger: Logger;
  probeIntervalMs?: number;
  eventWaitTimeoutMs?: number;
}

export class MonitorHealth {
  readonly monitor: HealthMonitor;

  constructor(options: MonitorHealthOptions) {
    const { inventory, registry, logger } = options;
    const { warnings, ...checks } = healthChecksFromEnv(options.env, {
      enabled: true,
      disabledXids: DEFAULT_DISABLED_XIDS,
    });
    for (const warning of warnings) logger.warn(warning);
    const xids = new Counter({
      name: XID_ERRORS_METRIC,
      help: 'Xid errors the driver reported, by GPU and xid (application Xids included; none while health checks are disabled)',
      labelNames: [...GPU_LABELS, 'xid'],
      registers: [registry],
    });
    const indexOf = new Map(inventory.gpus.map((g) => [g.uuid, String(g.index)]));
    this.monitor = new HealthMonitor({
      nvml: options.nvml,
      inventory,
      settings: { ...checks, recoverAfterSeconds: RECOVER_AFTER_SECONDS },
      logger: logger.child({ component: 'monitor-health' }),
      probeIntervalMs: options.probeIntervalMs,
      eventWaitTimeoutMs: options.eventWaitTimeoutMs,
      onXid: (xid, _acted, gpuUuid) =>
        xids.inc({ uuid: gpuUuid, gpu: indexOf.get(gpuUuid) ?? '', xid: String(xid) }),
      onChange: () => {}, // read at scrape time
    });
    this.registerHealthGauge(registry, inventory);
  }

  private registerHealthGauge(registry: Registry, inventory: Inventory): void {
    const devices = monitoredDevices(inventory).map(({ device }) => device);
    const state = this.monitor.state;
    new Gauge({
      name: HEALTHY_METRIC,
      help: "1 while the GPU or MIG device is Healthy by the plugin's rules, 0 once an Xid or a failed probe marked it (or its GPU) Unhealthy",
      labelNames: DEVICE_LABELS,
      registers: [registry],
      collect() {
        this.reset();
        for (const device of devices) {
          const healthy = state.isHealthy({ uuid: device.uuid, gpuUuid: device.gpuUuid });
          this.set(deviceLabels(device), healthy ? 1 : 0);
        }
      },
    });
  }

  start(): void {
    this.monitor.start();
  }

  stop(): Promise<void> {
    return this.monitor.stop();
  }
}
