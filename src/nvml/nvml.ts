/**
 * A typed wrapper over the NVML C API. Each method makes one (or a size-then-fill pair of) NVML
 * call(s), throws NvmlError on failure and returns plain objects. Optional symbols missing from an
 * older driver either fall back to an older version of the call or throw a "not supported"
 * NvmlError (NVML_ERROR_FUNCTION_NOT_FOUND), which `isNotSupported` recognises.
 */
import koffi from 'koffi';
import { type ClockType, NO_INSTANCE_ID, NVML_SUCCESS, NvmlReturn } from './codes.js';
import { NvmlError, NvmlLibraryError } from './errors.js';
import {
  DEFAULT_NVML_LIBRARY,
  type KoffiFunction,
  loadNvmlLibrary,
  MEMORY_V2_VERSION,
  type NvmlLibrary,
  type NvmlSymbol,
  ProcessInfoV1T,
  ProcessInfoV2T,
  ProcessUtilizationSampleT,
  TEMPERATURE_V1_VERSION,
} from './library.js';
import { toSysfsBusId } from './pci.js';
import type {
  ComputeCapability,
  CudaDriverVersion,
  DeviceEvent,
  DeviceHandle,
  EventSetHandle,
  MemoryInfo,
  MigDeviceAttributes,
  MigMode,
  PciInfo,
  ProcessInfo,
  ProcessList,
  ProcessUtilizationSample,
  Utilization,
} from './types.js';

const UUID_BUFFER_SIZE = 96; // NVML_DEVICE_UUID_V2_BUFFER_SIZE
const NAME_BUFFER_SIZE = 96; // NVML_DEVICE_NAME_V2_BUFFER_SIZE
const VERSION_BUFFER_SIZE = 80; // NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE
/** Processes can start between the sizing call and the fill call: ask for a little more room. */
const PROCESS_LIST_HEADROOM = 8;
/** Give up on a size-then-fill query that keeps growing rather than loop forever. */
const MAX_SIZE_RETRIES = 3;

/** Each running-process list, newest symbol first: _v3 and _v2 fill the v2 struct, the unsuffixed one v1. */
const PROCESS_LIST_SYMBOLS = {
  compute: [
    'nvmlDeviceGetComputeRunningProcesses_v3',
    'nvmlDeviceGetComputeRunningProcesses_v2',
    'nvmlDeviceGetComputeRunningProcesses',
  ],
  graphics: [
    'nvmlDeviceGetGraphicsRunningProcesses_v3',
    'nvmlDeviceGetGraphicsRunningProcesses_v2',
    'nvmlDeviceGetGraphicsRunningProcesses',
  ],
  mps: [
    'nvmlDeviceGetMPSComputeRunningProcesses_v3',
    'nvmlDeviceGetMPSComputeRunningProcesses_v2',
    'nvmlDeviceGetMPSComputeRunningProcesses',
  ],
} as const satisfies Record<ProcessList, readonly [NvmlSymbol, NvmlSymbol, NvmlSymbol]>;

export interface NvmlOptions {
  /** Path or soname of libnvidia-ml; default `libnvidia-ml.so.1`. */
  libraryPath?: string;
  /** Told of every failed call (for metrics and logs); the error is still thrown. */
  onError?: (error: NvmlError) => void;
}

/** Reads a NUL-terminated C string out of a buffer NVML filled. */
function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end === -1 ? buf.length : end);
}

export class Nvml {
  private shutDown = false;
  private readonly errorStrings = new Map<number, string>();

  private constructor(
    private readonly lib: NvmlLibrary,
    private readonly onError?: (error: NvmlError) => void,
  ) {}

