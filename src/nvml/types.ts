/** Plain objects returned by the NVML wrapper. Units are in the names. */

/** An NVML device handle (`nvmlDevice_t`): a pointer, as koffi 3 gives it. Valid until nvmlShutdown. */
export type DeviceHandle = bigint & { readonly __nvmlDevice: unique symbol };
/** An NVML event set handle (`nvmlEventSet_t`). */
export type EventSetHandle = bigint & { readonly __nvmlEventSet: unique symbol };

export interface PciInfo {
  /** sysfs form, as in /sys/bus/pci/devices: `0000:07:00.0` */
  busId: string;
  /** NVML's own form: `00000000:07:00.0` */
  nvmlBusId: string;
  domain: number;
  bus: number;
  device: number;
  /** device id in the high 16 bits, vendor (0x10DE) in the low 16 */
  pciDeviceId: number;
  pciSubSystemId: number;
}

export interface MemoryInfo {
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
  /**
   * Memory the driver and firmware keep for themselves; absent when only the v1 query answers (its
   * `usedBytes` then includes it, as nvml.h says of nvmlMemory_t).
   */
  reservedBytes?: number;
}

export interface Utilization {
  gpuPercent: number;
  memoryPercent: number;
}

export interface ComputeCapability {
  major: number;
  minor: number;
}

export interface CudaDriverVersion {
  major: number;
  minor: number;
  /** as NVML gives it, e.g. 13000 */
  raw: number;
}

/** Which of NVML's running-process lists to read. */
export type ProcessList = 'compute' | 'graphics' | 'mps';

export interface ProcessInfo {
  pid: number;
  /** all the memory the process uses on the device; absent when NVML cannot say (NVML_VALUE_NOT_AVAILABLE) */
  usedMemoryBytes?: number;
  /** set only when the process runs in a MIG instance */
  gpuInstanceId?: number;
  computeInstanceId?: number;
}

export interface ProcessUtilizationSample {
  pid: number;
  /** microseconds since the epoch (CPU clock), as NVML reports it */
  timestampUs: number;
  smPercent: number;
  memoryPercent: number;
  encoderPercent: number;
  decoderPercent: number;
}

export interface MigMode {
  current: boolean;
  pending: boolean;
}

export interface MigDeviceAttributes {
  multiprocessorCount: number;
  sharedCopyEngineCount: number;
  sharedDecoderCount: number;
  sharedEncoderCount: number;
  sharedJpegCount: number;
  sharedOfaCount: number;
  gpuInstanceSliceCount: number;
  computeInstanceSliceCount: number;
  memoryMiB: number;
}

export interface DeviceEvent {
  device: DeviceHandle;
  /** nvmlEventType* bit */
  eventType: bigint;
  /** the Xid for Xid events (999 = unknown) */
  eventData: number;
  /** set when the event concerns a MIG instance */
  gpuInstanceId?: number;
  computeInstanceId?: number;
}
