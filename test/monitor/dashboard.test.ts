/**
 * The Grafana dashboard shipped with the chart (charts/vgpu-agent/dashboards/vgpu-agent.json): every
 * panel query and variable names only series the agent exports, taken from the metric definitions
 * themselves (the monitor's families, its own metrics, the plugin's), so renaming a metric fails here.
 * Also the PromQL name extraction the check relies on.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { MONITOR_FAMILIES } from '../../src/monitor/metric-families.js';
import { MONITOR_HEALTH_METRICS } from '../../src/monitor/monitor-health.js';
import { MonitorMetrics } from '../../src/monitor/monitor-metrics.js';
import { PluginMetrics } from '../../src/plugin/metrics.js';
import { metricNames } from '../helpers/promql-names.js';

const DASHBOARD = path.resolve(import.meta.dirname, '../../charts/vgpu-agent/dashboards/vgpu-agent.json');

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

/** Series names the agent exports: histograms also as `_bucket`, `_sum` and `_count`. */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>([...MONITOR_FAMILIES.map((f) => f.name), ...MONITOR_HEALTH_METRICS]);
  const registry = new Registry();
  new MonitorMetrics(registry);
  const metrics = [
    ...(await registry.getMetricsAsJSON()),
    ...(await new PluginMetrics().registry.getMetricsAsJSON()),
  ];
  for (const { name, type } of metrics) {
    names.add(name);
    if (String(type) === 'histogram')
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** `label_values(metric, label)` (Grafana's variable query) names `metric`. */
function variableMetric(query: string): string | undefined {
  return /^label_values\(\s*([^,()]+?)\s*,/.exec(query)?.[1]?.replace(/\{.*\}$/, '');
}

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
  const panels = allPanels(dashboard.panels);

  it('queries only series the agent exports, in every panel and variable', async () => {
    const exported = await exportedNames();
    const unknown: string[] = [];
    let queries = 0;
    for (const panel of panels) {
      for (const { expr } of panel.targets ?? []) {
        queries++;
        const names = metricNames(expr);
        expect(names.length, `${panel.title}: ${expr}`).toBeGreaterThan(0);
        unknown.push(...names.filter((n) => !exported.has(n)).map((n) => `${panel.title}: ${n}`));
      }
    }
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const query = typeof variable.query === 'string' ? variable.query : variable.query!.query;
      const metric = variableMetric(query);
      expect(metric, `variable ${variable.name}: ${query}`).toBeDefined();
      if (!exported.has(metric!)) unknown.push(`variable ${variable.name}: ${metric}`);
    }
    expect(unknown).toEqual([]);
    expect(queries).toBeGreaterThan(20);
  });

  it('has the panels the monitor is for, each with a unique id and a query', () => {
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const panel of panels.filter((p) => p.type !== 'row'))
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    const titles = panels.map((p) => p.title).join('\n');
    for (const wanted of [
      /GPU utilisation/,
      /memory by namespace/,
      /memory by pod/,
      /outside allocations/,
      /GPU up/,
      /Xid/,
    ])
      expect(titles).toMatch(wanted);
    expect(dashboard.uid).toBe('vgpu-agent');
  });
});

describe('metricNames (PromQL)', () => {
  it('finds metrics, not functions, aggregations, labels, matchers, ranges or keywords', () => {
    expect(
      metricNames(
        'sum by (namespace) (rate(foo_total{a="b", c=~"$node"}[$__rate_interval] offset 5m)) / on (uuid) group_left (model) bar_info',
      ),
    ).toEqual(['foo_total', 'bar_info']);
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))')).toEqual(['x_bucket']);
    expect(metricNames('count(up == 0) or vector(0)')).toEqual(['up']);
    expect(metricNames('sum(a) without (b) > bool 1 and {__name__="c"}')).toEqual(['a', 'c']);
    expect(metricNames('label_replace(m, "dst", "$1", "src", "(.*)")')).toEqual(['m']);
  });

  it('rejects unbalanced brackets and unknown functions, so a typo cannot hide a name', () => {
    expect(() => metricNames('sum(rate(x[5m])')).toThrow(/unclosed/);
    expect(() => metricNames('x{a="b"')).toThrow(/unclosed/);
    expect(() => metricNames('x)')).toThrow(/unbalanced/);
    expect(() => metricNames('rat(x[5m])')).toThrow(/unknown function rat/);
  });
});
