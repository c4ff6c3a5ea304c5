/**
 * The monitor's collection benchmarks, in a process of their own (run by monitor.mjs): the collector
 * core (dist/monitor) on the real koffi binding and the mock NVML, with a generated host /proc.
 * For 1 and 8 GPUs × 8, 64 and 256 containers of 2 processes each:
 *   - one collection (every device read, every process attributed to its container) vs the same NVML
 *     calls and /proc/<pid>/stat reads in a bare loop;
 *   - /metrics serialization of that snapshot vs a plain prom-client registry holding the same series;
 *   - the series count.
 * Then the split slices' directories (SplitDirectories.scan) for 64 and 256 directories on 8 GPUs, each
 * held by a container, with allocation.json and no HAMi-core region yet, vs the reads a scan cannot
 * avoid in a bare loop (the listing, a stat of each directory and of its allocation.json, an open of
 * its region file). Then RSS and heap (after a full GC: run with --expose-gc) of this process after
 * warm-up and after 1,000 collections with a scrape every 10 (8 GPUs × 64 containers).
 * Prints one JSON document on stdout.
 */
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Gauge, Registry } from 'prom-client';
import { buildInventory } from '../../dist/devices/inventory.js';
import { createLogger } from '../../dist/log.js';
import { Collector } from '../../dist/monitor/collector.js';
import { InMemoryContainers } from '../../dist/monitor/containers.js';
import { MonitorMetrics } from '../../dist/monitor/monitor-metrics.js';
import { HostProcesses } from '../../dist/monitor/proc.js';
import { registerSnapshotMetrics } from '../../dist/monitor/snapshot-metrics.js';
import { SplitDirectories } from '../../dist/monitor/split-directories.js';
import { ClockType } from '../../dist/nvml/codes.js';
import { Nvml } from '../../dist/nvml/nvml.js';
import { mockNvmlLibraryPath } from '../../dist/paths.js';
import { MockNode } from '../../dist/sim/mock-node.js';
import { figure } from '../lib/stats.mjs';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const MIB = 2 ** 20;
const PROCESSES_PER_CONTAINER = 2;
const PROC_CONCURRENCY = 8; // as the collector's /proc lookups

const hex = (n, width) => n.toString(16).padStart(width, '0');
const gpuUuid = (g) => `GPU-${hex(g, 8)}-0000-4000-8000-000000000000`;
const podUid = (c) => `${hex(c, 8)}-0000-4000-8000-000000000001`;
const containerId = (c) => hex(c, 8).repeat(8);

/** G A100s; container c (2 processes) on GPU c mod G, each process with memory and SM use. */
function state(gpus, containers) {
  const devices = Array.from({ length: gpus }, (_, g) => ({
    uuid: gpuUuid(g),
    name: 'NVIDIA A100-SXM4-80GB',
    pciBusId: `00000000:${hex(0x10 + g, 2).toUpperCase()}:00.0`,
    memoryTotalMiB: 81920,
    processSamplePeriodMs: 100,
    processes: [],
  }));
  for (let c = 0; c < containers; c++) {
    for (let p = 0; p < PROCESSES_PER_CONTAINER; p++) {
      devices[c % gpus].processes.push({
        pid: 10_000 + c * PROCESSES_PER_CONTAINER + p,
        usedMemoryMiB: 64,
        smUtil: 1 + (c % 50),
      });
    }
  }
  return { driverVersion: '580.95.05', devices };
}

/** /proc/<pid>/{stat,cgroup} for every process, in a kubelet systemd/containerd cgroup. */
async function writeProc(root, containers) {
  for (let c = 0; c < containers; c++) {
    const cgroup = `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${podUid(c).replaceAll('-', '_')}.slice/cri-containerd-${containerId(c)}.scope\n`;
    for (let p = 0; p < PROCESSES_PER_CONTAINER; p++) {
      const pid = 10_000 + c * PROCESSES_PER_CONTAINER + p;
      const dir = path.join(root, String(pid));
      await mkdir(dir, { recursive: true });
      const fields = Array.from({ length: 50 }, () => '0');
      fields[0] = 'S';
      fields[19] = String(5000 + pid); // field 22: start time
      await writeFile(path.join(dir, 'stat'), `${pid} (python3) ${fields.join(' ')}\n`);
      await writeFile(path.join(dir, 'cgroup'), cgroup);
    }
  }
}

function knownContainers(gpus, containers) {
  return Array.from({ length: containers }, (_, c) => ({
    podUid: podUid(c),
    containerId: containerId(c),
    names: { namespace: 'bench', pod: `pod-${c}`, container: 'main' },
    devices: [gpuUuid(c % gpus)],
  }));
}

