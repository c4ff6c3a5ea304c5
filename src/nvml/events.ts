/**
 * A loop over nvmlEventSetWait_v2 that never blocks the event loop: each wait runs on the libuv
 * pool with a short timeout, so one pool thread is busy at most `waitTimeoutMs` at a time and
 * stop() returns within that time. One event set serves every registered device.
 */
import { HEALTH_EVENT_MASK, NvmlReturn } from './codes.js';
import { isNotSupported, NvmlError } from './errors.js';
import type { Nvml } from './nvml.js';
import type { DeviceEvent, DeviceHandle, EventSetHandle } from './types.js';

export interface DeviceEventWatcherOptions {
  /** Event bits to register, masked per device by what it supports. Default: Xid | DBE | SBE. */
  eventMask?: bigint;
  /** Upper bound of one wait; also bounds how long stop() takes. Default 500 ms. */
  waitTimeoutMs?: number;
  /** Pause after a failed wait before the next one, so a broken GPU cannot spin the loop. */
  errorBackoffMs?: number;
  onEvent: (event: DeviceEvent) => void;
  /** A wait failed (GPU_IS_LOST, UNKNOWN...). The loop goes on after errorBackoffMs. */
  onError: (error: NvmlError) => void;
}

export interface Registration {
  device: DeviceHandle;
  /** the bits actually registered (0 when the device supports none of the requested ones) */
  mask: bigint;
  error?: NvmlError;
}

export class DeviceEventWatcher {
  private stopping = false;
  private readonly loop: Promise<void>;
  /** Cuts the error backoff short when stop() is called. */
  private wakeFromBackoff: (() => void) | undefined;

  private constructor(
    private readonly nvml: Nvml,
    private readonly set: EventSetHandle,
    readonly registrations: readonly Registration[],
    private readonly options: Required<Omit<DeviceEventWatcherOptions, 'eventMask'>>,
  ) {
    this.loop = this.run();
  }

  /**
   * Creates the event set and registers each device for the requested events it supports.
   * A device that refuses (NOT_SUPPORTED, or lost) is reported in `registrations`, not thrown:
   * one GPU must not stop health checks for the others.
   */
  static start(nvml: Nvml, devices: readonly DeviceHandle[], options: DeviceEventWatcherOptions) {
    const wanted = options.eventMask ?? HEALTH_EVENT_MASK;
    const set = nvml.eventSetCreate();
    const registrations = devices.map((device): Registration => {
      try {
        const mask = wanted & nvml.supportedEventTypes(device);
        if (mask !== 0n) nvml.registerEvents(device, mask, set);
        return { device, mask };
      } catch (err) {
        if (err instanceof NvmlError) return { device, mask: 0n, error: err };
        throw err;
      }
    });
    return new DeviceEventWatcher(nvml, set, registrations, {
      waitTimeoutMs: options.waitTimeoutMs ?? 500,
      errorBackoffMs: options.errorBackoffMs ?? 1000,
      onEvent: options.onEvent,
      onError: options.onError,
    });
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        const event = await this.nvml.eventSetWait(this.set, this.options.waitTimeoutMs);
        if (event && !this.stopping) this.options.onEvent(event);
      } catch (err) {
        if (this.stopping) break;
        const error =
          err instanceof NvmlError
            ? err
            : new NvmlError('nvmlEventSetWait_v2', NvmlReturn.UNKNOWN, String(err));
        // A driver without event support answers NOT_SUPPORTED forever: report once and stop waiting.
        this.options.onError(error);
        if (isNotSupported(error)) return;
        await this.backoff();
      }
    }
  }

  private backoff(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.options.errorBackoffMs);
      this.wakeFromBackoff = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Stops waiting and frees the event set; resolves within one wait timeout. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeFromBackoff?.();
    await this.loop;
    try {
      this.nvml.eventSetFree(this.set);
    } catch {
      // The set is gone with the driver (shutdown, lost GPU): nothing left to free.
    }
  }
}