  /**
   * Loads the library and initialises NVML. nvmlInit can take seconds on a node without persistence
   * mode (the driver wakes every GPU), so it runs on the libuv pool, not on the event loop.
   */
  static async open(options: NvmlOptions = {}): Promise<Nvml> {
    const lib = loadNvmlLibrary(options.libraryPath ?? DEFAULT_NVML_LIBRARY);
    const nvml = new Nvml(lib, options.onError);
    const init = lib.fn('nvmlInit_v2')!;
    const rc = await new Promise<number>((resolve, reject) =>
      init.async((err: unknown, result: number) => (err ? reject(err) : resolve(result))),
    );
    if (rc !== NVML_SUCCESS) {
      const description = nvml.errorString(rc);
      lib.unload();
      throw new NvmlLibraryError(
        `nvmlInit_v2 failed with ${description} (code ${rc}) using "${lib.path}": check that the NVIDIA ` +
          'driver is loaded (nvidia-smi works on the host) and that the container can see /dev/nvidia*.',
        lib.path,
      );
    }
    return nvml;
  }

  get libraryPath(): string {
    return this.lib.path;
  }

  /** Symbols this driver does not export (logged at startup so support can see what was degraded). */
  get missingSymbols(): readonly string[] {
    return this.lib.missingSymbols;
  }

  hasSymbol(symbol: NvmlSymbol): boolean {
    return this.lib.fn(symbol) !== undefined;
  }

  shutdown(): void {
    if (this.shutDown) return;
    this.shutDown = true;
    this.lib.fn('nvmlShutdown')!();
    // The library stays mapped: koffi functions bound from it may still be referenced by callers.
  }

  /** nvmlErrorString, cached: NVML's own text for a return code. */
  errorString(code: number): string {
    let text = this.errorStrings.get(code);
    if (text === undefined) {
      text = (this.lib.fn('nvmlErrorString')!(code) as string | null) ?? `unknown NVML return code ${code}`;
      this.errorStrings.set(code, text);
    }
    return text;
  }

  private fail(symbol: string, code: number, context?: string): never {
    const error = new NvmlError(symbol, code, this.errorString(code), context);
    this.onError?.(error);
    throw error;
  }

  private bound(symbol: NvmlSymbol): KoffiFunction {
    const fn = this.lib.fn(symbol);
    if (!fn) {
      this.fail(symbol, NvmlReturn.FUNCTION_NOT_FOUND, `not exported by ${this.lib.path}`);
    }
    return fn;
  }

  /** Calls `symbol` and throws NvmlError unless it returns NVML_SUCCESS. */
  private call(symbol: NvmlSymbol, ...args: unknown[]): void {
    if (this.shutDown) this.fail(symbol, NvmlReturn.UNINITIALIZED, 'called after shutdown');
    const rc = this.bound(symbol)(...args) as number;
    if (rc !== NVML_SUCCESS) this.fail(symbol, rc);
  }

  /** Calls a function with one `unsigned int *` / `int *` out parameter after the given inputs. */
  private callForNumber(symbol: NvmlSymbol, ...inputs: unknown[]): number {
    const out = [0];
    this.call(symbol, ...inputs, out);
    return out[0]!;
  }

  private callForString(symbol: NvmlSymbol, size: number, ...inputs: unknown[]): string {
    const buf = Buffer.alloc(size);
    this.call(symbol, ...inputs, buf, size);
    return cString(buf);
  }

  private callForDevice(symbol: NvmlSymbol, ...inputs: unknown[]): DeviceHandle {
    const out: [DeviceHandle | null] = [null];
    this.call(symbol, ...inputs, out);
    return out[0]!;
  }

  // ---- system ----

  driverVersion(): string {
    return this.callForString('nvmlSystemGetDriverVersion', VERSION_BUFFER_SIZE);
  }

  nvmlVersion(): string {
    return this.callForString('nvmlSystemGetNVMLVersion', VERSION_BUFFER_SIZE);
  }

  cudaDriverVersion(): CudaDriverVersion {
    const symbol = this.hasSymbol('nvmlSystemGetCudaDriverVersion_v2')
      ? 'nvmlSystemGetCudaDriverVersion_v2'
      : 'nvmlSystemGetCudaDriverVersion';
    const raw = this.callForNumber(symbol);
    return { major: Math.floor(raw / 1000), minor: Math.floor((raw % 1000) / 10), raw };
  }

  deviceCount(): number {
    return this.callForNumber('nvmlDeviceGetCount_v2');
  }

  deviceByIndex(index: number): DeviceHandle {
    return this.callForDevice('nvmlDeviceGetHandleByIndex_v2', index);
  }

