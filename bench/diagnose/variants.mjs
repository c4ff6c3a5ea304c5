#!/usr/bin/env node
/**
 * What the candidate cuts would save, tried without changing the agent's code:
 *   start-up (process start → registered, the start-up suite's measure), for
 *     - the build as is, and with V8's compile cache (NODE_COMPILE_CACHE; Node ≥ 22.1; warmed by one
 *       start first), on the Node running this script;
 *     - a single-file bundle of dist/cli/main.js (rolldown, which vitest brings; koffi stays outside
 *       for its native addon), written to dist/bundle/ (git-ignored), with and without the cache;
 *   footprint (RSS and V8 heap after warm-up and after 10,000 Allocates; Allocate p50 at
 *   concurrency 1, to show what a flag costs in speed), for V8 heap flags.
 * Variants interleave; medians are printed as Markdown tables. Needs `npm run build`.
 *   node bench/diagnose/variants.mjs [--trials 8] [--skip-bundle] [--skip-memory]
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mockNvmlLibraryPath } from '../../dist/paths.js';
import { KubeletSimulator } from '../../dist/sim/kubelet.js';
import { MockNode } from '../../dist/sim/mock-node.js';
import { agentArgs, RESOURCE, spawnPlugin, startRig, stopProcess } from '../lib/rig.mjs';
import { summarize } from '../lib/stats.mjs';
import { measureCalls, requests } from '../suites/latency.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUNDLE = path.join(root, 'dist/bundle/main.mjs');
const { values: args } = parseArgs({
  options: {
    trials: { type: 'string', default: '8' },
    'skip-bundle': { type: 'boolean', default: false },
    'skip-memory': { type: 'boolean', default: false },
  },
});
const MIB = 2 ** 20;
const [major, minor] = process.versions.node.split('.').map(Number);
const hasCompileCache = major > 22 || (major === 22 && minor >= 1);

async function bundle() {
  const { build } = await import('rolldown');
  await build({
    input: path.join(root, 'dist/cli/main.js'),
    platform: 'node',
    external: [/^koffi($|\/)/],
    logLevel: 'silent',
    output: { file: BUNDLE, format: 'esm', codeSplitting: false },
  });
}

async function timeToRegistered(kubelet, args, env) {
  const registered = new Promise((resolve) => {
    const on = (r) => {
      if (r.resourceName !== RESOURCE) return;
      kubelet.off('register', on);
      resolve(performance.now());
    };
    kubelet.on('register', on);
  });
  const t0 = performance.now();
  const proc = spawnPlugin(args, env);
  const t1 = await registered;
  await stopProcess(proc);
  return t1 - t0;
}

async function startupVariants(variants) {
  const node = await MockNode.create('dgx-a100');
  const pluginDir = path.join(node.dir, 'device-plugins');
  await mkdir(pluginDir, { recursive: true });
  const kubelet = await KubeletSimulator.start({ dir: pluginDir });
  const base = {
    PATH: process.env.PATH,
    MOCK_NVML_STATE: node.statePath,
    NVML_LIBRARY: mockNvmlLibraryPath(),
  };
  const samples = variants.map(() => []);
  try {
    for (const v of variants)
      if (v.env.NODE_COMPILE_CACHE)
        await timeToRegistered(kubelet, agentArgs(node, pluginDir, undefined, v.cli), { ...base, ...v.env });
    for (let i = 0; i < Number(args.trials); i++) {
      for (const [k, v] of variants.entries())
        samples[k].push(
          await timeToRegistered(kubelet, agentArgs(node, pluginDir, undefined, v.cli), {
            ...base,
            ...v.env,
          }),
        );
    }
  } finally {
    await kubelet.stop();
    await node.remove();
  }
  const lines = ['| variant | start → registered, median / p99 |', '|---|---|'];
  variants.forEach((v, k) => {
    const s = summarize(samples[k]);
    lines.push(`| ${v.name} | ${s.median.toFixed(0)} / ${s.p99.toFixed(0)} ms |`);
  });
  return lines.join('\n');
}

async function memoryOf(flags) {
  const rig = await startRig('agent', { probe: true, nodeFlags: flags });
  try {
    const bodies = requests(rig.uuids);
    await measureCalls(rig.connect(), 'Allocate', bodies.Allocate, 1, 500);
    await measureCalls(rig.connect(), 'GetPreferredAllocation', bodies.GetPreferredAllocation, 1, 500);
    await sleep(1000);
    const warm = await rig.probe();
    const p50 = summarize(await measureCalls(rig.connect(), 'Allocate', bodies.Allocate, 1, 1000)).median;
    await measureCalls(rig.connect(), 'Allocate', bodies.Allocate, 64, 10_000);
    await sleep(1000);
    const loaded = await rig.probe();
    return {
      warmRss: warm.rss / MIB,
      warmHeap: warm.heapUsed / MIB,
      loadedRss: loaded.rss / MIB,
      loadedHeap: loaded.heapUsed / MIB,
      p50,
    };
  } finally {
    await rig.stop();
  }
}

async function memoryVariants(variants, rounds = 2) {
  const results = variants.map(() => []);
  for (let r = 0; r < rounds; r++)
    for (const [k, v] of variants.entries()) results[k].push(await memoryOf(v.flags));
  const med = (list, key) => summarize(list.map((x) => x[key])).median;
  const lines = [
    '| node flags | RSS after warm-up | heap used | RSS after 10,000 Allocates | heap used | Allocate p50 (c=1) |',
    '|---|---|---|---|---|---|',
  ];
  variants.forEach((v, k) => {
    const l = results[k];
    lines.push(
      `| ${v.name} | ${med(l, 'warmRss').toFixed(1)} MiB | ${med(l, 'warmHeap').toFixed(1)} MiB | ${med(l, 'loadedRss').toFixed(1)} MiB | ${med(l, 'loadedHeap').toFixed(1)} MiB | ${med(l, 'p50').toFixed(0)} µs |`,
    );
  });
  return lines.join('\n');
}

const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'vgpu-compile-cache-'));
try {
  console.log(
    `Node ${process.version}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  const variants = [{ name: 'dist/ as built (tsc)', env: {} }];
  if (hasCompileCache)
    variants.push({
      name: '… with NODE_COMPILE_CACHE',
      env: { NODE_COMPILE_CACHE: path.join(cacheDir, 'dist') },
    });
  if (!args['skip-bundle']) {
    mkdirSync(path.dirname(BUNDLE), { recursive: true });
    await bundle();
    if (existsSync(BUNDLE)) {
      variants.push({ name: 'single-file bundle (rolldown, koffi external)', env: {}, cli: BUNDLE });
      if (hasCompileCache)
        variants.push({
          name: '… with NODE_COMPILE_CACHE',
          env: { NODE_COMPILE_CACHE: path.join(cacheDir, 'bundle') },
          cli: BUNDLE,
        });
    }
  }
  console.log(`${await startupVariants(variants)}\n`);
  if (!args['skip-memory']) {
    console.log(
      await memoryVariants([
        { name: '(defaults)', flags: [] },
        { name: '--max-semi-space-size=1', flags: ['--max-semi-space-size=1'] },
        {
          name: '--max-semi-space-size=1 --max-old-space-size=64',
          flags: ['--max-semi-space-size=1', '--max-old-space-size=64'],
        },
        { name: '--optimize-for-size', flags: ['--optimize-for-size'] },
        { name: '--lite-mode', flags: ['--lite-mode'] },
      ]),
    );
  }
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}
