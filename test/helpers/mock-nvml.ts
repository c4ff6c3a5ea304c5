/** Opens the real koffi binding on the mock NVML library with a private, editable node state. */
import { Nvml, type NvmlOptions } from '../../src/nvml/nvml.js';
import { mockNvmlLibraryPath } from '../../src/paths.js';
import { MockNode, type MockNvmlState } from '../../src/sim/mock-node.js';

export interface OpenedMock {
  node: MockNode;
  nvml: Nvml;
  close(): Promise<void>;
}

export async function openMockNvml(
  from: string | MockNvmlState,
  options: { variant?: 'current' | 'legacy' } & Omit<NvmlOptions, 'libraryPath'> = {},
): Promise<OpenedMock> {
  const node = await MockNode.create(from);
  node.exportEnv();
  const nvml = await Nvml.open({ ...options, libraryPath: mockNvmlLibraryPath(options.variant) });
  return {
    node,
    nvml,
    async close() {
      nvml.shutdown();
      await node.remove();
    },
  };
}

/** A small two-GPU node whose every value a test can assert exactly. */
export function twoGpuState(): MockNvmlState {
  return {
    driverVersion: '580.95.05',
    cudaDriverVersion: 13000,
    nvmlVersion: '13.580.95.05',
    devices: [
      {
        uuid: 'GPU-11111111-1111-1111-1111-111111111111',
        name: 'NVIDIA A100-SXM4-80GB',
        minor: 0,
        pciBusId: '00000000:07:00.0',
        memoryTotalMiB: 81920,
        computeCapability: [8, 0],
        utilization: { gpu: 35, memory: 20 },
        temperatureC: 41,
        powerMw: 91000,
        numaNode: 0,
        pcieSwitch: 0,
        nvlinkPeers: [1, 1],
        processes: [
          { pid: 4242, usedMemoryMiB: 1024, smUtil: 30, memUtil: 10 },
          { pid: 4343, usedMemoryMiB: 512, smUtil: 5, memUtil: 2 },
        ],
      },
      {
        uuid: 'GPU-22222222-2222-2222-2222-222222222222',
        name: 'NVIDIA A100-SXM4-80GB',
        minor: 1,
        pciBusId: '00000000:0F:00.0',
        memoryTotalMiB: 81920,
        computeCapability: [8, 0],
        utilization: { gpu: 0, memory: 0 },
        temperatureC: 33,
        powerMw: 60000,
        numaNode: 1,
        pcieSwitch: 1,
        nvlinkPeers: [0, 0],
        processes: [],
      },
    ],
    events: [],
  };
}
