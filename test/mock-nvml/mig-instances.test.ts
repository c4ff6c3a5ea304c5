/**
 * The mock's MIG instance API, called through koffi directly with NVML's struct layouts (the agent's
 * binding does not use these calls; NVIDIA's plugin does, through go-nvlib): the walk from a MIG device
 * to its GPU instance, compute instance and their profiles, as an unmodified NVML client makes it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import koffi, { type KoffiFunc, type LibraryHandle } from 'koffi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockNodeNames, mockNodePath, mockNvmlLibraryPath, packageRoot } from '../../src/paths.js';
import { readMigMinors } from '../../src/runtime/host.js';
import { type MockDevice, MockNode, type MockNvmlState } from '../../src/sim/mock-node.js';
import { inventoryFromMockState } from '../../src/sim/state-inventory.js';

const SUCCESS = 0;
const INVALID_ARGUMENT = 2;
const NOT_SUPPORTED = 3;
const NOT_FOUND = 6;
const GPU_INSTANCE_PROFILE_COUNT = 0x12;
const COMPUTE_INSTANCE_PROFILE_COUNT = 0x9;

const GpuInstanceProfileInfo = koffi.struct('mig_test_GpuInstanceProfileInfo', {
  id: 'uint32',
  isP2pSupported: 'uint32',
  sliceCount: 'uint32',
  instanceCount: 'uint32',
  multiprocessorCount: 'uint32',
  copyEngineCount: 'uint32',
  decoderCount: 'uint32',
  encoderCount: 'uint32',
  jpegCount: 'uint32',
  ofaCount: 'uint32',
  memorySizeMB: 'uint64',
});
const Placement = koffi.struct('mig_test_Placement', { start: 'uint32', size: 'uint32' });
const GpuInstanceInfo = koffi.struct('mig_test_GpuInstanceInfo', {
  device: 'void *',
  id: 'uint32',
  profileId: 'uint32',
  placement: Placement,
});
const ComputeInstanceProfileInfo = koffi.struct('mig_test_ComputeInstanceProfileInfo', {
  id: 'uint32',
  sliceCount: 'uint32',
  instanceCount: 'uint32',
  multiprocessorCount: 'uint32',
  sharedCopyEngineCount: 'uint32',
  sharedDecoderCount: 'uint32',
  sharedEncoderCount: 'uint32',
  sharedJpegCount: 'uint32',
  sharedOfaCount: 'uint32',
});
const ComputeInstanceInfo = koffi.struct('mig_test_ComputeInstanceInfo', {
  device: 'void *',
  gpuInstance: 'void *',
  id: 'uint32',
  profileId: 'uint32',
  placement: Placement,
});

interface Placed {
  start: number;
  size: number;
}
interface GiInfo {
  device: bigint;
  id: number;
  profileId: number;
  placement: Placed;
}
interface CiInfo extends Omit<GiInfo, 'placement'> {
  gpuInstance: bigint;
  placement: Placed;
}
interface GiProfile {
  id: number;
  sliceCount: number;
  instanceCount: number;
  multiprocessorCount: number;
  memorySizeMB: number;
}
interface CiProfile {
  id: number;
  sliceCount: number;
  instanceCount: number;
  multiprocessorCount: number;
}

type NvmlFunc = KoffiFunc<(...args: unknown[]) => unknown>;

/** The NVML calls NVIDIA's MIG code path makes, bound with NVML's own signatures. */
function bind(lib: LibraryHandle) {
  const f = (decl: string): NvmlFunc => lib.func(decl);
  return {
    init: f('int nvmlInit_v2()'),
    shutdown: f('int nvmlShutdown()'),
    byIndex: f('int nvmlDeviceGetHandleByIndex_v2(uint32_t index, _Out_ void **device)'),
    migByIndex: f('int nvmlDeviceGetMigDeviceHandleByIndex(void *device, uint32_t index, _Out_ void **mig)'),
    giId: f('int nvmlDeviceGetGpuInstanceId(void *device, _Out_ uint32_t *id)'),
    ciId: f('int nvmlDeviceGetComputeInstanceId(void *device, _Out_ uint32_t *id)'),
    giProfileInfo: f(
      'int nvmlDeviceGetGpuInstanceProfileInfo(void *device, uint32_t profile, _Out_ mig_test_GpuInstanceProfileInfo *info)',
    ),
    giById: f('int nvmlDeviceGetGpuInstanceById(void *device, uint32_t id, _Out_ void **gpuInstance)'),
    giInfo: f('int nvmlGpuInstanceGetInfo(void *gpuInstance, _Out_ mig_test_GpuInstanceInfo *info)'),
    ciById: f('int nvmlGpuInstanceGetComputeInstanceById(void *gpuInstance, uint32_t id, _Out_ void **ci)'),
    ciInfo: f('int nvmlComputeInstanceGetInfo_v2(void *ci, _Out_ mig_test_ComputeInstanceInfo *info)'),
    ciProfileInfo: f(
      'int nvmlGpuInstanceGetComputeInstanceProfileInfo(void *gi, uint32_t profile, uint32_t engProfile, _Out_ mig_test_ComputeInstanceProfileInfo *info)',
    ),
  };
}