/** The floor: the NVML calls a collection makes per GPU, and a stat read per process, in a plain loop. */
async function bareCollection(nvml, handles, procRoot) {
  const pids = [];
  for (const handle of handles) {
    nvml.memoryInfo(handle);
    nvml.utilization(handle);
    nvml.temperatureCelsius(handle);
    nvml.powerMilliwatts(handle);
    nvml.totalEnergyMillijoules(handle);
    nvml.clockMHz(handle, ClockType.SM);
    nvml.clockMHz(handle, ClockType.MEMORY);
    for (const list of ['compute', 'graphics', 'mps'])
      for (const p of nvml.runningProcesses(handle, list)) pids.push(p.pid);
    try {
      nvml.processUtilization(handle, 0);
    } catch {
      // NOT_FOUND: no newer samples
    }
  }
  const queue = [...new Set(pids)];
  const worker = async () => {
    for (let pid = queue.pop(); pid !== undefined; pid = queue.pop())
      await readFile(path.join(procRoot, String(pid), 'stat'), 'utf8');
  };
  await Promise.all(Array.from({ length: PROC_CONCURRENCY }, worker));
}

/** A registry of plain gauges holding the same series as `registry` (the serialization floor). */
async function plainCopy(registry) {
  const copy = new Registry();
  for (const family of await registry.getMetricsAsJSON()) {
    const labelNames = [...new Set(family.values.flatMap((v) => Object.keys(v.labels)))];
    const gauge = new Gauge({ name: family.name, help: family.help, labelNames, registers: [copy] });
    for (const v of family.values)
      if (!v.metricName || v.metricName === family.name) gauge.set(v.labels, v.value);
  }
  return copy;
}

async function timeEach(times, fn) {
  const samples = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return samples;
}

async function openMonitor(gpus, containers) {
  const node = await MockNode.create(state(gpus, containers));
  node.exportEnv();
  const nvml = await Nvml.open({ libraryPath: mockNvmlLibraryPath() });
  await writeProc(node.hostPaths.procRoot, containers);
  const inventory = await buildInventory(nvml, node.hostPaths);
  const registry = new Registry();
  const known = new InMemoryContainers(knownContainers(gpus, containers));
  const collector = new Collector({
    nvml,
    inventory,
    hostProcesses: new HostProcesses(node.hostPaths.procRoot),
    namer: known,
    allocations: known,
    logger: createLogger({ level: 'silent' }),
    hooks: new MonitorMetrics(registry),
  });
  registerSnapshotMetrics(registry, () => collector.latest);
  const handles = inventory.gpus.map((g) => nvml.deviceByUuid(g.uuid));
  return {
    node,
    nvml,
    collector,
    registry,
    handles,
    async close() {
      await collector.stop();
      nvml.shutdown();
      await node.remove();
    },
  };
}

async function collectionFigures(gpus, containers, times) {
  const m = await openMonitor(gpus, containers);
  try {
    for (let i = 0; i < 5; i++) {
      await m.collector.collectOnce();
      await bareCollection(m.nvml, m.handles, m.node.hostPaths.procRoot);
    }
    const agent = [];
    const floor = [];
    for (let i = 0; i < times; i++) {
      agent.push(...(await timeEach(1, () => m.collector.collectOnce())));
      floor.push(...(await timeEach(1, () => bareCollection(m.nvml, m.handles, m.node.hostPaths.procRoot))));
    }
    const text = await m.registry.metrics();
    const series = text.split('\n').filter((l) => l && !l.startsWith('#')).length;
    const plain = await plainCopy(m.registry);
    const scrape = await timeEach(times, () => m.registry.metrics());
    const plainScrape = await timeEach(times, () => plain.metrics());
    const shape = `${gpus} GPU${gpus > 1 ? 's' : ''} × ${containers} containers × 2 processes`;
    return [
      figure('monitor', `one collection, ${shape}`, 'ms', agent, 'same NVML + /proc reads, bare loop', floor),
      figure(
        'monitor',
        `/metrics serialization, ${shape} (${series} series, ${Math.round(text.length / 1024)} KiB)`,
        'ms',
        scrape,
        'plain prom-client gauges, same series',
        plainScrape,
        {
          series,
          bytes: text.length,
        },
      ),
    ];
  } finally {
    await m.close();
  }
}

