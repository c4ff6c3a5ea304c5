/**
 * The one Prometheus registry of an agent process, with what every component reports: build info,
 * failed NVML calls and the default process metrics (resident memory, CPU, heap, event-loop lag…,
 * under their usual `process_*` and `nodejs_*` names so stock dashboards read them). Each component
 * adds its own families to the same registry.
 *
 * prom-client's `nodejs_active_{handles,requests,resources}_total` are gauges with a counter's suffix,
 * which `promtool check metrics` rejects; they are left out (the same counts by type remain, without
 * the suffix), so the agent's /metrics is lint-clean.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { NvmlError } from '../nvml/errors.js';

/**
 * A set of metric families on one registry. Subclasses declare each family as a field with
 * `registers: [this.registry]`: field initializers run after this constructor, so the registry is set.
 */
export abstract class MetricFamilies {
  constructor(readonly registry: Registry) {}
}

/** Default gauges named like counters: `sum(nodejs_active_handles)` and the like give the same. */
const MISNAMED_DEFAULT_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** `vgpu_agent_build_info` on `registry`: every agent process serves it, idle ones too. */
function buildInfoGauge(registry: Registry) {
  return new Gauge({
    name: 'vgpu_agent_build_info',
    help: 'Always 1; labels tell the agent version and the NVML driver version',
    labelNames: ['version', 'driver_version'] as const,
    registers: [registry],
  });
}

export class RuntimeMetrics extends MetricFamilies {
  readonly buildInfo = buildInfoGauge(this.registry);

  readonly nvmlErrors = new Counter({
    name: 'vgpu_agent_nvml_errors_total',
    help: 'Failed NVML calls, by function and return code name',
    labelNames: ['function', 'code'] as const,
    registers: [this.registry],
  });

  constructor() {
    super(new Registry());
    collectDefaultMetrics({ register: this.registry });
    for (const name of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(name);
  }

  countNvmlError(error: NvmlError): void {
    this.nvmlErrors.inc({ function: error.functionName, code: error.codeName });
  }
}

/** Why an agent idles instead of running: the `reason` label of `vgpu_agent_idle`. */
export type IdleReason = 'nvml_unavailable';

/**
 * The registry of an idling agent (NVML unavailable, failOnInitError=false): build info (no driver
 * version) and `vgpu_agent_idle`. No default process collectors: their event-loop-delay sampler is a
 * timer, and a pod idling on every GPU-less node should cost next to nothing.
 */
export class IdleMetrics extends MetricFamilies {
  readonly buildInfo = buildInfoGauge(this.registry);

  readonly idle = new Gauge({
    name: 'vgpu_agent_idle',
    help: '1 while the agent idles instead of running; reason says why (nvml_unavailable: NVML could not be loaded and failOnInitError is false)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(agentVersion: string, reason: IdleReason) {
    super(new Registry());
    this.buildInfo.set({ version: agentVersion, driver_version: '' }, 1);
    this.idle.set({ reason }, 1);
  }
}
