/**
 * koffi declarations of the NVML C API (libnvidia-ml.so.1).
 *
 * We bind the suffixed symbols the header's #defines point at (nvmlInit_v2, ..._v3), and probe
 * optional ones one by one so that an older driver still loads: a missing optional symbol becomes
 * `undefined` and the wrapper reports "not supported" or falls back to an older version.
 * Types are anonymous on purpose: koffi's named types are process-global, and this module may be
 * evaluated more than once in a process (tests, several libraries).
 */
import koffi, { type LibraryHandle, type TypeObject } from 'koffi';
import { NvmlLibraryError } from './errors.js';

// Opaque handles: `struct nvmlDevice_st *` and `struct nvmlEventSet_st *`. koffi 3 gives them as BigInt.
const DeviceHandleT = koffi.pointer(koffi.opaque());
const EventSetT = koffi.pointer(koffi.opaque());

const uint = 'uint32';
const ull = 'uint64';
const ret = 'int32'; // nvmlReturn_t is a C enum

export const PciInfoT = koffi.struct({
  busIdLegacy: 'char[16]',
  domain: uint,
  bus: uint,
  device: uint,
  pciDeviceId: uint,
  pciSubSystemId: uint,
  busId: 'char[32]',
});

export const MemoryT = koffi.struct({ total: ull, free: ull, used: ull });
export const MemoryV2T = koffi.struct({ version: uint, total: ull, reserved: ull, free: ull, used: ull });
/** NVML_STRUCT_VERSION(Memory, 2) = sizeof(nvmlMemory_v2_t) | 2 << 24 */
export const MEMORY_V2_VERSION = MemoryV2T.size | (2 << 24);

export const UtilizationT = koffi.struct({ gpu: uint, memory: uint });

export const TemperatureT = koffi.struct({ version: uint, sensorType: 'int32', temperature: 'int32' });
export const TEMPERATURE_V1_VERSION = TemperatureT.size | (1 << 24);

/** nvmlProcessInfo_v2_t, the layout used by the _v2 and _v3 process queries. */
export const ProcessInfoV2T = koffi.struct({
  pid: uint,
  usedGpuMemory: ull,
  gpuInstanceId: uint,
  computeInstanceId: uint,
});
/** nvmlProcessInfo_v1_t, used by the unsuffixed query of very old drivers. */
export const ProcessInfoV1T = koffi.struct({ pid: uint, usedGpuMemory: ull });

export const ProcessUtilizationSampleT = koffi.struct({
  pid: uint,
  timeStamp: ull,
  smUtil: uint,
  memUtil: uint,
  encUtil: uint,
  decUtil: uint,
});

export const EventDataT = koffi.struct({
  device: DeviceHandleT,
  eventType: ull,
  eventData: ull,
  gpuInstanceId: uint,
  computeInstanceId: uint,
});

export const DeviceAttributesT = koffi.struct({
  multiprocessorCount: uint,
  sharedCopyEngineCount: uint,
  sharedDecoderCount: uint,
  sharedEncoderCount: uint,
  sharedJpegCount: uint,
  sharedOfaCount: uint,
  gpuInstanceSliceCount: uint,
  computeInstanceSliceCount: uint,
  memorySizeMB: ull,
});

const outUint = koffi.out(koffi.pointer(uint));
const outInt = koffi.out(koffi.pointer('int32'));
const outUll = koffi.out(koffi.pointer(ull));
const outDevice = koffi.out(koffi.pointer(DeviceHandleT));
const outEventSet = koffi.out(koffi.pointer(EventSetT));
const inoutUint = koffi.inout(koffi.pointer(uint));
const out = (t: TypeObject) => koffi.out(koffi.pointer(t));
const inout = (t: TypeObject) => koffi.inout(koffi.pointer(t));

