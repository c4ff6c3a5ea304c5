/**
 * Keeps the node's `hami.io/node-nvidia-register` annotation equal to what the node offers HAMi's
 * scheduler: recomputed from inventory, health and config whenever one changes (a GPU turning
 * Unhealthy or lost is registered without `health`, so the scheduler skips it), patched only when the
 * value changed, retried with backoff while the API fails. The scheduler itself writes the handshake
 * annotation (`Requesting_<time>`) and judges the node by its allocatable count, so nothing else is
 * written here.
 */
import type { Logger } from 'pino';
import { Backoff } from '../backoff.js';
import type { HamiSettings } from '../config/schema.js';
import type { HealthState } from '../devices/health-state.js';
import type { Inventory } from '../devices/inventory-types.js';
import type { AdvertisedDevice } from '../devices/resource-types.js';
import type { HamiKubeClient } from '../kube/client.js';
import {
  encodeRegisterAnnotation,
  HAMI_CORE_MODE,
  REGISTER_ANNOTATION,
  type RegisteredGpu,
  registeredType,
} from './protocol.js';

/** What HAMi registers for each GPU the node advertises, in index order. */
export function registeredGpus(
  devices: readonly AdvertisedDevice[],
  inventory: Inventory,
  health: HealthState,
  hami: HamiSettings,
): RegisteredGpu[] {
  const targets = new Map(devices.map((d) => [d.target.uuid, d.target]));
  return inventory.gpus
    .filter((gpu) => targets.has(gpu.uuid))
    .sort((a, b) => a.index - b.index)
    .flatMap((gpu): RegisteredGpu[] => {
      // HAMi skips a GPU whose memory NVML cannot report unless the config gives it.
      const memoryMiB = gpu.memoryMiB > 0 ? gpu.memoryMiB : hami.preConfiguredDeviceMemory;
      if (memoryMiB <= 0) return [];
      return [
        {
          id: gpu.uuid,
          index: gpu.index,
          count: hami.deviceSplitCount,
          // Go's int32(float64(x) * f): truncated, like HAMi.
          devmem:
            hami.deviceMemoryScaling === 1 ? memoryMiB : Math.trunc(memoryMiB * hami.deviceMemoryScaling),
          devcore: Math.trunc(hami.deviceCoreScaling * 100),
          type: registeredType(gpu.name),
          numa: gpu.numaNode ?? 0,
          mode: HAMI_CORE_MODE,
          health: health.isHealthy(targets.get(gpu.uuid)!),
        },
      ];
    });
}

export interface HamiRegistrarOptions {
  client: HamiKubeClient;
  nodeName: string;
  logger: Logger;
  retry?: { initialMs?: number; maxMs?: number };
}

export class HamiRegistrar {
  /** the value the node should carry; null = remove it (the mode was turned off) */
  private wanted: string | null | undefined;
  /** the value last written successfully */
  private published: string | null | undefined;
  private running: Promise<void> | undefined;
  private readonly backoff: Backoff;
  private readonly stopping = new AbortController();
  private readonly logger: Logger;

  constructor(private readonly options: HamiRegistrarOptions) {
    this.logger = options.logger.child({ node: options.nodeName, annotation: REGISTER_ANNOTATION });
    this.backoff = new Backoff({ initialMs: 500, maxMs: 30_000, ...options.retry, unref: true });
  }

  /** The GPUs to register now; patches the node if that changes the annotation. */
  update(gpus: readonly RegisteredGpu[]): void {
    this.want(encodeRegisterAnnotation(gpus));
  }

  /** HAMi mode turned off: the scheduler must no longer see GPUs here. */
  withdraw(): void {
    this.want(null);
  }

  /** Resolves once the wanted value is written (or the registrar stopped); for tests and shutdown. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  stop(): void {
    this.stopping.abort();
  }

  private want(value: string | null): void {
    this.wanted = value;
    if (!this.running) this.running = this.publishLoop().finally(() => (this.running = undefined));
  }

  /** Writes until the node carries the latest wanted value; one patch at a time. */
  private async publishLoop(): Promise<void> {
    const { signal } = this.stopping;
    while (!signal.aborted && this.wanted !== this.published) {
      const value = this.wanted ?? null;
      try {
        await this.options.client.patchNodeAnnotations(
          this.options.nodeName,
          { [REGISTER_ANNOTATION]: value },
          signal,
        );
        this.published = value;
        this.backoff.reset();
        this.logger.info(
          { value },
          value === null ? 'HAMi registration removed' : 'registered GPUs for HAMi',
        );
      } catch (err) {
        if (signal.aborted) return;
        const retryInMs = this.backoff.next();
        this.logger.warn({ err, retryInMs }, 'cannot write the HAMi register annotation; retrying');
        await this.backoff.pause(retryInMs, signal);
      }
    }
  }
}