  /** A GPU or MIG device by its UUID (`GPU-…` / `MIG-…`). */
  deviceByUuid(uuid: string): DeviceHandle {
    return this.callForDevice('nvmlDeviceGetHandleByUUID', uuid);
  }

  // ---- identity ----

  uuid(device: DeviceHandle): string {
    return this.callForString('nvmlDeviceGetUUID', UUID_BUFFER_SIZE, device);
  }

  name(device: DeviceHandle): string {
    return this.callForString('nvmlDeviceGetName', NAME_BUFFER_SIZE, device);
  }

  index(device: DeviceHandle): number {
    return this.callForNumber('nvmlDeviceGetIndex', device);
  }

  /** N in /dev/nvidiaN. */
  minorNumber(device: DeviceHandle): number {
    return this.callForNumber('nvmlDeviceGetMinorNumber', device);
  }

  pciInfo(device: DeviceHandle): PciInfo {
    const out: Record<string, unknown> = {};
    this.call('nvmlDeviceGetPciInfo_v3', device, out);
    return this.toPciInfo(out);
  }

  private toPciInfo(raw: Record<string, unknown>): PciInfo {
    const nvmlBusId = String(raw.busId ?? '');
    return {
      busId: toSysfsBusId(nvmlBusId),
      nvmlBusId,
      domain: raw.domain as number,
      bus: raw.bus as number,
      device: raw.device as number,
      pciDeviceId: raw.pciDeviceId as number,
      pciSubSystemId: raw.pciSubSystemId as number,
    };
  }

  computeCapability(device: DeviceHandle): ComputeCapability {
    const major = [0];
    const minor = [0];
    this.call('nvmlDeviceGetCudaComputeCapability', device, major, minor);
    return { major: major[0]!, minor: minor[0]! };
  }

  // ---- telemetry ----

  /** Prefers the v2 query (which accounts reserved memory); falls back to v1 on older drivers. */
  memoryInfo(device: DeviceHandle): MemoryInfo {
    const v2 = this.lib.fn('nvmlDeviceGetMemoryInfo_v2');
    if (v2) {
      const out: Record<string, number> = { version: MEMORY_V2_VERSION };
      const rc = v2(device, out) as number;
      if (rc === NVML_SUCCESS) {
        return {
          totalBytes: out.total!,
          freeBytes: out.free!,
          usedBytes: out.used!,
          reservedBytes: out.reserved!,
        };
      }
      if (rc !== NvmlReturn.NOT_SUPPORTED && rc !== NvmlReturn.ARGUMENT_VERSION_MISMATCH) {
        this.fail('nvmlDeviceGetMemoryInfo_v2', rc);
      }
    }
    const out: Record<string, number> = {};
    this.call('nvmlDeviceGetMemoryInfo', device, out);
    return { totalBytes: out.total!, freeBytes: out.free!, usedBytes: out.used! };
  }

  /** Not supported on MIG devices or MIG-enabled GPUs. */
  utilization(device: DeviceHandle): Utilization {
    const out: Record<string, number> = {};
    this.call('nvmlDeviceGetUtilizationRates', device, out);
    return { gpuPercent: out.gpu!, memoryPercent: out.memory! };
  }

  /** GPU die temperature. Prefers nvmlDeviceGetTemperatureV (NVML 13 deprecates the older call). */
  temperatureCelsius(device: DeviceHandle): number {
    const v = this.lib.fn('nvmlDeviceGetTemperatureV');
    if (v) {
      const out: Record<string, number> = { version: TEMPERATURE_V1_VERSION, sensorType: 0 };
      const rc = v(device, out) as number;
      if (rc === NVML_SUCCESS) return out.temperature!;
      if (rc !== NvmlReturn.NOT_SUPPORTED && rc !== NvmlReturn.ARGUMENT_VERSION_MISMATCH) {
        this.fail('nvmlDeviceGetTemperatureV', rc);
      }
    }
    return this.callForNumber('nvmlDeviceGetTemperature', device, 0 /* NVML_TEMPERATURE_GPU */);
  }

  powerMilliwatts(device: DeviceHandle): number {
    return this.callForNumber('nvmlDeviceGetPowerUsage', device);
  }