/** Every symbol the agent binds: [return type, parameter types]. */
const signatures = {
  nvmlInit_v2: [ret, []],
  nvmlShutdown: [ret, []],
  nvmlErrorString: ['const char *', [ret]],
  nvmlSystemGetDriverVersion: [ret, ['char *', uint]],
  nvmlSystemGetNVMLVersion: [ret, ['char *', uint]],
  nvmlSystemGetCudaDriverVersion_v2: [ret, [outInt]],
  nvmlSystemGetCudaDriverVersion: [ret, [outInt]],
  nvmlDeviceGetCount_v2: [ret, [outUint]],
  nvmlDeviceGetHandleByIndex_v2: [ret, [uint, outDevice]],
  nvmlDeviceGetHandleByUUID: [ret, ['const char *', outDevice]],
  nvmlDeviceGetUUID: [ret, [DeviceHandleT, 'char *', uint]],
  nvmlDeviceGetName: [ret, [DeviceHandleT, 'char *', uint]],
  nvmlDeviceGetIndex: [ret, [DeviceHandleT, outUint]],
  nvmlDeviceGetMinorNumber: [ret, [DeviceHandleT, outUint]],
  nvmlDeviceGetPciInfo_v3: [ret, [DeviceHandleT, out(PciInfoT)]],
  nvmlDeviceGetMemoryInfo: [ret, [DeviceHandleT, out(MemoryT)]],
  nvmlDeviceGetMemoryInfo_v2: [ret, [DeviceHandleT, inout(MemoryV2T)]],
  nvmlDeviceGetUtilizationRates: [ret, [DeviceHandleT, out(UtilizationT)]],
  nvmlDeviceGetTemperature: [ret, [DeviceHandleT, 'int32', outUint]],
  nvmlDeviceGetTemperatureV: [ret, [DeviceHandleT, inout(TemperatureT)]],
  nvmlDeviceGetPowerUsage: [ret, [DeviceHandleT, outUint]],
  nvmlDeviceGetTotalEnergyConsumption: [ret, [DeviceHandleT, outUll]],
  nvmlDeviceGetClockInfo: [ret, [DeviceHandleT, 'int32', outUint]],
  nvmlDeviceGetCudaComputeCapability: [ret, [DeviceHandleT, outInt, outInt]],
  // Process arrays are passed as raw Buffers (or null to ask for the size) and decoded afterwards.
  nvmlDeviceGetComputeRunningProcesses_v3: [ret, [DeviceHandleT, inoutUint, 'void *']],
  nvmlDeviceGetComputeRunningProcesses_v2: [ret, [DeviceHandleT, inoutUint, 'void *']],
  nvmlDeviceGetComputeRunningProcesses: [ret, [DeviceHandleT, inoutUint, 'void *']],
  nvmlDeviceGetGraphicsRunningProcesses_v3: [ret, [DeviceHandleT, inoutUint, 'void *']],
  nvmlDeviceGetGraphicsRunningProcesses_v2: [ret, [DeviceHandleT, inoutUint, 'void *']],
  nvmlDeviceGetGraphicsRunningProcesses: [ret, [DeviceHandleT, inoutUint, 'void *']],
  nvmlDeviceGetMPSComputeRunningProcesses_v3: [ret, [DeviceHandleT, inoutUint, 'void *']],
  nvmlDeviceGetMPSComputeRunningProcesses_v2: [ret, [DeviceHandleT, inoutUint, 'void *']],
  nvmlDeviceGetMPSComputeRunningProcesses: [ret, [DeviceHandleT, inoutUint, 'void *']],
  nvmlDeviceGetProcessUtilization: [ret, [DeviceHandleT, 'void *', inoutUint, ull]],
  nvmlDeviceGetMigMode: [ret, [DeviceHandleT, outUint, outUint]],
  nvmlDeviceGetMaxMigDeviceCount: [ret, [DeviceHandleT, outUint]],
  nvmlDeviceGetMigDeviceHandleByIndex: [ret, [DeviceHandleT, uint, outDevice]],
  nvmlDeviceGetGpuInstanceId: [ret, [DeviceHandleT, outUint]],
  nvmlDeviceGetComputeInstanceId: [ret, [DeviceHandleT, outUint]],
  nvmlDeviceGetDeviceHandleFromMigDeviceHandle: [ret, [DeviceHandleT, outDevice]],
  nvmlDeviceIsMigDeviceHandle: [ret, [DeviceHandleT, outUint]],
  nvmlDeviceGetAttributes_v2: [ret, [DeviceHandleT, out(DeviceAttributesT)]],
  nvmlDeviceGetTopologyCommonAncestor: [ret, [DeviceHandleT, DeviceHandleT, outInt]],
  nvmlDeviceGetNvLinkState: [ret, [DeviceHandleT, uint, outInt]],
  nvmlDeviceGetNvLinkRemotePciInfo_v2: [ret, [DeviceHandleT, uint, out(PciInfoT)]],
  nvmlEventSetCreate: [ret, [outEventSet]],
  nvmlDeviceGetSupportedEventTypes: [ret, [DeviceHandleT, outUll]],
  nvmlDeviceRegisterEvents: [ret, [DeviceHandleT, ull, EventSetT]],
  nvmlEventSetWait_v2: [ret, [EventSetT, out(EventDataT), uint]],
  nvmlEventSetFree: [ret, [EventSetT]],
} as const satisfies Record<string, readonly [string, readonly unknown[]]>;

