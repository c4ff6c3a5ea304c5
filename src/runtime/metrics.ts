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

export class RuntimeMetrics extends MetricFamilies {
  readonly buildInfo = new Gauge({
    name: 'vgpu_agent_build_info',
    help: 'Always 1; labels tell the agent version and the NVML driver version',
    labelNames: ['version', 'driver_version'] as const,
    registers: [this.registry],
  });

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