type Nvml = ReturnType<typeof bind>;

/** Calls `fn` with a trailing pointer (handle or number) out-parameter: [return code, value]. */
function outValue<T>(fn: NvmlFunc, ...args: unknown[]): [number, T] {
  const holder: unknown[] = [null];
  const rc = fn(...args, holder) as number;
  return [rc, holder[0] as T];
}

/** Calls `fn` with a trailing struct out-parameter: [return code, the struct]. */
function outStruct<T>(fn: NvmlFunc, ...args: unknown[]): [number, T] {
  const box = {} as T;
  const rc = fn(...args, box) as number;
  return [rc, box];
}

/** A 3g.20gb GPU instance split into two compute instances (1c + 2c), and a whole 2g.10gb one. */
function splitState(): MockNvmlState {
  return {
    driverVersion: '580.95.05',
    devices: [
      {
        uuid: 'GPU-00000000-0000-0000-0000-00000000000a',
        name: 'NVIDIA A100-SXM4-40GB',
        memoryTotalMiB: 40960,
        migEnabled: true,
        migDevices: [
          { uuid: 'MIG-a', giId: 2, ciId: 0, profile: '1c.3g.20gb', memoryMiB: 19968, multiprocessors: 14 },
          { uuid: 'MIG-b', giId: 2, ciId: 1, profile: '2c.3g.20gb', memoryMiB: 19968, multiprocessors: 28 },
          { uuid: 'MIG-c', giId: 7, ciId: 0, profile: '2g.10gb', memoryMiB: 9856, multiprocessors: 28 },
        ],
      },
      { uuid: 'GPU-00000000-0000-0000-0000-00000000000b', name: 'Tesla T4', computeCapability: [7, 5] },
    ],
  };
}