/** `count` split directories on `gpus` GPUs (slice n of GPU g), each held by a container; the assignments. */
async function writeSplitDirectories(containersDir, gpus, count) {
  const assignments = [];
  for (let i = 0; i < count; i++) {
    const uuid = gpuUuid(i % gpus);
    const deviceIds = [`${uuid}::${Math.floor(i / gpus)}`];
    const dir = path.join(containersDir, `alloc-${hex(i, 8)}`);
    await mkdir(dir, { recursive: true });
    const allocation = {
      resource: 'nvidia.com/gpu',
      deviceIds,
      allocatedAt: new Date().toISOString(),
      limits: [{ uuid, memoryMiB: 4096, corePercent: 25 }],
    };
    await writeFile(path.join(dir, 'allocation.json'), `${JSON.stringify(allocation)}\n`);
    assignments.push({
      names: { namespace: 'bench', pod: `pod-${i}`, container: 'main' },
      resource: 'nvidia.com/gpu',
      deviceIds,
    });
  }
  return assignments;
}

/** The floor: what a scan must read anyway (listing, stats, region open), 8 directories at a time. */
async function bareSplitScan(containersDir) {
  const entries = await readdir(containersDir, { withFileTypes: true });
  const queue = entries.filter((e) => e.isDirectory()).map((e) => e.name);
  const worker = async () => {
    for (let name = queue.pop(); name !== undefined; name = queue.pop()) {
      const dir = path.join(containersDir, name);
      await stat(dir);
      await stat(path.join(dir, 'allocation.json'));
      await open(path.join(dir, `${name}.cache`)).then(
        (handle) => handle.close(),
        () => undefined,
      );
    }
  };
  await Promise.all(Array.from({ length: PROC_CONCURRENCY }, worker));
}

async function splitFigures(gpus, count, times) {
  const root = await mkdtemp(path.join(os.tmpdir(), 'vgpu-bench-split-'));
  try {
    const hookPath = path.join(root, 'vgpu');
    const containersDir = path.join(hookPath, 'containers');
    const list = await writeSplitDirectories(containersDir, gpus, count);
    await mkdir(path.join(root, 'proc'));
    const splits = new SplitDirectories({
      hookPath,
      assignments: { assignments: async () => list },
      gpus: Array.from({ length: gpus }, (_, g) => ({ uuid: gpuUuid(g), index: g })),
      hostProc: path.join(root, 'proc'),
      logger: createLogger({ level: 'silent' }),
    });
    for (let i = 0; i < 5; i++) {
      await splits.scan();
      await bareSplitScan(containersDir);
    }
    const agent = [];
    const floor = [];
    for (let i = 0; i < times; i++) {
      agent.push(...(await timeEach(1, () => splits.scan())));
      floor.push(...(await timeEach(1, () => bareSplitScan(containersDir))));
    }
    return [
      figure(
        'monitor',
        `split directories scan, ${gpus} GPUs × ${count} directories (allocation.json, no region yet)`,
        'ms',
        agent,
        'listing + stats + region open, bare loop',
        floor,
      ),
    ];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function memoryFigures(collections) {
  const m = await openMonitor(8, 64);
  try {
    for (let i = 0; i < 50; i++) await m.collector.collectOnce();
    await m.registry.metrics();
    globalThis.gc?.();
    const warm = process.memoryUsage();
    for (let i = 0; i < collections; i++) {
      await m.collector.collectOnce();
      if (i % 10 === 0) await m.registry.metrics(); // a scrape every 10 collections
    }
    globalThis.gc?.();
    const after = process.memoryUsage();
    return [
      figure('monitor', 'RSS of a monitor process, after warm-up (8 GPUs × 64 containers)', 'MiB', [
        warm.rss / MIB,
      ]),
      figure('monitor', `RSS after ${collections} more collections`, 'MiB', [after.rss / MIB]),
      figure('monitor', 'V8 heap used after a full GC, after warm-up', 'MiB', [warm.heapUsed / MIB]),
      figure('monitor', `V8 heap used after a full GC, after ${collections} more collections`, 'MiB', [
        after.heapUsed / MIB,
      ]),
    ];
  } finally {
    await m.close();
  }
}

const times = args.quick ? 15 : 40;
const figures = [];
for (const gpus of [1, 8]) {
  for (const containers of [8, 64, 256]) figures.push(...(await collectionFigures(gpus, containers, times)));
}
for (const count of [64, 256]) figures.push(...(await splitFigures(8, count, times)));
figures.push(...(await memoryFigures(args.quick ? 200 : 1000)));
process.stdout.write(`${JSON.stringify(figures)}\n`);
