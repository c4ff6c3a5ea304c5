/**
 * Keeps HealthState current from NVML: Xid events (through an event set waited on off the event
 * loop) and a periodic probe that notices GPUs falling off the bus without an event and brings
 * recovered ones back after `recoverAfterSeconds`. A GPU that makes the shared event set fail (lost)
 * is taken out of it, so the others keep their Xid checks, and put back once the probe finds it
 * answering again.
 */
import type { Logger } from 'pino';
import { isXidIgnored, type XidChecks } from '../config/health-checks.js';
import { errorMessage } from '../errors.js';
import { NvmlEventType } from '../nvml/codes.js';
import { isDeviceFailure, isGpuLost, NvmlError } from '../nvml/errors.js';
import { DeviceEventWatcher, type Registration } from '../nvml/events.js';
import type { Nvml } from '../nvml/nvml.js';
import type { DeviceEvent, DeviceHandle } from '../nvml/types.js';
import { ThrottledWarning } from '../throttled-warning.js';
import { HealthState } from './health-state.js';
import type { Inventory } from './inventory-types.js';

/** Which Xids count (the config's health checks, NVIDIA's variables applied), and when devices recover. */
export type HealthSettings = XidChecks & {
  /** 0 = never recover (NVIDIA's behaviour) */
  recoverAfterSeconds: number;
};

export interface HealthMonitorOptions {
  nvml: Nvml;
  inventory: Inventory;
  settings: HealthSettings;
  logger: Logger;
  /** called after every change, with the current state */
  onChange: (state: HealthState) => void;
  /** told of each Xid acted on or ignored, with the GPU that reported it, for metrics */
  onXid?: (xid: number, acted: boolean, gpuUuid: string) => void;
  probeIntervalMs?: number;
  eventWaitTimeoutMs?: number;
  /** pause after a failed event wait that no lost GPU explains; default 1 s */
  eventErrorBackoffMs?: number;
  /** a warning that repeats (a failing event wait) is logged at most this often; default 60 s */
  repeatedWarningIntervalMs?: number;
  now?: () => number;
}

/** Xid 79: the GPU has fallen off the bus. */
const XID_GPU_FALLEN_OFF_BUS = 79;

export class HealthMonitor {
  readonly state = new HealthState();
  private watcher: DeviceEventWatcher | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly handles = new Map<string, DeviceHandle>();
  private readonly handleToUuid = new Map<DeviceHandle, string>();
  /**
   * GPUs kept out of the shared event set: a lost GPU makes every wait on the set fail, so it would
   * hide every other GPU's Xids. Probed on their own and put back once they answer after a failure
   * (`failed`): one that refuses registration while answering probes would otherwise be retried,
   * and the set rebuilt, on every probe round.
   */
  private readonly outOfEventSet = new Map<string, { failed: boolean }>();
  /** GPUs put back in the event set whose new registration is not confirmed yet. */
  private readonly rejoining = new Set<string>();
  /** GPUs that never deliver events (support none, or refused for a reason that is not a failure). */
  private readonly probedOnly = new Set<string>();
  private readonly waitFailureWarning: ThrottledWarning;
  private readonly now: () => number;
  private settings: HealthSettings;

  constructor(private readonly options: HealthMonitorOptions) {
    this.now = options.now ?? Date.now;
    this.settings = options.settings;
    this.waitFailureWarning = new ThrottledWarning(
      options.logger,
      'NVML event wait failed; probing every GPU',
      options.repeatedWarningIntervalMs ?? 60_000,
      this.now,
    );
  }

  /**
   * New health settings from a config reload. Turning checks off clears every Unhealthy mark, as if
   * the agent had started with checks off; events and probes keep running so turning them on again
   * needs no restart.
   */
  updateSettings(settings: HealthSettings): void {
    const wasEnabled = this.settings.enabled;
    this.settings = settings;
    if (wasEnabled && !settings.enabled) {
      this.options.logger.info('health checks turned off by config: every device is Healthy again');
      if (this.state.clear()) this.options.onChange(this.state);
    } else if (!wasEnabled && settings.enabled) {
      this.options.logger.info('health checks turned on by config');
    }
  }