export type NvmlSymbol = keyof typeof signatures;

/** Without these the agent cannot enumerate GPUs at all; every other symbol is optional. */
const REQUIRED_SYMBOLS = [
  'nvmlInit_v2',
  'nvmlShutdown',
  'nvmlErrorString',
  'nvmlDeviceGetCount_v2',
  'nvmlDeviceGetHandleByIndex_v2',
  'nvmlDeviceGetUUID',
] as const satisfies readonly NvmlSymbol[];

/** A bound C function: call it synchronously, or through `.async(...args, callback)` on the libuv pool. */
export type KoffiFunction = ReturnType<LibraryHandle['func']>;

export interface NvmlLibrary {
  readonly path: string;
  /** The bound function, or undefined when this driver does not export the symbol. */
  fn(symbol: NvmlSymbol): KoffiFunction | undefined;
  /** Symbols the library lacks (for the startup log). */
  readonly missingSymbols: readonly NvmlSymbol[];
  unload(): void;
}

export const DEFAULT_NVML_LIBRARY = 'libnvidia-ml.so.1';

/**
 * Loads libnvidia-ml and binds every known symbol. Throws one NvmlLibraryError with a message an
 * operator can act on when the library cannot be opened or lacks a required symbol.
 */
export function loadNvmlLibrary(path: string = DEFAULT_NVML_LIBRARY): NvmlLibrary {
  let lib: LibraryHandle;
  try {
    lib = koffi.load(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message.replace(/^Failed to load shared library:\s*/, '') : err;
    throw new NvmlLibraryError(
      `cannot load the NVML library "${path}": ${reason}. Install the NVIDIA driver on this node and make ` +
        'libnvidia-ml.so.1 visible to the container (NVIDIA container toolkit, or mount the driver root), ' +
        'or point --nvml-library / NVML_LIBRARY at the file.',
      path,
      { cause: err },
    );
  }
  const bound = new Map<NvmlSymbol, KoffiFunction>();
  const missing: NvmlSymbol[] = [];
  for (const [symbol, [result, params]] of Object.entries(signatures) as [
    NvmlSymbol,
    (typeof signatures)[NvmlSymbol],
  ][]) {
    try {
      bound.set(
        symbol,
        lib.func(symbol, result, params as unknown as Parameters<LibraryHandle['func']>[2][]),
      );
    } catch {
      missing.push(symbol);
    }
  }
  const missingRequired = REQUIRED_SYMBOLS.filter((s) => missing.includes(s));
  if (missingRequired.length > 0) {
    lib.unload();
    throw new NvmlLibraryError(
      `"${path}" is not a usable NVML library: it lacks ${missingRequired.join(', ')}. ` +
        'Point --nvml-library / NVML_LIBRARY at libnvidia-ml.so.1 from an NVIDIA driver >= 450.',
      path,
    );
  }
  return {
    path,
    fn: (symbol) => bound.get(symbol),
    missingSymbols: missing,
    unload: () => lib.unload(),
  };
}