describe('mock NVML MIG instances (through koffi)', () => {
  let lib: LibraryHandle;
  let nvml: Nvml;
  let node: MockNode;
  let gpu: unknown;
  let t4: unknown;

  beforeAll(async () => {
    node = await MockNode.create(splitState());
    node.exportEnv();
    lib = koffi.load(mockNvmlLibraryPath());
    nvml = bind(lib);
    expect(nvml.init()).toBe(SUCCESS);
    gpu = outValue<unknown>(nvml.byIndex, 0)[1];
    t4 = outValue<unknown>(nvml.byIndex, 1)[1];
  });
  afterAll(async () => {
    nvml?.shutdown();
    lib?.unload();
    await node?.remove();
  });

  it('declares the structs with NVML sizes (48, 24, 36, 32 bytes)', () => {
    expect(koffi.sizeof(GpuInstanceProfileInfo)).toBe(48);
    expect(koffi.sizeof(GpuInstanceInfo)).toBe(24);
    expect(koffi.sizeof(ComputeInstanceProfileInfo)).toBe(36);
    expect(koffi.sizeof(ComputeInstanceInfo)).toBe(32);
  });

  it('walks a MIG device to its GPU and compute instance, and both profiles match their ids', () => {
    const [rc, mig] = outValue<unknown>(nvml.migByIndex, gpu, 1); // MIG-b: 2c.3g.20gb, GI 2, CI 1
    expect(rc).toBe(SUCCESS);
    expect(outValue<number>(nvml.giId, mig)).toEqual([SUCCESS, 2]);
    expect(outValue<number>(nvml.ciId, mig)).toEqual([SUCCESS, 1]);
    const [giRc, gi] = outValue<unknown>(nvml.giById, gpu, 2);
    expect(giRc).toBe(SUCCESS);
    const [, giInfo] = outStruct<GiInfo>(nvml.giInfo, gi);
    expect(giInfo).toMatchObject({ id: 2, profileId: 2, placement: { start: 0, size: 4 } });
    expect(giInfo.device).toBe(gpu);
    const [ciRc, ci] = outValue<unknown>(nvml.ciById, gi, 1);
    expect(ciRc).toBe(SUCCESS);
    const [, ciInfo] = outStruct<CiInfo>(nvml.ciInfo, ci);
    expect(ciInfo).toMatchObject({ id: 1, profileId: 1, placement: { start: 1, size: 2 } });
    expect(ciInfo.device).toBe(gpu);
    expect(ciInfo.gpuInstance).toBe(gi);
    // NVIDIA's lookup: the GI profile whose id is the instance's profileId, then the CI profile.
    const [, giProfile] = outStruct<GiProfile>(nvml.giProfileInfo, gpu, giInfo.profileId);
    expect(giProfile).toMatchObject({
      id: giInfo.profileId,
      sliceCount: 3,
      instanceCount: 2,
      multiprocessorCount: 42,
      memorySizeMB: 19968,
    });
    const [, ciProfile] = outStruct<CiProfile>(nvml.ciProfileInfo, gi, ciInfo.profileId, 0);
    expect(ciProfile).toMatchObject({
      id: ciInfo.profileId,
      sliceCount: 2,
      instanceCount: 1,
      multiprocessorCount: 28,
    });
  });

  it('places GPU instances first fit in memory slices, in state order', () => {
    const [, gi] = outValue<unknown>(nvml.giById, gpu, 7);
    expect(outStruct<GiInfo>(nvml.giInfo, gi)[1]).toMatchObject({
      id: 7,
      profileId: 1,
      placement: { start: 4, size: 2 },
    });
  });

  it('enumerates GPU-instance profiles until INVALID_ARGUMENT, as nvml.h describes', () => {
    const offered: number[] = [];
    for (let profile = 0; ; profile++) {
      const [rc] = outStruct<GiProfile>(nvml.giProfileInfo, gpu, profile);
      if (rc === INVALID_ARGUMENT) {
        expect(profile).toBe(GPU_INSTANCE_PROFILE_COUNT);
        break;
      }
      expect([SUCCESS, NOT_SUPPORTED]).toContain(rc);
      if (rc === SUCCESS) offered.push(profile);
    }
    expect(offered).toEqual([0, 1, 2, 3, 4, 7]); // 1g 2g 3g 4g 7g, 1g+me
    const sevenSlices = outStruct<GiProfile>(nvml.giProfileInfo, gpu, 4)[1];
    expect(sevenSlices).toMatchObject({ sliceCount: 7, instanceCount: 1, memorySizeMB: 40960 });
  });

  it('offers the compute-instance profiles that fit in the GPU instance', () => {
    const [, gi] = outValue<unknown>(nvml.giById, gpu, 2);
    const codes = Array.from(
      { length: COMPUTE_INSTANCE_PROFILE_COUNT + 1 },
      (_, p) => outStruct(nvml.ciProfileInfo, gi, p, 0)[0],
    );
    // 1c, 2c, 3c fit a 3g instance; 4c, 7c, 8c, 6c do not; 0x7 and 0x8 are not offered; 0x9 is past the end
    expect(codes).toEqual([
      0,
      0,
      0,
      NOT_SUPPORTED,
      NOT_SUPPORTED,
      NOT_SUPPORTED,
      NOT_SUPPORTED,
      NOT_SUPPORTED,
      NOT_SUPPORTED,
      INVALID_ARGUMENT,
    ]);
    expect(outStruct(nvml.ciProfileInfo, gi, 0, 1)[0]).toBe(INVALID_ARGUMENT); // engine profile past SHARED
  });

  it('answers NOT_FOUND for unknown ids and NOT_SUPPORTED on a GPU without MIG', () => {
    expect(outValue(nvml.giById, gpu, 3)[0]).toBe(NOT_FOUND);
    const [, gi] = outValue<unknown>(nvml.giById, gpu, 2);
    expect(outValue(nvml.ciById, gi, 5)[0]).toBe(NOT_FOUND);
    expect(outValue(nvml.giById, t4, 0)[0]).toBe(NOT_SUPPORTED);
    expect(outStruct(nvml.giProfileInfo, t4, 0)[0]).toBe(NOT_SUPPORTED);
    const [, mig] = outValue<unknown>(nvml.migByIndex, gpu, 0);
    expect(outValue(nvml.giById, mig, 2)[0]).toBe(INVALID_ARGUMENT); // a MIG handle holds no instances
    expect(outStruct(nvml.giInfo, 12345n)[0]).toBe(INVALID_ARGUMENT); // not a handle the mock issued
  });
});

