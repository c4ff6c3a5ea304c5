/**
 * `vgpu-agent monitor` as a process (the built CLI, the mock NVML through koffi, a generated host
 * /proc): /readyz from 503 to 200 across the first collection, per-container series scraped over
 * HTTP, process metrics, SIGTERM exiting 0, and bad flags or a missing NVML failing in one line.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MockNode } from '../../src/sim/mock-node.js';
import { killAll, logLine, runCli, runMonitorCli } from '../helpers/cli-process.js';
import { containerCgroup, FakeHostProc, holdStatRead, hostCgroup } from '../helpers/fake-proc.js';
import { twoGpuState } from '../helpers/mock-nvml.js';
import { monitorState } from '../helpers/monitor-state.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

const MIB = 1024 * 1024;
const GPU0 = 'GPU-11111111-1111-1111-1111-111111111111';
const GPU1 = 'GPU-22222222-2222-2222-2222-222222222222';
const POD_A = 'aaaaaaaa-0000-4000-8000-000000000001';
const POD_B = 'bbbbbbbb-0000-4000-8000-000000000002';
const CTR_A = 'a1'.repeat(32);
const CTR_B = 'b2'.repeat(32);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await killAll();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Pods A and B time-slice GPU 0 next to a host process; pod A also uses GPU 1. */
async function simulatedNode(): Promise<{ node: MockNode; proc: FakeHostProc }> {
  const state = monitorState(twoGpuState());
  state.devices[0]!.processes = [
    { pid: 101, usedMemoryMiB: 1024, smUtil: 35 },
    { pid: 102, usedMemoryMiB: 512, smUtil: 5 },
    { pid: 201, usedMemoryMiB: 2048, smUtil: 45 },
    { pid: 900, usedMemoryMiB: 256 },
  ];
  state.devices[1]!.processes = [{ pid: 103, usedMemoryMiB: 4096, smUtil: 80 }];
  // A new per-process sample every 100 ms, so each collection (every 200 ms) finds one newer than the
  // last: with one sample per state version, every collection after the first reads 0.
  for (const device of state.devices) device.processSamplePeriodMs = 100;
  const node = await MockNode.create(state);
  cleanups.push(() => node.remove());
  const proc = await FakeHostProc.create(node.hostPaths.procRoot);
  await proc.setPidNamespace(true);
  const a = containerCgroup({ podUid: POD_A, containerId: CTR_A });
  const b = containerCgroup({ podUid: POD_B, containerId: CTR_B, driver: 'cgroupfs', version: 1 });
  await proc.add(
    { pid: 101, cgroup: a },
    { pid: 102, cgroup: a },
    { pid: 103, cgroup: a },
    { pid: 201, cgroup: b },
    { pid: 900, cgroup: hostCgroup() },
  );
  return { node, proc };
}

const startMonitor = runMonitorCli;

describe('vgpu-agent monitor (process)', () => {
  it('serves per-container series once the first collection is done, and exits 0 on SIGTERM', async () => {
    const { node, proc } = await simulatedNode();
    const release = await holdStatRead(proc, 201); // the first collection waits on /proc/201/stat
    cleanups.push(release);
    const run = startMonitor(node);
    const serving = 'serving /metrics, /healthz, /readyz';
    await expect.poll(() => logLine(run, serving), { timeout: 20_000 }).toBeDefined();
    const port = logLine(run, serving)!.port as number;
    const get = (p: string) => fetch(`http://127.0.0.1:${port}${p}`);
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(503);

    await release();
    await expect.poll(async () => (await get('/readyz')).status).toBe(200);
    const samples = await scrape(port);
    const a0 = { pod_uid: POD_A, container_id: CTR_A, uuid: GPU0, gpu: 0 };
    const b0 = { pod_uid: POD_B, container_id: CTR_B, uuid: GPU0, gpu: 0 };
    expect(seriesValue(samples, 'vgpu_container_memory_used_bytes', a0)).toBe(1536 * MIB);
    expect(seriesValue(samples, 'vgpu_container_processes', a0)).toBe(2);
    // 35 % + 5 %, exposed as 0.4 (not 0.39999999999999997)
    expect(seriesValue(samples, 'vgpu_container_sm_utilization_ratio', a0)).toBe(0.4);
    expect(seriesValue(samples, 'vgpu_container_memory_used_bytes', b0)).toBe(2048 * MIB);
    expect(seriesValue(samples, 'vgpu_container_memory_used_bytes', { pod_uid: POD_A, uuid: GPU1 })).toBe(
      4096 * MIB,
    );
    expect(seriesValue(samples, 'vgpu_unallocated_memory_used_bytes', { kind: 'host', uuid: GPU0 })).toBe(
      256 * MIB,
    );
    expect(seriesValue(samples, 'vgpu_agent_host_pid_namespace')).toBe(1);
    expect(seriesValue(samples, 'vgpu_agent_processes_not_in_proc')).toBe(0);
    expect(seriesValue(samples, 'vgpu_gpu_healthy', { uuid: GPU1 })).toBe(1);
    expect(seriesValue(samples, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(seriesValue(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(seriesValue(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(logLine(run, serving)!.node).toBe('gpu-node-1');

    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    expect(logLine(run, 'stopped')).toBeDefined();
    expect(run.stderr).toBe('');
  });

  it.each([
    [['--interval', 'soon'], /--interval \(MONITOR_INTERVAL\): "soon" is not a duration/],
    [['--interval', '10ms'], /10ms is below the minimum of 100ms/],
    [['--metrics-address', 'localhost'], /--metrics-address \(METRICS_ADDRESS\): invalid listen address/],
    [['--metrics-address', ''], /--metrics-address \(METRICS_ADDRESS\) is empty/],
    [['--no-such-flag'], /Unknown option '--no-such-flag'/],
  ])('refuses %j with exit 2 and one line naming the flag', async (args, message) => {
    const run = runCli(['monitor', ...args], { NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1' });
    expect((await run.exited).code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toContain('Run `vgpu-agent monitor --help`.');
  });

  it('idles without NVML when FAIL_ON_INIT_ERROR=false, serving /healthz /readyz /metrics, and exits 0 on SIGTERM', async () => {
    const run = runCli(['monitor', '--metrics-address', '127.0.0.1:0'], {
      NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1',
      FAIL_ON_INIT_ERROR: 'false',
    });
    const idling = 'NVML unavailable and failOnInitError=false: idling';
    await expect.poll(() => logLine(run, idling), { timeout: 20_000 }).toBeDefined();
    const port = logLine(run, 'serving /metrics, /healthz, /readyz')?.port as number;
    const get = (p: string) => fetch(`http://127.0.0.1:${port}${p}`);
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    expect(await (await get('/metrics')).text()).toContain('vgpu_agent_idle{reason="nvml_unavailable"} 1');
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });

  it('exits 1 with one line naming the library when NVML cannot be loaded', async () => {
    const run = runCli(['monitor', '--metrics-address', '127.0.0.1:0'], {
      NVML_LIBRARY: '/nonexistent/libnvidia-ml.so.1',
    });
    expect((await run.exited).code).toBe(1);
    expect(run.stderr).toMatch(/^vgpu-agent monitor: [^\n]*\/nonexistent\/libnvidia-ml\.so\.1[^\n]*\n$/);
  });
});
