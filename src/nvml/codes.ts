/** NVML return codes (nvmlReturn_t) and the other enums the agent uses, from nvml.h. */

export const NVML_SUCCESS = 0;

export const NvmlReturn = {
  UNINITIALIZED: 1,
  INVALID_ARGUMENT: 2,
  NOT_SUPPORTED: 3,
  NO_PERMISSION: 4,
  ALREADY_INITIALIZED: 5,
  NOT_FOUND: 6,
  INSUFFICIENT_SIZE: 7,
  INSUFFICIENT_POWER: 8,
  DRIVER_NOT_LOADED: 9,
  TIMEOUT: 10,
  IRQ_ISSUE: 11,
  LIBRARY_NOT_FOUND: 12,
  FUNCTION_NOT_FOUND: 13,
  CORRUPTED_INFOROM: 14,
  GPU_IS_LOST: 15,
  RESET_REQUIRED: 16,
  OPERATING_SYSTEM: 17,
  LIB_RM_VERSION_MISMATCH: 18,
  IN_USE: 19,
  MEMORY: 20,
  NO_DATA: 21,
  VGPU_ECC_NOT_SUPPORTED: 22,
  INSUFFICIENT_RESOURCES: 23,
  FREQ_NOT_SUPPORTED: 24,
  ARGUMENT_VERSION_MISMATCH: 25,
  DEPRECATED: 26,
  NOT_READY: 27,
  GPU_NOT_FOUND: 28,
  INVALID_STATE: 29,
  RESET_TYPE_NOT_SUPPORTED: 30,
  UNKNOWN: 999,
} as const;

const namesByCode = new Map<number, string>(
  Object.entries(NvmlReturn).map(([name, code]) => [code, `NVML_ERROR_${name}`]),
);

/** `NVML_ERROR_GPU_IS_LOST` for 15; a numeric fallback for codes newer than this table. */
export function nvmlReturnName(code: number): string {
  if (code === NVML_SUCCESS) return 'NVML_SUCCESS';
  return namesByCode.get(code) ?? `NVML_ERROR_${code}`;
}

/** nvmlEventType* bits (unsigned long long masks). */
export const NvmlEventType = {
  SINGLE_BIT_ECC_ERROR: 0x1n,
  DOUBLE_BIT_ECC_ERROR: 0x2n,
  PSTATE: 0x4n,
  XID_CRITICAL_ERROR: 0x8n,
  CLOCK: 0x10n,
  MIG_CONFIG_CHANGE: 0x100n,
} as const;

/** The events the health checker listens to, as NVIDIA's device plugin does: Xid, double- and single-bit ECC. */
export const HEALTH_EVENT_MASK =
  NvmlEventType.XID_CRITICAL_ERROR | NvmlEventType.DOUBLE_BIT_ECC_ERROR | NvmlEventType.SINGLE_BIT_ECC_ERROR;

/** nvmlGpuTopologyLevel_t: how close two GPUs sit on the PCIe/CPU fabric. Lower is closer. */
export const TopologyLevel = {
  INTERNAL: 0,
  SINGLE: 10,
  MULTIPLE: 20,
  HOSTBRIDGE: 30,
  NODE: 40,
  SYSTEM: 50,
} as const;
export type TopologyLevel = (typeof TopologyLevel)[keyof typeof TopologyLevel];

/** nvmlClockType_t: the clock domains nvmlDeviceGetClockInfo reads (MHz). */
export const ClockType = {
  GRAPHICS: 0,
  SM: 1,
  MEMORY: 2,
  VIDEO: 3,
} as const;
export type ClockType = (typeof ClockType)[keyof typeof ClockType];

/** NVML_NVLINK_MAX_LINKS in NVML 13; older drivers answer INVALID_ARGUMENT past their own maximum. */
export const NVLINK_MAX_LINKS = 36;

/** GI/CI id fields of nvmlProcessInfo_t hold this when the process is not in a MIG instance. */
export const NO_INSTANCE_ID = 0xffffffff;
