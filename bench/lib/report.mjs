/** The report: a text table for the terminal and docs/performance.md, and the JSON written beside it. */
import os from 'node:os';

function format(value, unit) {
  if (!Number.isFinite(value)) return '–';
  if (unit === 'count') return String(Math.round(value));
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)}${unit === '%' ? '%' : ` ${unit}`}`;
}

function pair(summary, unit) {
  if (!summary) return '–';
  const median = format(summary.median, unit);
  const p99 = format(summary.p99, unit);
  return median === p99 ? median : `${median} / ${p99}`;
}

function times(r) {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : '–';
}

/** Markdown table rows: figure | vgpu-agent | floor | ratio. */
export function table(figures) {
  const lines = [
    '| figure (median / p99) | vgpu-agent | floor | floor figure | ratio (median / p99) |',
    '|---|---|---|---|---|',
  ];
  for (const f of figures) {
    const r = f.ratio ? `${times(f.ratio.median)} / ${times(f.ratio.p99)}` : '–';
    const name = `${f.group}: ${f.name}${f.agent.n > 1 ? ` (n=${f.agent.n})` : ''}`;
    lines.push(
      `| ${name} | ${pair(f.agent, f.unit)} | ${f.floor?.name ?? '–'} | ${pair(f.floor, f.unit)} | ${r} |`,
    );
  }
  return lines.join('\n');
}

/** What the figures were taken on: shared machines are noisy, so the load goes with them. */
export function machine(nodeVersion) {
  const cpus = os.cpus();
  return {
    node: nodeVersion,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}
