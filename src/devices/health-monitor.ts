/**
 * Keeps HealthState current from NVML: Xid events (through an event set waited on off the event
 * loop) and a periodic probe that notices GPUs falling off the bus without an event and brings
 * recovered ones back after `recoverAfterSeconds`.
 */
import type { Logger } from 'pino';
import { NvmlEventType } from '../nvml/codes.js';
import { isDeviceFailure, isGpuLost, NvmlError } from '../nvml/errors.js';
import { DeviceEventWatcher } from '../nvml/events.js';
import type { Nvml } from '../nvml/nvml.js';
import type { DeviceEvent, DeviceHandle } from '../nvml/types.js';
import { HealthState, type UnhealthyRecord } from './health-state.js';
import type { Inventory } from './inventory-types.js';

export interface HealthSettings {
  /** false: never mark anything unhealthy (DP_DISABLE_HEALTHCHECKS=all) */
  enabled: boolean;
  /** Xids that are application errors, not device faults */
  disabledXids: ReadonlySet<number>;
  /** when set, only these Xids mark a device unhealthy (DP_ENABLE_HEALTHCHECKS after disabling all) */
  onlyXids?: ReadonlySet<number> | null;
  /** 0 = never recover (NVIDIA's behaviour) */
  recoverAfterSeconds: number;
}

export interface HealthMonitorOptions {
  nvml: Nvml;
  inventory: Inventory;
  settings: HealthSettings;
  logger: Logger;
  /** called after every change, with the current state */
  onChange: (state: HealthState) => void;
  /** told of each Xid acted on or ignored, for metrics */
  onXid?: (xid: number, acted: boolean) => void;
  probeIntervalMs?: number;
  eventWaitTimeoutMs?: number;
  now?: () => number;
}

/** Xid 79: the GPU has fallen off the bus. */
const XID_GPU_FALLEN_OFF_BUS = 79;

export class HealthMonitor {
  readonly state = new HealthState();
  private watcher: DeviceEventWatcher | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly handleToUuid = new Map<DeviceHandle, string>();
  private readonly now: () => number;
  private settings: HealthSettings;

  constructor(private readonly options: HealthMonitorOptions) {
    this.now = options.now ?? Date.now;
    this.settings = options.settings;
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
    const { nvml, inventory, logger } = this.options;
    if (!this.settings.enabled) {
      logger.info('health checks disabled (DP_DISABLE_HEALTHCHECKS=all or health.enabled=false)');
    }
    const handles: DeviceHandle[] = [];
    for (const gpu of inventory.gpus) {
      try {
        const handle = nvml.deviceByUuid(gpu.uuid);
        this.handleToUuid.set(handle, gpu.uuid);
        handles.push(handle);
      } catch (err) {
        this.mark(gpu.uuid, `cannot watch for events: ${describe(err)}`);
      }
    }
    try {
      this.watcher = DeviceEventWatcher.start(nvml, handles, {
        ...(this.options.eventWaitTimeoutMs ? { waitTimeoutMs: this.options.eventWaitTimeoutMs } : {}),
        onEvent: (event) => this.onEvent(event),
        onError: (error) => this.onWaitError(error),
      });
      for (const registration of this.watcher.registrations) {
        const uuid = this.handleToUuid.get(registration.device);
        if (registration.error) {
          logger.warn({ gpu: uuid, err: registration.error.message }, 'GPU refused event registration');
        } else if (registration.mask === 0n) {
          logger.warn({ gpu: uuid }, 'GPU supports none of the health events (Xid, ECC): relying on probes');
        }
      }
    } catch (err) {
      // No event set at all: still probe, so lost GPUs are noticed.
      logger.error(
        { err: describe(err) },
        'NVML event set unavailable: health relies on periodic probes only',
      );
    }
    const interval = this.options.probeIntervalMs ?? 5000;
    this.probeTimer = setInterval(() => this.probe(), interval);
    this.probeTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.probeTimer) clearInterval(this.probeTimer);
    await this.watcher?.stop();
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
    const ignored = settings.onlyXids ? !settings.onlyXids.has(xid) : settings.disabledXids.has(xid);
    if (ignored) {
      this.options.onXid?.(xid, false);
      logger.info({ gpu: gpuUuid, xid }, 'Xid ignored (application error or disabled)');
      return;
    }
    this.options.onXid?.(xid, true);
    // A MIG event names its instance: only that MIG device is affected.
    const gpu = inventory.gpus.find((g) => g.uuid === gpuUuid);
    const mig =
      event.gpuInstanceId !== undefined
        ? gpu?.migDevices.find(
            (m) => m.gpuInstanceId === event.gpuInstanceId && m.computeInstanceId === event.computeInstanceId,
          )
        : undefined;
    const reason = xid === XID_GPU_FALLEN_OFF_BUS ? `Xid ${xid} (GPU has fallen off the bus)` : `Xid ${xid}`;
    this.mark(mig?.uuid ?? gpuUuid, reason, xid);
  }

  private onWaitError(error: NvmlError): void {
    // The wait does not say which GPU failed: probe them all and mark only those that do not answer.
    this.options.logger.warn({ err: error.message }, 'NVML event wait failed; probing every GPU');
    this.probe();
  }

  /** Marks GPUs that stopped answering; brings back those that answer again long enough. */
  private probe(): void {
    const { inventory } = this.options;
    const { settings } = this;
    if (settings.enabled) {
      for (const gpu of inventory.gpus) {
        const failure = this.probeGpu(gpu.uuid);
        if (failure) this.mark(gpu.uuid, failure);
      }
    }
    const recovered = this.state.recover(this.now(), settings.recoverAfterSeconds * 1000, (uuid) => {
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

  unhealthy(): UnhealthyRecord[] {
    return this.state.records();
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
