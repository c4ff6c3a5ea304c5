import { NvmlReturn, nvmlReturnName } from './codes.js';

/** A failed NVML call: which function, its return code, NVML's own name and message for it. */
export class NvmlError extends Error {
  override readonly name = 'NvmlError';
  /** e.g. `NVML_ERROR_GPU_IS_LOST` */
  readonly codeName: string;

  constructor(
    readonly functionName: string,
    readonly code: number,
    readonly description: string,
    readonly context?: string,
  ) {
    const codeName = nvmlReturnName(code);
    super(`${functionName}${context ? ` (${context})` : ''}: ${description} (${codeName})`);
    this.codeName = codeName;
  }
}

/** The NVML library itself could not be loaded or initialised. */
export class NvmlLibraryError extends Error {
  override readonly name = 'NvmlLibraryError';
  constructor(
    message: string,
    readonly libraryPath: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

function hasCode(err: unknown, ...codes: number[]): err is NvmlError {
  return err instanceof NvmlError && codes.includes(err.code);
}

/** The driver does not offer this: NOT_SUPPORTED, or the symbol is missing from an older library. */
export function isNotSupported(err: unknown): boolean {
  return hasCode(err, NvmlReturn.NOT_SUPPORTED, NvmlReturn.FUNCTION_NOT_FOUND);
}

export function isGpuLost(err: unknown): boolean {
  return hasCode(err, NvmlReturn.GPU_IS_LOST);
}

/** Errors that mean "this GPU needs attention" rather than "this query is not available". */
export function isDeviceFailure(err: unknown): boolean {
  return hasCode(
    err,
    NvmlReturn.GPU_IS_LOST,
    NvmlReturn.RESET_REQUIRED,
    NvmlReturn.CORRUPTED_INFOROM,
    NvmlReturn.GPU_NOT_FOUND,
    NvmlReturn.UNKNOWN,
  );
}
