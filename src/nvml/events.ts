/**
 * A loop over nvmlEventSetWait_v2 that never blocks the event loop: each wait runs on the libuv
 * pool with a short timeout, so one pool thread is busy at most `waitTimeoutMs` at a time and
 * stop() returns within that time.
 *
 * One event set serves every watched device. NVML fails every wait on a set with GPU_IS_LOST while
 * any GPU registered in it is lost, and has no call to unregister a device, so the caller changes
 * the watched devices with watch(): between two waits the loop builds a new set with them, takes
 * what the old set still holds, and frees it. The new set is built before the old one is emptied so
 * that no event falls between the two; one arriving in that instant may be delivered twice. Events
 * that arrive while a lost GPU still fails every wait are lost with the old set (NVML offers no way
 * to read them).
 */
import { Backoff } from '../backoff.js';
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
  /**
   * A wait (or building a new set) failed: GPU_IS_LOST, UNKNOWN... The loop goes on after
   * errorBackoffMs, or at once when this callback asked for other devices with watch().
   */
  onError: (error: NvmlError) => void;
  /** Each set built after start() (start() returns its own in `registrations`). */
  onRegistered?: (registrations: readonly Registration[]) => void;
}

export interface Registration {
  device: DeviceHandle;
  /** the bits actually registered (0 when the device supports none of the requested ones) */
  mask: bigint;
  error?: NvmlError;
}

interface BuiltSet {
  set: EventSetHandle;
  registrations: Registration[];
}

/** Bounds the emptying of a replaced set, should events keep arriving faster than it is read. */
const MAX_EVENTS_TAKEN_FROM_OLD_SET = 1000;

export class DeviceEventWatcher {
  private stopping = false;
  private readonly loop: Promise<void>;
  /** The pause after a failure; stop() and watch() cut it short. */
  private readonly retry: Backoff;
  /**
   * The devices last asked for, less those that refused to register (asking for them again retries);
   * `rebuildPending` while the current set does not hold them yet.
   */
  private wanted: readonly DeviceHandle[];
  private rebuildPending = false;

  private constructor(
    private readonly nvml: Nvml,
    private current: BuiltSet,
    private readonly options: Required<Omit<DeviceEventWatcherOptions, 'eventMask' | 'onRegistered'>> &
      Pick<DeviceEventWatcherOptions, 'onRegistered'> & { eventMask: bigint },
  ) {
    this.wanted = registered(current);
    const pauseMs = options.errorBackoffMs;
    this.retry = new Backoff({ initialMs: pauseMs, maxMs: pauseMs, multiplier: 1 });
    this.loop = this.run();
  }

  /**
   * Creates the event set and registers each device for the requested events it supports.
   * A device that refuses (NOT_SUPPORTED, or lost) is reported in `registrations`, not thrown:
   * one GPU must not stop health checks for the others.
   */
  static start(nvml: Nvml, devices: readonly DeviceHandle[], options: DeviceEventWatcherOptions) {
    const eventMask = options.eventMask ?? HEALTH_EVENT_MASK;
    return new DeviceEventWatcher(nvml, buildSet(nvml, devices, eventMask), {
      eventMask,
      waitTimeoutMs: options.waitTimeoutMs ?? 500,
      errorBackoffMs: options.errorBackoffMs ?? 1000,
      onEvent: options.onEvent,
      onError: options.onError,
      onRegistered: options.onRegistered,
    });
  }

  /** How each device of the current set registered. */
  get registrations(): readonly Registration[] {
    return this.current.registrations;
  }