  /**
   * Energy the GPU consumed since the driver was last loaded, in millijoules (a counter). Volta and
   * newer; NOT_SUPPORTED (thrown) on older GPUs and on MIG devices.
   */
  totalEnergyMillijoules(device: DeviceHandle): number {
    const out: [number | bigint] = [0];
    this.call('nvmlDeviceGetTotalEnergyConsumption', device, out);
    return Number(out[0]);
  }

  /** Current clock of one domain (ClockType.SM, ClockType.MEMORY, ...) in MHz. */
  clockMHz(device: DeviceHandle, clock: ClockType): number {
    return this.callForNumber('nvmlDeviceGetClockInfo', device, clock);
  }

  /** Compute processes on a GPU or MIG device (see runningProcesses). */
  computeProcesses(device: DeviceHandle): ProcessInfo[] {
    return this.runningProcesses(device, 'compute');
  }

  /**
   * One of NVML's running-process lists (compute, graphics or MPS compute) of a GPU or MIG device. A
   * MIG device handle gives that instance's processes; a MIG-enabled GPU's handle the aggregate (with
   * privileges). Uses NVML's size-then-fill protocol: ask for the count with an empty buffer, then fill
   * a buffer with some headroom, retrying if the list grew meanwhile. Falls back from _v3 to _v2 (same
   * layout) to the v1 struct on older drivers.
   */
  runningProcesses(device: DeviceHandle, list: ProcessList): ProcessInfo[] {
    const [v3, v2, v1] = PROCESS_LIST_SYMBOLS[list];
    const [symbol, struct] = this.hasSymbol(v3)
      ? ([v3, ProcessInfoV2T] as const)
      : this.hasSymbol(v2)
        ? ([v2, ProcessInfoV2T] as const)
        : ([v1, ProcessInfoV1T] as const);
    const fn = this.bound(symbol);
    const raws = this.sizeThenFill(symbol, struct.size, (count, buf) => fn(device, count, buf) as number);
    return raws.map((buf) => {
      const raw = koffi.decode(buf, struct) as Record<string, number>;
      const info: ProcessInfo = { pid: raw.pid! };
      const memory = this.processMemory(raw.usedGpuMemory);
      if (memory !== undefined) info.usedMemoryBytes = memory;
      if (raw.gpuInstanceId !== undefined && raw.gpuInstanceId !== NO_INSTANCE_ID) {
        info.gpuInstanceId = raw.gpuInstanceId;
        info.computeInstanceId = raw.computeInstanceId!;
      }
      return info;
    });
  }

  /** usedGpuMemory is NVML_VALUE_NOT_AVAILABLE (all ones) when NVML cannot tell: absent, not 0. */
  private processMemory(value: number | bigint | undefined): number | undefined {
    if (typeof value !== 'number' || value >= Number.MAX_SAFE_INTEGER) return undefined;
    return value;
  }

  /**
   * Per-process SM / memory utilisation samples newer than `sinceUs` (microseconds, NVML's clock; 0 =
   * the driver's whole buffer). An empty list when NVML has no newer sample (NOT_FOUND). Idle processes
   * have no sample. Entries for pid 0 or not newer than `sinceUs` are dropped: some drivers pad the
   * buffer with them. Not supported on MIG devices or MIG-enabled GPUs.
   */
  processUtilization(device: DeviceHandle, sinceUs = 0): ProcessUtilizationSample[] {
    const symbol = 'nvmlDeviceGetProcessUtilization';
    const fn = this.bound(symbol);
    // NOT_FOUND is NVML's way of saying "no sample newer than sinceUs": an answer, not a failure.
    const raws = this.sizeThenFill(
      symbol,
      ProcessUtilizationSampleT.size,
      (count, buf) => fn(device, buf, count, sinceUs) as number,
      NvmlReturn.NOT_FOUND,
    );
    return raws
      .map((buf) => {
        const raw = koffi.decode(buf, ProcessUtilizationSampleT) as Record<string, number>;
        return {
          pid: raw.pid!,
          timestampUs: Number(raw.timeStamp),
          smPercent: raw.smUtil!,
          memoryPercent: raw.memUtil!,
          encoderPercent: raw.encUtil!,
          decoderPercent: raw.decUtil!,
        };
      })
      .filter((sample) => sample.pid !== 0 && sample.timestampUs > sinceUs);
  }

