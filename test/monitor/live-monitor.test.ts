/**
 * The monitor component as the CLI starts it (LiveMonitor: node runtime, collector, health, status
 * endpoint), through the real koffi binding on the mock NVML and a generated host /proc, read over
 * HTTP: readiness after the first collection, Xids driven through the mock's event queue, and the
 * hostPID check's warning and gauge.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { InMemoryContainers } from '../../src/monitor/containers.js';
import { LiveMonitor } from '../../src/monitor/live-monitor.js';
import { mockNvmlLibraryPath } from '../../src/paths.js';
import { MockNode, type MockNvmlState } from '../../src/sim/mock-node.js';
import { containerCgroup, FakeHostProc, holdStatRead } from '../helpers/fake-proc.js';
import { twoGpuState } from '../helpers/mock-nvml.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';
const POD = 'aaaaaaaa-0000-4000-8000-000000000001';
const CTR = 'a1'.repeat(32);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Started {
  node: MockNode;
  proc: FakeHostProc;
  monitor: LiveMonitor;
  logs: Record<string, unknown>[];
}

/** A mock node and its generated /proc, prepared by `prepare` before the monitor starts. */
async function startMonitor(
  state: string | MockNvmlState,
  prepare: (node: MockNode, proc: FakeHostProc) => Promise<void> = async () => {},
): Promise<Started> {
  const node = await MockNode.create(state);
  cleanups.push(() => node.remove());
  node.exportEnv();
  const proc = await FakeHostProc.create(node.hostPaths.procRoot);
  await prepare(node, proc);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const monitor = await LiveMonitor.start({
    logger: createLogger({ level: 'info', destination: sink }),
    nvmlLibrary: mockNvmlLibraryPath(),
    hostPaths: node.hostPaths,
    agentVersion: 'test',
    metricsAddress: '127.0.0.1:0',
    intervalMs: 100,
    env: {},
    tuning: { healthProbeIntervalMs: 50, eventWaitTimeoutMs: 50 },
    openSources: async () => {
      const names = new InMemoryContainers([
        { podUid: POD, containerId: CTR, names: { namespace: 'ml', pod: 'train-0', container: 'main' } },
      ]);
      return { namer: names, allocations: names };
    },
  });
  cleanups.push(() => monitor.stop());
  return { node, proc, monitor, logs };
}

function gpuWithContainerProcess(): MockNvmlState {
  const state = twoGpuState();
  state.devices[0]!.processes = [{ pid: 101, usedMemoryMiB: 1024, smUtil: 30 }];
  return state;
}

describe('LiveMonitor', () => {
  it('answers /readyz 503 until the first collection is done, then 200 with its series', async () => {
    let release: (() => Promise<void>) | undefined;
    const { monitor } = await startMonitor(gpuWithContainerProcess(), async (_node, proc) => {
      await proc.add({ pid: 101, cgroup: containerCgroup({ podUid: POD, containerId: CTR }) });
      release = await holdStatRead(proc, 101); // the first collection waits on /proc/101/stat
    });
    cleanups.push(() => release!());
    const readyz = () => fetch(`http://127.0.0.1:${monitor.port}/readyz`);
    const notReady = await readyz();
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toBe('no collection done yet\n');
    expect(seriesValue(await scrape(monitor.port), 'vgpu_container_memory_used_bytes')).toBeUndefined();
    // Ticks that come while the first collection waits are skipped and counted.
    await expect
      .poll(async () => seriesValue(await scrape(monitor.port), 'vgpu_agent_collection_overruns_total'))
      .toBeGreaterThan(0);

    await release!();
    await expect.poll(async () => (await readyz()).status).toBe(200);
    const samples = await scrape(monitor.port);
    const train = { namespace: 'ml', pod: 'train-0', container: 'main', uuid: GPU0, gpu: 0 };
    expect(seriesValue(samples, 'vgpu_container_memory_used_bytes', train)).toBe(1024 * 1024 * 1024);
    expect(seriesValue(samples, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(seriesValue(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });

  it('counts Xids by GPU and xid and marks health by the plugin’s rules', async () => {
    const { node, monitor } = await startMonitor(twoGpuState());
    await node.injectEvent({ uuid: GPU1, xid: 13 }); // an application error: counted, still healthy
    await node.injectEvent({ uuid: GPU1, xid: 79 });
    const xid = (n: number) => ({ uuid: GPU1, gpu: 1, xid: n });
    await expect
      .poll(async () => seriesValue(await scrape(monitor.port), 'vgpu_gpu_xid_errors_total', xid(79)))
      .toBe(1);
    const samples = await scrape(monitor.port);
    expect(seriesValue(samples, 'vgpu_gpu_xid_errors_total', xid(13))).toBe(1);
    expect(seriesValue(samples, 'vgpu_gpu_healthy', { uuid: GPU1 })).toBe(0);
    expect(seriesValue(samples, 'vgpu_gpu_healthy', { uuid: GPU0 })).toBe(1);
    expect(seriesValue(samples, 'vgpu_gpu_xid_errors_total', { uuid: GPU0 })).toBeUndefined();
  });

  it('marks one MIG device for an Xid naming its instance, and every one for an Xid on the GPU', async () => {
    const { node, monitor } = await startMonitor('mixed-mig');
    const migGpu = node.state.devices.find((d) => d.migEnabled)!;
    const [first, second] = migGpu.migDevices!;
    const health = async (gi: number) =>
      seriesValue(await scrape(monitor.port), 'vgpu_gpu_healthy', { uuid: migGpu.uuid, gpu_instance_id: gi });
    await node.injectEvent({ uuid: migGpu.uuid, xid: 48, giId: first!.giId, ciId: first!.ciId });
    await expect.poll(() => health(first!.giId)).toBe(0);
    expect(await health(second!.giId)).toBe(1);

    await node.injectEvent({ uuid: migGpu.uuid, xid: 79 });
    await expect.poll(() => health(second!.giId)).toBe(0);
  });

  it('warns once, with the fix, and exports 0 when it is not in the host’s PID namespace', async () => {
    const { monitor, logs } = await startMonitor(twoGpuState(), (_node, proc) => proc.setPidNamespace(false));
    const warnings = logs.filter((l) => String(l.msg).startsWith('the monitor is not in the host'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain('535.113');
    expect(warnings[0]!.msg).toContain('hostPID: true');
    expect(seriesValue(await scrape(monitor.port), 'vgpu_agent_host_pid_namespace')).toBe(0);
  });

  it('exports 1 and warns about nothing in the host’s PID namespace', async () => {
    const { monitor, logs } = await startMonitor(twoGpuState(), (_node, proc) => proc.setPidNamespace(true));
    expect(logs.filter((l) => l.level === 40)).toEqual([]);
    expect(seriesValue(await scrape(monitor.port), 'vgpu_agent_host_pid_namespace')).toBe(1);
  });
});
