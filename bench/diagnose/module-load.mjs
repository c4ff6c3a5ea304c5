#!/usr/bin/env node
/**
 * Where the plugin's start-up time and memory go, module by module: each target is imported cold in a
 * fresh `node` process (cwd: the repository), timing the import and the V8 heap and RSS it adds.
 * Targets run interleaved, `--runs` times each (default 7); medians are printed as a Markdown table.
 * Also compares parsing the two .proto files at start with loading a precompiled JSON descriptor.
 * Needs `npm run build`. A measurement, not a test.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { summarize } from '../lib/stats.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });
const PROTOS = "['deviceplugin/v1beta1/api.proto', 'podresources/v1/api.proto']";
const OPTIONS =
  "{ keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: ['proto'] }";
const LOADERS = "const pl = await import('@grpc/proto-loader'); const grpc = await import('@grpc/grpc-js');";

/** The JSON descriptor of both protos, as a build step could write it (protobufjs, which proto-loader uses). */
function writeDescriptor(dir) {
  const file = path.join(dir, 'api.json');
  const script = `
    const { default: protobuf } = await import('protobufjs');
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => 'proto/' + target;
    root.loadSync(${PROTOS}, { keepCase: true });
    (await import('node:fs')).writeFileSync(${JSON.stringify(file)}, JSON.stringify(root.toJSON()));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
  });
  if (child.status !== 0) throw new Error(`descriptor: ${child.stderr}`);
  return file;
}

function targets(descriptor) {
  const imp = (specifier) => `await import('${specifier}')`;
  return [
    ['(nothing: the runtime alone)', '', ''],
    ['a one-function local module (what any first import costs)', '', imp('./bench/lib/stats.mjs')],
    ['@grpc/grpc-js', '', imp('@grpc/grpc-js')],
    ['@grpc/proto-loader (and protobufjs)', '', imp('@grpc/proto-loader')],
    [
      'parsing the 2 .proto files (loadSync + loadPackageDefinition)',
      LOADERS,
      `grpc.loadPackageDefinition(pl.loadSync(${PROTOS}, ${OPTIONS}))`,
    ],
    [
      'the same from a precompiled JSON descriptor (read + fromJSON)',
      LOADERS,
      `grpc.loadPackageDefinition(pl.fromJSON(JSON.parse((await import('node:fs')).readFileSync(${JSON.stringify(descriptor)}, 'utf8')), ${OPTIONS}))`,
    ],
    [
      'protobufjs/minimal (all that precompiled static code needs at run time)',
      '',
      imp('protobufjs/minimal.js'),
    ],
    ['zod', '', imp('zod')],
    ['config schemas (dist/config, zod already loaded)', imp('zod'), imp('./dist/config/load.js')],
    ['prom-client', '', imp('prom-client')],
    ['koffi', '', imp('koffi')],
    ['pino', '', imp('pino')],
    ['yaml', '', imp('yaml')],
    ['chokidar', '', imp('chokidar')],
    [
      'the plugin command, everything it imports (dist/cli/plugin-command.js)',
      '',
      imp('./dist/cli/plugin-command.js'),
    ],
  ];
}

function measure(setup, timed) {
  const script = `${setup}
    const m0 = process.memoryUsage(); const t0 = performance.now();
    ${timed};
    const t1 = performance.now(); const m1 = process.memoryUsage();
    console.log(JSON.stringify({ ms: t1 - t0, heapMiB: (m1.heapUsed - m0.heapUsed) / 2 ** 20, rssMiB: (m1.rss - m0.rss) / 2 ** 20, totalRssMiB: m1.rss / 2 ** 20 }));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
  });
  if (child.status !== 0) throw new Error(child.stderr);
  return JSON.parse(child.stdout);
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'vgpu-module-load-'));
try {
  const list = targets(writeDescriptor(dir));
  const results = list.map(() => []);
  for (let run = 0; run < Number(args.runs); run++) {
    for (const [i, [, setup, timed]] of list.entries()) results[i].push(measure(setup, timed));
  }
  const median = (rows, key) => summarize(rows.map((r) => r[key])).median;
  const lines = [
    '| module | import time (median) | V8 heap added | RSS added | process RSS after |',
    '|---|---|---|---|---|',
  ];
  list.forEach(([name], i) => {
    const r = results[i];
    lines.push(
      `| ${name} | ${median(r, 'ms').toFixed(1)} ms | ${median(r, 'heapMiB').toFixed(1)} MiB | ${median(r, 'rssMiB').toFixed(1)} MiB | ${median(r, 'totalRssMiB').toFixed(1)} MiB |`,
    );
  });
  writeFileSync(
    path.join(root, 'bench/results/module-load.json'),
    `${JSON.stringify({ node: process.version, results: Object.fromEntries(list.map(([name], i) => [name, results[i]])) }, null, 1)}\n`,
  );
  console.log(
    `Node ${process.version}, ${args.runs} cold imports each, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  console.log(lines.join('\n'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