  /**
   * NVML's list protocol: call with count 0 and no buffer; SUCCESS means an empty list,
   * INSUFFICIENT_SIZE gives the count to allocate. Returns one Buffer slice per entry.
   */
  private sizeThenFill(
    symbol: NvmlSymbol,
    entrySize: number,
    invoke: (count: number[], buffer: Buffer | null) => number,
    /** a return code that means "the list is empty" for this query */
    emptyOn?: number,
  ): Buffer[] {
    const count = [0];
    let rc = invoke(count, null);
    for (let attempt = 0; attempt < MAX_SIZE_RETRIES; attempt++) {
      if (rc === NVML_SUCCESS || rc === emptyOn) break;
      if (rc !== NvmlReturn.INSUFFICIENT_SIZE) this.fail(symbol, rc);
      const capacity = count[0]! + PROCESS_LIST_HEADROOM;
      const buffer = Buffer.alloc(capacity * entrySize);
      count[0] = capacity;
      rc = invoke(count, buffer);
      if (rc === emptyOn) return [];
      if (rc === NVML_SUCCESS) {
        const entries: Buffer[] = [];
        for (let i = 0; i < count[0]!; i++) entries.push(buffer.subarray(i * entrySize, (i + 1) * entrySize));
        return entries;
      }
    }
    if (rc !== NVML_SUCCESS && rc !== emptyOn) {
      this.fail(symbol, rc, `list kept growing after ${MAX_SIZE_RETRIES} retries`);
    }
    return [];
  }

  // ---- MIG ----

  /** NOT_SUPPORTED (thrown) means the GPU cannot do MIG. */
  migMode(device: DeviceHandle): MigMode {
    const current = [0];
    const pending = [0];
    this.call('nvmlDeviceGetMigMode', device, current, pending);
    return { current: current[0] === 1, pending: pending[0] === 1 };
  }

  maxMigDeviceCount(device: DeviceHandle): number {
    return this.callForNumber('nvmlDeviceGetMaxMigDeviceCount', device);
  }

  /** The MIG device in slot `index`, or null for an empty slot. */
  migDeviceByIndex(device: DeviceHandle, index: number): DeviceHandle | null {
    const out: [DeviceHandle | null] = [null];
    const rc = this.bound('nvmlDeviceGetMigDeviceHandleByIndex')(device, index, out) as number;
    if (rc === NvmlReturn.NOT_FOUND || rc === NvmlReturn.INVALID_ARGUMENT) return null;
    if (rc !== NVML_SUCCESS) this.fail('nvmlDeviceGetMigDeviceHandleByIndex', rc, `slot ${index}`);
    return out[0];
  }

  /** Every MIG device of a MIG-enabled GPU, in slot order. */
  migDevices(device: DeviceHandle): DeviceHandle[] {
    const devices: DeviceHandle[] = [];
    const max = this.maxMigDeviceCount(device);
    for (let slot = 0; slot < max; slot++) {
      const mig = this.migDeviceByIndex(device, slot);
      if (mig !== null) devices.push(mig);
    }
    return devices;
  }

  gpuInstanceId(migDevice: DeviceHandle): number {
    return this.callForNumber('nvmlDeviceGetGpuInstanceId', migDevice);
  }

  computeInstanceId(migDevice: DeviceHandle): number {
    return this.callForNumber('nvmlDeviceGetComputeInstanceId', migDevice);
  }

  parentOfMigDevice(migDevice: DeviceHandle): DeviceHandle {
    return this.callForDevice('nvmlDeviceGetDeviceHandleFromMigDeviceHandle', migDevice);
  }

  isMigDevice(device: DeviceHandle): boolean {
    return this.callForNumber('nvmlDeviceIsMigDeviceHandle', device) === 1;
  }