/** nvmlInit_v2 on `state` in a fresh process: its return code and what the mock wrote to stderr. */
function initInChild(state: unknown): { code: number; stderr: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vgpu-mock-state-'));
  const file = path.join(dir, 'state.json');
  writeFileSync(file, JSON.stringify(state));
  const script =
    "import koffi from 'koffi'; console.log(koffi.load(process.env.NVML_LIBRARY).func('int nvmlInit_v2()')());";
  try {
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: packageRoot(),
      env: { PATH: process.env.PATH, MOCK_NVML_STATE: file, NVML_LIBRARY: mockNvmlLibraryPath() },
      encoding: 'utf8',
    });
    if (child.status !== 0) throw new Error(`child exited ${child.status}: ${child.stderr}`);
    return { code: Number(child.stdout.trim()), stderr: child.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const LIBRARY_NOT_FOUND = 12;
const gpu = (index: number, extra: Partial<MockDevice> = {}): MockDevice => ({
  uuid: `GPU-00000000-0000-0000-0000-00000000000${index}`,
  ...extra,
});

describe('mock NVML state checks', () => {
  it('loads every shipped node, whose NVLink tables are symmetric', () => {
    for (const name of mockNodeNames()) {
      const state = JSON.parse(readFileSync(mockNodePath(name), 'utf8')) as MockNvmlState;
      expect(initInChild(state), name).toEqual({ code: SUCCESS, stderr: '' });
    }
  });

  it('rejects a one-sided NVLink table, naming both ends', () => {
    const state = {
      devices: [
        gpu(0, { nvlinkPeers: [1, 1, 2] }),
        gpu(1, { nvlinkPeers: [0, 2] }),
        gpu(2, { nvlinkPeers: [0, 1] }),
      ],
    };
    const { code, stderr } = initInChild(state);
    expect(code).toBe(LIBRARY_NOT_FOUND);
    expect(stderr).toContain(
      'devices[0].nvlinkPeers: 2 link(s) to device 1, but devices[1].nvlinkPeers has 1 link(s) to device 0: ' +
        'NVLink is symmetric, list every link on both GPUs',
    );
    // the same table made symmetric loads
    state.devices[1]!.nvlinkPeers = [0, 0, 2];
    expect(initInChild(state).code).toBe(SUCCESS);
  });

  it('rejects compute instances that disagree about their GPU instance or overfill it', () => {
    // two compute instances in GPU instance 1, with these profiles
    const split = (a: string, b: string): MockNvmlState => {
      const mig = (ciId: number, profile: string) => ({
        uuid: `MIG-${ciId}`,
        giId: 1,
        ciId,
        profile,
        memoryMiB: 19968,
        multiprocessors: 14,
      });
      return {
        driverVersion: '580.95.05',
        devices: [gpu(0, { migEnabled: true, migDevices: [mig(0, a), mig(1, b)] })],
      };
    };
    expect(initInChild(split('1c.3g.20gb', '2c.3g.20gb')).code).toBe(SUCCESS);
    const mismatch = initInChild(split('1c.3g.20gb', '1c.2g.20gb'));
    expect(mismatch.code).toBe(LIBRARY_NOT_FOUND);
    expect(mismatch.stderr).toContain(
      'devices[0].migDevices[1]: giId 1 is the GPU instance of migDevices[0] (1c.3g.20gb, 19968 MiB) but this one is 1c.2g.20gb, 19968 MiB',
    );
    const overfull = initInChild(split('2c.3g.20gb', '2c.3g.20gb'));
    expect(overfull.stderr).toContain(
      'devices[0].migDevices[1]: the compute instances of GPU instance 1 need 4 compute slices; it has 3',
    );
  });
});

describe('simulated host /proc', () => {
  it("provides the driver's whole mig-minors table, so MIG capability nodes get the driver's minors", async () => {
    const node = await MockNode.create('mixed-mig');
    try {
      const text = readFileSync(path.join(node.hostPaths.procRoot, 'driver/nvidia-caps/mig-minors'), 'utf8');
      const lines = text.trimEnd().split('\n');
      expect(lines.slice(0, 4)).toEqual([
        'config 1',
        'monitor 2',
        'gpu0/gi0/access 3',
        'gpu0/gi0/ci0/access 4',
      ]);
      expect(lines).toContain('gpu3/gi3/ci3/access 439');
      expect(lines.at(-1)).toBe('gpu31/gi14/ci7/access 4322');
      expect(lines).toHaveLength(4322);
      // MIG device GI 1 / CI 0 on GPU minor 0 (mixed-mig): gi access 3 + 9, ci access 13
      const inventory = inventoryFromMockState(node.state, 'mixed-mig', {
        migMinors: await readMigMinors(node.hostPaths.procRoot),
      });
      expect(inventory.ok && inventory.value.gpus[0]!.migDevices[0]!.deviceNodes).toEqual([
        '/dev/nvidia0',
        '/dev/nvidia-caps/nvidia-cap12',
        '/dev/nvidia-caps/nvidia-cap13',
      ]);
    } finally {
      await node.remove();
    }
  });
});
