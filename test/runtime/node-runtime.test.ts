/**
 * The node runtime on the mock NVML (real koffi binding): what every component starts from. The
 * registry carries build info, NVML errors and process metrics before any component adds its own;
 * the status endpoint serves it; a component that fails to start, and stop(), shut NVML down.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { NvmlError } from '../../src/nvml/errors.js';
import { mockNvmlLibraryPath } from '../../src/paths.js';
import { NodeRuntime } from '../../src/runtime/node-runtime.js';
import { MockNode } from '../../src/sim/mock-node.js';
import { twoGpuState } from '../helpers/mock-nvml.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openRuntime(): Promise<NodeRuntime> {
  const node = await MockNode.create(twoGpuState());
  node.exportEnv();
  cleanups.push(() => node.remove());
  const runtime = await NodeRuntime.open({
    logger: createLogger({ level: 'silent' }),
    nvmlLibrary: mockNvmlLibraryPath(),
    hostPaths: node.hostPaths,
    agentVersion: '1.2.3',
  });
  cleanups.push(() => runtime.stop());
  return runtime;
}

/** An NVML call that fails in the mock: no GPU at this index. */
function failingNvmlCall(runtime: NodeRuntime): unknown {
  try {
    return runtime.nvml.deviceByIndex(99);
  } catch (err) {
    return err;
  }
}

describe('NodeRuntime', () => {
  it('reads the inventory once and carries build info, NVML errors and process metrics', async () => {
    const runtime = await openRuntime();
    expect(runtime.inventory.gpus.map((g) => g.uuid)).toEqual(twoGpuState().devices.map((d) => d.uuid));
    expect(failingNvmlCall(runtime)).toBeInstanceOf(NvmlError);
    const text = await runtime.metrics.registry.metrics();
    expect(text).toContain('vgpu_agent_build_info{version="1.2.3",driver_version="580.95.05"} 1');
    expect(text).toMatch(
      /^vgpu_agent_nvml_errors_total\{function="nvmlDeviceGetHandleByIndex_v2",code="[A-Z_]+"\} 1$/m,
    );
    for (const family of [
      'process_resident_memory_bytes',
      'process_cpu_seconds_total',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
    ])
      expect(text).toContain(`# HELP ${family} `);
  });

  it('serves the registry and the component readiness on the status endpoint', async () => {
    const runtime = await openRuntime();
    let reason: string | null = 'nvidia.com/gpu: not registered with kubelet';
    await runtime.serveStatus('127.0.0.1:0', () => reason);
    const get = (p: string) => fetch(`http://127.0.0.1:${runtime.statusPort}${p}`);
    expect((await get('/healthz')).status).toBe(200);
    const notReady = await get('/readyz');
    expect([notReady.status, await notReady.text()]).toEqual([503, `${reason}\n`]);
    reason = null;
    expect((await get('/readyz')).status).toBe(200);
    expect(await (await get('/metrics')).text()).toContain('# HELP process_resident_memory_bytes ');
  });

  it('shuts NVML down when a component fails to start, and stops components before NVML', async () => {
    const runtime = await openRuntime();
    await expect(runtime.start(() => Promise.reject(new Error('config does not apply')))).rejects.toThrow(
      'config does not apply',
    );
    expect(() => runtime.nvml.deviceCount()).toThrow(/called after shutdown/);

    const other = await openRuntime();
    const order: string[] = [];
    await other.start(async () => ({
      stop: async () => {
        order.push(`component stopped, NVML answers: ${other.nvml.deviceCount()} GPUs`);
      },
    }));
    await other.stop();
    expect(order).toEqual(['component stopped, NVML answers: 2 GPUs']);
    expect(() => other.nvml.deviceCount()).toThrow(/called after shutdown/);
  });
});