  /** Only valid on MIG device handles. */
  migAttributes(migDevice: DeviceHandle): MigDeviceAttributes {
    const out: Record<string, number> = {};
    this.call('nvmlDeviceGetAttributes_v2', migDevice, out);
    return {
      multiprocessorCount: out.multiprocessorCount!,
      sharedCopyEngineCount: out.sharedCopyEngineCount!,
      sharedDecoderCount: out.sharedDecoderCount!,
      sharedEncoderCount: out.sharedEncoderCount!,
      sharedJpegCount: out.sharedJpegCount!,
      sharedOfaCount: out.sharedOfaCount!,
      gpuInstanceSliceCount: out.gpuInstanceSliceCount!,
      computeInstanceSliceCount: out.computeInstanceSliceCount!,
      memoryMiB: Number(out.memorySizeMB),
    };
  }

  // ---- topology ----

  /** The closest common point of two GPUs on the PCIe/CPU fabric (TopologyLevel). */
  topologyCommonAncestor(a: DeviceHandle, b: DeviceHandle): number {
    return this.callForNumber('nvmlDeviceGetTopologyCommonAncestor', a, b);
  }

  /**
   * State of NVLink `link`: `absent` when the GPU has no NVLink (NOT_SUPPORTED) or the driver has no
   * such link (INVALID_ARGUMENT past its last one). Those are answers, so they are not reported as
   * errors: callers walk links 0, 1, ... until `absent`.
   */
  nvlinkState(device: DeviceHandle, link: number): 'active' | 'inactive' | 'absent' {
    const symbol = 'nvmlDeviceGetNvLinkState';
    const out = [0];
    const rc = this.bound(symbol)(device, link, out) as number;
    if (rc === NvmlReturn.NOT_SUPPORTED || rc === NvmlReturn.INVALID_ARGUMENT) return 'absent';
    if (rc !== NVML_SUCCESS) this.fail(symbol, rc, `link ${link}`);
    return out[0] === 1 ? 'active' : 'inactive';
  }

  /** The PCI bus id (sysfs form) of what NVLink `link` connects to. */
  nvlinkRemoteBusId(device: DeviceHandle, link: number): string {
    const out: Record<string, unknown> = {};
    this.call('nvmlDeviceGetNvLinkRemotePciInfo_v2', device, link, out);
    return this.toPciInfo(out).busId;
  }

  // ---- events ----

  supportedEventTypes(device: DeviceHandle): bigint {
    const out: [number | bigint] = [0];
    this.call('nvmlDeviceGetSupportedEventTypes', device, out);
    return BigInt(out[0]);
  }

  eventSetCreate(): EventSetHandle {
    const out: [EventSetHandle | null] = [null];
    this.call('nvmlEventSetCreate', out);
    return out[0]!;
  }

  registerEvents(device: DeviceHandle, eventTypes: bigint, set: EventSetHandle): void {
    this.call('nvmlDeviceRegisterEvents', device, eventTypes, set);
  }

  eventSetFree(set: EventSetHandle): void {
    this.call('nvmlEventSetFree', set);
  }

  /**
   * Waits up to `timeoutMs` for an event on the libuv pool (never on the event loop).
   * Resolves null on timeout; rejects with NvmlError for anything else (GPU_IS_LOST included).
   * Keep timeouts short: each pending wait holds one of the pool's threads.
   */
  async eventSetWait(set: EventSetHandle, timeoutMs: number): Promise<DeviceEvent | null> {
    const symbol = 'nvmlEventSetWait_v2';
    const fn = this.bound(symbol);
    const out: Record<string, unknown> = {};
    const rc = await new Promise<number>((resolve, reject) =>
      fn.async(set, out, timeoutMs, (err: unknown, result: number) => (err ? reject(err) : resolve(result))),
    );
    if (rc === NvmlReturn.TIMEOUT) return null;
    if (rc !== NVML_SUCCESS) this.fail(symbol, rc);
    const event: DeviceEvent = {
      device: out.device as DeviceHandle,
      eventType: BigInt(out.eventType as number | bigint),
      eventData: Number(out.eventData),
    };
    const gi = out.gpuInstanceId as number;
    if (gi !== NO_INSTANCE_ID) {
      event.gpuInstanceId = gi;
      event.computeInstanceId = out.computeInstanceId as number;
    }
    return event;
  }
}
