/**
 * The demo's monitor: `vgpu-agent monitor` on the same simulated node as the plugin (its own NVML
 * handle on the mock, its own /metrics), and the step that gives it simulated containers and shows
 * what Prometheus scrapes, per container. The containers' processes go into the mock NVML state,
 * their cgroups into a generated host /proc, and their names and allocations into an
 * InMemoryContainers (the pod watch and PodResources are not wired into the demo).
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Inventory } from '../devices/inventory-types.js';
import { type ContainerNames, InMemoryContainers } from '../monitor/containers.js';
import { LiveMonitor } from '../monitor/live-monitor.js';
import type { DemoContext, DemoStep } from './demo-steps.js';
import { describeDevice } from './demo-view.js';
import { containerCgroup, FakeHostProc, hostCgroup } from './fake-proc.js';
import type { MockNode } from './mock-node.js';
import { type MonitorMockProcess, monitorState } from './monitor-state.js';

export interface DemoMonitor {
  monitor: LiveMonitor;
  proc: FakeHostProc;
  containers: InMemoryContainers;
  url: string;
}

/** The monitor's default port on loopback; another one when it is taken. */
const PREFERRED_ADDRESS = '127.0.0.1:9394';
const INTERVAL_MS = 1000;
/** The mock driver samples per-process utilisation this often: every collection finds new samples. */
const SAMPLE_PERIOD_MS = 250;
const WAIT_MS = 10_000;
const FIRST_PID = 4100;
/** Families shown in the transcript (vgpu_gpu_healthy only where 0). */
const SHOWN_FAMILIES = [
  'vgpu_container_memory_used_bytes',
  'vgpu_container_sm_utilization_ratio',
  'vgpu_unallocated_memory_used_bytes',
  'vgpu_gpu_xid_errors_total',
];

/** Starts the monitor on the node, with a generated host /proc in the host's PID namespace. */
export async function startDemoMonitor(
  node: MockNode,
  logger: Logger,
  agentVersion: string,
): Promise<DemoMonitor> {
  const proc = await FakeHostProc.create(node.hostPaths.procRoot);
  await proc.setPidNamespace(true); // as with hostPID: true
  const containers = new InMemoryContainers();
  const start = (metricsAddress: string) =>
    LiveMonitor.start({
      logger,
      nvmlLibrary: node.libraryPath,
      hostPaths: node.hostPaths,
      agentVersion,
      metricsAddress,
      intervalMs: INTERVAL_MS,
      env: {},
      openSources: async () => ({ namer: containers, allocations: containers }),
    });
  const monitor = await start(PREFERRED_ADDRESS).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') return start('127.0.0.1:0');
    throw err;
  });
  return { monitor, proc, containers, url: `http://127.0.0.1:${monitor.port}/metrics` };
}

interface SimulatedContainer {
  names: ContainerNames;
  /** the GPU or MIG device its processes use */
  device: string;
  /** what kubelet allocated it; empty: it asked for no GPU (and its image sets NVIDIA_VISIBLE_DEVICES=all) */
  allocated: string[];
  processes: { usedMemoryMiB: number; smUtil?: number }[];
}

/** Two containers time-slicing a GPU, one using a GPU it was not allocated, one on a MIG device. */
function demoWorkload(inventory: Inventory): { containers: SimulatedContainer[]; hostDevice: string } {
  const whole = inventory.gpus.filter((g) => !g.migEnabled);
  const mig = inventory.gpus.flatMap((g) => (g.migEnabled ? g.migDevices : []));
  const shared = whole[0]!.uuid;
  const escaped = (whole[1] ?? whole[0]!).uuid;
  const containers: SimulatedContainer[] = [
    {
      names: { namespace: 'ml', pod: 'train-a', container: 'main' },
      device: shared,
      allocated: [shared],
      processes: [
        { usedMemoryMiB: 6144, smUtil: 35 },
        { usedMemoryMiB: 2048, smUtil: 5 },
      ],
    },
    {
      names: { namespace: 'web', pod: 'infer-b', container: 'server' },
      device: shared,
      allocated: [shared],
      processes: [{ usedMemoryMiB: 4096, smUtil: 20 }],
    },
    {
      names: { namespace: 'research', pod: 'notebook-c', container: 'jupyter' },
      device: escaped,
      allocated: [],
      processes: [{ usedMemoryMiB: 3072, smUtil: 15 }],
    },
  ];
  if (mig[0]) {
    containers.push({
      names: { namespace: 'ml', pod: 'eval-d', container: 'worker' },
      device: mig[0].uuid,
      allocated: [mig[0].uuid],
      processes: [{ usedMemoryMiB: 1024 }],
    });
  }
  return { containers, hostDevice: whole.at(-1)!.uuid };
}