  /**
   * Watches exactly these devices from the next wait on: a new set is built between two waits, unless
   * the current one holds them all already (a device that refused to register is tried again).
   */
  watch(devices: readonly DeviceHandle[]): void {
    if (this.stopping || sameDevices(devices, this.wanted)) return;
    this.wanted = [...devices];
    this.rebuildPending = true;
    this.retry.wake();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      // Until a new set can be built the old one keeps serving, between two retries.
      if (this.rebuildPending && !(await this.rebuildOrReport())) await this.retry.pause();
      if (this.stopping) break;
      try {
        const event = await this.nvml.eventSetWait(this.current.set, this.options.waitTimeoutMs);
        if (event && !this.stopping) this.options.onEvent(event);
      } catch (err) {
        if (this.stopping) break;
        const error = asNvmlError(err, 'nvmlEventSetWait_v2');
        // A driver without event support answers NOT_SUPPORTED forever: report once and stop waiting.
        this.options.onError(error);
        if (isNotSupported(error)) return;
        // The caller asked for other devices (without the lost GPU): build that set now, not later.
        if (!this.rebuildPending) await this.retry.pause();
      }
    }
  }

  /** false when no new set could be built (reported; the loop retries after its backoff). */
  private async rebuildOrReport(): Promise<boolean> {
    try {
      await this.rebuild();
      return true;
    } catch (err) {
      if (!this.stopping) this.options.onError(asNvmlError(err, 'nvmlEventSetCreate'));
      return false;
    }
  }

  /** Swaps in a set holding the wanted devices; when that fails the old set stays and this is retried. */
  private async rebuild(): Promise<void> {
    this.rebuildPending = false;
    let built: BuiltSet;
    try {
      built = buildSet(this.nvml, this.wanted, this.options.eventMask);
    } catch (err) {
      this.rebuildPending = true;
      throw err;
    }
    this.wanted = registered(built);
    const old = this.current.set;
    this.current = built;
    await this.takeEventsFrom(old);
    freeQuietly(this.nvml, old);
    this.options.onRegistered?.(built.registrations);
  }

  /** Delivers what a replaced set still holds; stops at the first failure (a lost GPU fails them all). */
  private async takeEventsFrom(set: EventSetHandle): Promise<void> {
    for (let taken = 0; taken < MAX_EVENTS_TAKEN_FROM_OLD_SET && !this.stopping; taken++) {
      let event: DeviceEvent | null;
      try {
        event = await this.nvml.eventSetWait(set, 0);
      } catch {
        return;
      }
      if (!event) return;
      if (!this.stopping) this.options.onEvent(event);
    }
  }

  /** Stops waiting and frees the event set; resolves within one wait timeout. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.retry.wake();
    await this.loop;
    freeQuietly(this.nvml, this.current.set);
  }
}

/** Throws only when no set can be created; a device that refuses is reported in its registration. */
function buildSet(nvml: Nvml, devices: readonly DeviceHandle[], wanted: bigint): BuiltSet {
  const set = nvml.eventSetCreate();
  try {
    return { set, registrations: devices.map((device) => register(nvml, device, wanted, set)) };
  } catch (err) {
    freeQuietly(nvml, set);
    throw err;
  }
}

function register(nvml: Nvml, device: DeviceHandle, wanted: bigint, set: EventSetHandle): Registration {
  try {
    const mask = wanted & nvml.supportedEventTypes(device);
    if (mask !== 0n) nvml.registerEvents(device, mask, set);
    return { device, mask };
  } catch (err) {
    if (err instanceof NvmlError) return { device, mask: 0n, error: err };
    throw err;
  }
}

function registered(built: BuiltSet): DeviceHandle[] {
  return built.registrations.filter((r) => r.error === undefined).map((r) => r.device);
}

function freeQuietly(nvml: Nvml, set: EventSetHandle): void {
  try {
    nvml.eventSetFree(set);
  } catch {
    // The set is gone with the driver (shutdown, lost GPU): nothing left to free.
  }
}

function asNvmlError(err: unknown, functionName: string): NvmlError {
  return err instanceof NvmlError ? err : new NvmlError(functionName, NvmlReturn.UNKNOWN, String(err));
}

function sameDevices(a: readonly DeviceHandle[], b: readonly DeviceHandle[]): boolean {
  return a.length === b.length && a.every((device, i) => device === b[i]);
}
