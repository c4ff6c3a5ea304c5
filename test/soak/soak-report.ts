/**
 * The soak's counts and its first-versus-last window figures, and the report printed and written at
 * the end (one line per outcome, e.g. `kubelet restarts: 40/40 re-registered`).
 */
import type { ProbeSample } from './soak-plugin.js';

const STEPS = ['restarts', 'validReloads', 'invalidReloads', 'healthStorms'] as const;
type Step = (typeof STEPS)[number];

export interface Counts {
  cycles: number;
  tried: Record<Step, number>;
  passed: Record<Step, number>;
  failures: string[];
  allocations: { ok: number; expectedErrors: number; unexpected: string[] };
}

export function newCounts(): Counts {
  const zero = () => Object.fromEntries(STEPS.map((s) => [s, 0])) as Record<Step, number>;
  return {
    cycles: 0,
    tried: zero(),
    passed: zero(),
    failures: [],
    allocations: { ok: 0, expectedErrors: 0, unexpected: [] },
  };
}

/** Median of a figure over the first and the last quarter of the cycles (the first cycle is warm-up). */
export interface Window {
  first: number;
  last: number;
}
export type Windows = Record<'rss' | 'heapUsed' | 'fds' | 'loopDelayP99Ms', Window>;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = (sorted.length - 1) / 2;
  return (sorted[Math.floor(mid)]! + sorted[Math.ceil(mid)]!) / 2;
}

export function windows(samples: ProbeSample[]): Windows {
  const steady = samples.slice(1);
  const size = Math.max(1, Math.floor(steady.length / 4));
  const window = (pick: (s: ProbeSample) => number): Window => ({
    first: median(steady.slice(0, size).map(pick)),
    last: median(steady.slice(-size).map(pick)),
  });
  return {
    rss: window((s) => s.rss),
    heapUsed: window((s) => s.heapUsed),
    fds: window((s) => s.fds),
    // Below the histogram's 10 ms resolution a delay reads as noise: count it as 10 ms.
    loopDelayP99Ms: window((s) => Math.max(10, s.loopDelayP99Ms)),
  };
}

const MiB = 2 ** 20;

export function renderReport(
  counts: Counts,
  result: Windows,
  run: { minutes: number; nodeOptions: string; node: string; exitCode: number | null },
): string {
  const { tried, passed, allocations } = counts;
  const value = (v: number, unit: string) => `${v.toFixed(1)}${unit ? ` ${unit}` : ''}`;
  const row = (name: string, w: Window, unit: string, scale = 1) =>
    `| ${name} | ${value(w.first / scale, unit)} | ${value(w.last / scale, unit)} | ${(w.last / w.first).toFixed(2)}× |`;
  return [
    `## Soak: the plugin for ${run.minutes} min, ${counts.cycles} cycles (Node ${run.node}, NODE_OPTIONS="${run.nodeOptions}")`,
    '',
    `- kubelet restarts: ${passed.restarts}/${tried.restarts} re-registered with the served devices`,
    `- valid config reloads: ${passed.validReloads}/${tried.validReloads} applied (device list as configured)`,
    `- invalid config reloads: ${passed.invalidReloads}/${tried.invalidReloads} rejected, last good config served`,
    `- Xid storms (50 Xids on one GPU) with another GPU lost: ${passed.healthStorms}/${tried.healthStorms} marked Unhealthy and recovered`,
    `- allocations under that load: ${allocations.ok} ok, ${allocations.expectedErrors} refused as a device turned Unhealthy (expected), ${allocations.unexpected.length} other errors`,
    `- SIGTERM at the end: exit code ${run.exitCode}`,
    ...counts.failures.slice(0, 20).map((f) => `- FAILED: ${f}`),
    ...allocations.unexpected.slice(0, 5).map((m) => `- unexpected Allocate error: ${m}`),
    '',
    '| figure (median over the window) | first quarter | last quarter | last / first |',
    '|---|---|---|---|',
    row('RSS', result.rss, 'MiB', MiB),
    row('V8 heap used', result.heapUsed, 'MiB', MiB),
    row('open file descriptors', result.fds, ''),
    row('event-loop delay p99 (per cycle)', result.loopDelayP99Ms, 'ms'),
    '',
  ].join('\n');
}