export const monitorStep: DemoStep = {
  name: 'monitor',
  heading: (ctx) =>
    `The monitor on the same node: GPU use per container, as Prometheus scrapes it from ${ctx.monitor.url}`,
  skipReason: (ctx) =>
    ctx.plugin.runtime.inventory.gpus.some((g) => !g.migEnabled) ? null : 'every GPU here is in MIG mode',
  run: async (ctx) => {
    const inventory = ctx.plugin.runtime.inventory;
    const workload = demoWorkload(inventory);
    await startWorkload(ctx, workload.containers, workload.hostDevice);
    for (const c of workload.containers) ctx.say(`   ${describeContainer(inventory, c)}`);
    ctx.say(`   a host process (no pod) on ${describeDevice(inventory, workload.hostDevice)}`);
    ctx.say('   (processes in the mock NVML, cgroups in a generated host /proc, names declared in memory)');
    const text = await scrapeWhen(ctx, workload.containers);
    ctx.say('   What Prometheus stores from the scrape, for these containers (and the Xid above):');
    for (const line of shownLines(text)) ctx.say(`     ${line}`);
    ctx.say(`   (curl -s ${ctx.monitor.url} while the demo runs: every series, with HELP and TYPE)`);
  },
};

function describeContainer(inventory: Inventory, c: SimulatedContainer): string {
  const { namespace, pod, container } = c.names;
  const where = describeDevice(inventory, c.device);
  const allocation =
    c.allocated.length === 0 ? 'allocated no GPU: its use is unallocated' : `allocated ${where}`;
  const processes = `${c.processes.length} process${c.processes.length === 1 ? '' : 'es'}`;
  return `${`${namespace}/${pod}/${container}`.padEnd(28)} on ${where}, ${processes}, ${allocation}`;
}

/** Declares the containers and a host process, then puts their processes on the mock's devices. */
async function startWorkload(
  ctx: DemoContext,
  containers: readonly SimulatedContainer[],
  hostDevice: string,
): Promise<void> {
  const byDevice = new Map<string, MonitorMockProcess[]>();
  const place = (device: string, process: MonitorMockProcess) =>
    byDevice.set(device, [...(byDevice.get(device) ?? []), process]);
  let pid = FIRST_PID;
  for (const c of containers) {
    const key = `${c.names.namespace}/${c.names.pod}/${c.names.container}`;
    const podUid = podUidOf(`${c.names.namespace}/${c.names.pod}`);
    const containerId = createHash('sha256').update(key).digest('hex');
    ctx.monitor.containers.add({ podUid, containerId, names: c.names, devices: c.allocated });
    for (const p of c.processes) {
      await ctx.monitor.proc.add({ pid, cgroup: containerCgroup({ podUid, containerId }) });
      place(c.device, { pid: pid++, ...p });
    }
  }
  await ctx.monitor.proc.add({ pid, cgroup: hostCgroup(), comm: 'gpu-burn' });
  place(hostDevice, { pid, usedMemoryMiB: 512, smUtil: 10 });
  await ctx.node.update((raw) => {
    for (const device of monitorState(raw).devices) {
      device.processSamplePeriodMs = SAMPLE_PERIOD_MS;
      device.processes = byDevice.get(device.uuid) ?? device.processes;
      for (const m of device.migDevices ?? []) m.processes = byDevice.get(m.uuid) ?? m.processes;
    }
  });
}

/** A stable UUID-shaped pod UID for a simulated pod. */
function podUidOf(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** /metrics once it has every container (and the Xid the transcript injected, when there was one). */
async function scrapeWhen(ctx: DemoContext, containers: readonly SimulatedContainer[]): Promise<string> {
  const xidInjected = (ctx.node.state.events ?? []).some((e) => e.xid !== undefined);
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const response = await fetch(ctx.monitor.url, { signal: AbortSignal.timeout(WAIT_MS) });
    const text = await response.text();
    const complete =
      containers.every((c) => text.includes(`pod="${c.names.pod}"`)) &&
      (!xidInjected || text.includes('vgpu_gpu_xid_errors_total{'));
    if (complete) return text;
    if (Date.now() > deadline) {
      throw new Error(`the monitor's /metrics did not show every simulated container within ${WAIT_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function shownLines(text: string): string[] {
  return text.split('\n').filter((line) => {
    const name = line.split('{')[0]!;
    if (name === 'vgpu_gpu_healthy') return line.endsWith(' 0');
    return SHOWN_FAMILIES.includes(name);
  });
}
