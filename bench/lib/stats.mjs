/**
 * Summaries and ratios: every figure is reported as median and p99 of its samples (nearest rank),
 * and as the ratio of the agent's to the floor's measured in the same run.
 */

/** Nearest-rank percentile of sorted samples (p in 0–100). */
function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** { n, median, p99, min, max } of numeric samples. */
export function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = (sorted.length - 1) / 2;
  return {
    n: sorted.length,
    median: sorted.length ? (sorted[Math.floor(mid)] + sorted[Math.ceil(mid)]) / 2 : Number.NaN,
    p99: percentile(sorted, 99),
    min: sorted[0] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
  };
}

/** Ratio of two summaries, median to median and p99 to p99. */
export function ratio(agent, floor) {
  return { median: agent.median / floor.median, p99: agent.p99 / floor.p99 };
}

/**
 * One row of the report: what was measured, the agent's summary, its floor (name and summary) and
 * their ratio. `unit` is how values are printed (ms, µs, MiB, %, count).
 */
export function figure(group, name, unit, agentSamples, floorName, floorSamples, extra = {}) {
  const agent = summarize(agentSamples);
  const floor = floorSamples ? summarize(floorSamples) : undefined;
  return {
    group,
    name,
    unit,
    agent,
    ...(floor ? { floor: { name: floorName, ...floor }, ratio: ratio(agent, floor) } : {}),
    ...extra,
  };
}