  start(): void {
    const { inventory, logger } = this.options;
    if (!this.settings.enabled) {
      logger.info('health checks disabled (DP_DISABLE_HEALTHCHECKS=all or health.enabled=false)');
    }
    for (const gpu of inventory.gpus) {
      try {
        this.rememberHandle(gpu.uuid, this.options.nvml.deviceByUuid(gpu.uuid));
      } catch (err) {
        this.outOfEventSet.set(gpu.uuid, { failed: true });
        this.mark(gpu.uuid, `cannot watch for events: ${errorMessage(err)}`);
      }
    }
    this.startWatcher();
    const interval = this.options.probeIntervalMs ?? 5000;
    this.probeTimer = setInterval(() => this.probe(), interval);
    this.probeTimer.unref();
  }

  private startWatcher(): void {
    try {
      this.watcher = DeviceEventWatcher.start(this.options.nvml, this.eventSetMembers(), {
        ...(this.options.eventWaitTimeoutMs ? { waitTimeoutMs: this.options.eventWaitTimeoutMs } : {}),
        ...(this.options.eventErrorBackoffMs ? { errorBackoffMs: this.options.eventErrorBackoffMs } : {}),
        onEvent: (event) => this.onEvent(event),
        onError: (error) => this.onWaitError(error),
        onRegistered: (registrations) => this.onRegistered(registrations),
      });
      this.onRegistered(this.watcher.registrations);
    } catch (err) {
      // No event set at all: still probe, so lost GPUs are noticed.
      this.options.logger.error({ err }, 'NVML event set unavailable: health relies on periodic probes only');
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.probeTimer);
    await this.watcher?.stop();
  }

  private rememberHandle(uuid: string, handle: DeviceHandle): DeviceHandle {
    this.handles.set(uuid, handle);
    this.handleToUuid.set(handle, uuid);
    return handle;
  }

  /** The handles to register: every GPU except those kept out or that deliver no events. */
  private eventSetMembers(): DeviceHandle[] {
    return this.options.inventory.gpus.flatMap((gpu) => {
      const handle = this.handles.get(gpu.uuid);
      return handle !== undefined && this.isInEventSet(gpu.uuid) ? [handle] : [];
    });
  }

  private isInEventSet(uuid: string): boolean {
    return this.handles.has(uuid) && !this.outOfEventSet.has(uuid) && !this.probedOnly.has(uuid);
  }

  /** How each GPU of a new event set registered: a failing GPU stays out until it answers again. */
  private onRegistered(registrations: readonly Registration[]): void {
    const { logger } = this.options;
    for (const { device, mask, error } of registrations) {
      const gpu = this.handleToUuid.get(device);
      if (gpu === undefined) continue;
      const wasRejoining = this.rejoining.delete(gpu);
      if (error && isDeviceFailure(error)) {
        this.outOfEventSet.set(gpu, { failed: false });
        logger.warn({ gpu, err: error }, 'GPU refused event registration; probing it on its own');
      } else if (error) {
        this.probedOnly.add(gpu);
        logger.warn({ gpu, err: error }, 'GPU refused event registration: relying on probes');
      } else if (mask === 0n) {
        this.probedOnly.add(gpu);
        logger.warn({ gpu }, 'GPU supports none of the health events (Xid, ECC): relying on probes');
      } else if (wasRejoining) {
        logger.info({ gpu }, 'GPU back in the event set');
      }
    }
  }

  private onEvent(event: DeviceEvent): void {
    const { inventory, logger } = this.options;
    const { settings } = this;
    if (!settings.enabled) return;
    const gpuUuid = this.handleToUuid.get(event.device);
    if (!gpuUuid) return;
    if (event.eventType !== NvmlEventType.XID_CRITICAL_ERROR) {
      logger.info(
        { gpu: gpuUuid, eventType: Number(event.eventType), data: event.eventData },
        'GPU ECC event (no action)',
      );
      return;
    }
    const xid = event.eventData;
    if (isXidIgnored(settings, xid)) {
      this.options.onXid?.(xid, false, gpuUuid);
      logger.info({ gpu: gpuUuid, xid }, 'Xid ignored (application error or disabled)');
      return;
    }
    this.options.onXid?.(xid, true, gpuUuid);
    // A MIG event names its instance: only that MIG device is affected. An event on the whole GPU
    // carries no instance IDs, which no MIG device's match.
    const gpu = inventory.gpus.find((g) => g.uuid === gpuUuid);
    const mig = gpu?.migDevices.find(
      (m) => m.gpuInstanceId === event.gpuInstanceId && m.computeInstanceId === event.computeInstanceId,
    );
    const reason = xid === XID_GPU_FALLEN_OFF_BUS ? `Xid ${xid} (GPU has fallen off the bus)` : `Xid ${xid}`;
    this.mark(mig?.uuid ?? gpuUuid, reason, xid);
  }

