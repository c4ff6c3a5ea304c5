#!/usr/bin/env node
/**
 * `npm run bench`: the agent's benchmarks, each figure as median and p99 over repeated runs and as a
 * ratio to a floor measured in the same run (docs/performance.md says what each floor is). Prints a
 * Markdown table and writes bench/results/latest.json (with the machine and its load average, since
 * shared machines are noisy). Needs `npm run build` (the npm script runs it first).
 *
 *   node bench/run.mjs [--quick] [--only latency,startup,propagation,footprint,monitor]
 *                      [--out file.json] [--node24] [--baseline <git ref>]
 *
 * --quick: fewer rounds (a smoke run, not figures to quote). --node24: the same run on the Node 24 of
 * the image (package.json config.node24Version, fetched by .ci/fetch-node.sh), in a new process.
 * --baseline: also start the build of that commit (e.g. main, HEAD~1) next to the agent, interleaved,
 * in the start-up and footprint suites: a cut's before and after in the same run.
 * A measurement, not a test: nothing here asserts a limit.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildBaseline } from './lib/baseline.mjs';
import { machine, table } from './lib/report.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SUITES = ['latency', 'startup', 'propagation', 'footprint', 'monitor'];
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string', default: path.join(root, 'bench/results/latest.json') },
    node24: { type: 'boolean', default: false },
    baseline: { type: 'string' },
  },
});

if (args.node24) {
  const version = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).config.node24Version;
  const bin = execFileSync(path.join(root, '.ci/fetch-node.sh'), [version], { encoding: 'utf8' }).trim();
  const rest = process.argv.slice(2).filter((a) => a !== '--node24');
  const result = spawnSync(path.join(bin, 'node'), [fileURLToPath(import.meta.url), ...rest], {
    stdio: 'inherit',
  });
  process.exit(result.status ?? 1);
}

if (
  !existsSync(path.join(root, 'dist/cli/main.js')) ||
  !existsSync(path.join(root, 'native/mock-nvml/build'))
) {
  console.error('bench: run `npm run build` first (npm run bench does)');
  process.exit(1);
}

const selected = args.only ? args.only.split(',') : SUITES;
for (const name of selected) {
  if (!SUITES.includes(name)) {
    console.error(`bench: unknown suite "${name}"; one of ${SUITES.join(', ')}`);
    process.exit(2);
  }
}

const load = (await import('node:os')).loadavg;
const before = machine(process.version);
const started = performance.now();
const figures = [];
const suiteSeconds = {};
const baseline = args.baseline ? buildBaseline(args.baseline) : undefined;
try {
  for (const name of selected) {
    const t0 = performance.now();
    process.stderr.write(`bench: ${name}…\n`);
    const { [`${name}Suite`]: suite } = await import(`./suites/${name}.mjs`);
    figures.push(...(await suite({ quick: args.quick, baseline })));
    suiteSeconds[name] = Math.round((performance.now() - t0) / 100) / 10;
  }
} finally {
  baseline?.remove();
}
const seconds = Math.round((performance.now() - started) / 100) / 10;
const report = {
  date: new Date().toISOString(),
  quick: args.quick,
  ...(baseline ? { baseline: { ref: baseline.ref, commit: baseline.commit } } : {}),
  machine: { ...before, loadAverageAtEnd: load().map((l) => Math.round(l * 100) / 100) },
  seconds,
  suiteSeconds,
  figures,
};
mkdirSync(path.dirname(args.out), { recursive: true });
writeFileSync(args.out, `${JSON.stringify(report, null, 2)}\n`);

const m = report.machine;
console.log(`\n${table(figures)}\n`);
console.log(
  `Node ${m.node}, ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB; load average ${m.loadAverage.join(' ')} at start, ` +
    `${m.loadAverageAtEnd.join(' ')} at end; ${seconds} s. Written to ${path.relative(process.cwd(), args.out)}.`,
);