  /**
   * The wait does not say which GPU failed: probe them all, mark those that do not answer and take
   * them out of the event set, so the wait works again for the others. Repeats are throttled: a
   * failure no probe explains recurs after every backoff.
   */
  private onWaitError(error: NvmlError): void {
    this.waitFailureWarning.warn({ err: error });
    this.probe({ afterWaitFailure: true });
  }

  /**
   * Marks GPUs that stopped answering; brings back those that answer again long enough; puts GPUs
   * kept out of the event set back once they answer (and, after a failed wait, takes failing ones out).
   */
  private probe({ afterWaitFailure = false } = {}): void {
    const failures = new Map<string, string>();
    for (const gpu of this.options.inventory.gpus) {
      const failure = this.probeGpu(gpu.uuid);
      if (failure !== undefined) failures.set(gpu.uuid, failure);
    }
    if (this.settings.enabled) for (const [uuid, reason] of failures) this.mark(uuid, reason);
    this.updateEventSet(failures, afterWaitFailure);
    this.recoverAnswering();
  }

  /** Only a failed wait takes GPUs out: a GPU failing some query but not the set keeps its events. */
  private updateEventSet(failures: ReadonlyMap<string, string>, afterWaitFailure: boolean): void {
    const { logger, inventory } = this.options;
    let changed = false;
    for (const { uuid: gpu } of inventory.gpus) {
      const failure = failures.get(gpu);
      const out = this.outOfEventSet.get(gpu);
      if (out) {
        if (failure !== undefined) {
          out.failed = true;
        } else if (out.failed && this.lookUpHandle(gpu)) {
          this.outOfEventSet.delete(gpu);
          this.rejoining.add(gpu);
          changed = true;
        }
      } else if (failure !== undefined && afterWaitFailure && this.isInEventSet(gpu)) {
        this.outOfEventSet.set(gpu, { failed: true });
        this.rejoining.delete(gpu);
        logger.warn({ gpu, reason: failure }, 'GPU taken out of the event set; probing it on its own');
        changed = true;
      }
    }
    if (changed) this.watcher?.watch(this.eventSetMembers());
  }

  private lookUpHandle(uuid: string): DeviceHandle | undefined {
    const known = this.handles.get(uuid);
    if (known !== undefined) return known;
    try {
      return this.rememberHandle(uuid, this.options.nvml.deviceByUuid(uuid));
    } catch (err) {
      if (err instanceof NvmlError) return undefined;
      throw err;
    }
  }

  private recoverAnswering(): void {
    const { inventory } = this.options;
    const recovered = this.state.recover(this.now(), this.settings.recoverAfterSeconds * 1000, (uuid) => {
      const gpuUuid = inventory.gpus.find(
        (g) => g.uuid === uuid || g.migDevices.some((m) => m.uuid === uuid),
      )?.uuid;
      return (
        gpuUuid !== undefined && this.probeGpu(uuid) === undefined && this.probeGpu(gpuUuid) === undefined
      );
    });
    for (const record of recovered) {
      this.options.logger.info(
        { device: record.uuid, wasUnhealthyFor: record.reason },
        'device recovered: Healthy',
      );
    }
    if (recovered.length > 0) this.options.onChange(this.state);
  }

  /**
   * undefined while NVML answers for the device, else why not. Only device failures count (lost,
   * reset required, gone...): a query this GPU does not support is still an answer.
   */
  private probeGpu(uuid: string): string | undefined {
    const { nvml } = this.options;
    let handle: DeviceHandle;
    try {
      handle = nvml.deviceByUuid(uuid);
    } catch (err) {
      if (!(err instanceof NvmlError)) throw err;
      return `NVML no longer finds the device: ${err.message}`;
    }
    try {
      nvml.memoryInfo(handle);
      return undefined;
    } catch (err) {
      if (!(err instanceof NvmlError)) throw err;
      if (!isDeviceFailure(err)) return undefined;
      return isGpuLost(err) ? 'GPU is lost (NVML_ERROR_GPU_IS_LOST)' : err.message;
    }
  }

  private mark(uuid: string, reason: string, xid?: number): void {
    if (!this.state.markUnhealthy(uuid, reason, this.now(), xid)) return;
    this.options.logger.warn({ device: uuid, reason, xid }, 'device marked Unhealthy');
    this.options.onChange(this.state);
  }
}
