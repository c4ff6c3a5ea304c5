/**
 * Keeps the node's `hami.io/node-nvidia-register` annotation equal to what the node offers HAMi's
 * scheduler: recomputed from inventory, health and config whenever one changes (a GPU turning
 * Unhealthy or lost is registered without `health`, so the scheduler skips it), patched only when the
 * value changed, retried with backoff while the API fails. With `topologyScore` on, the
 * `hami.io/node-nvidia-score` annotation follows the same rule; with it off the agent leaves that
 * annotation alone, as HAMi's plugin does. The scheduler itself writes the handshake annotation
 * (`Requesting_<time>`) and judges the node by its allocatable count, so nothing else is written here.
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
  encodeScoreAnnotation,
  HAMI_CORE_MODE,
  REGISTER_ANNOTATION,
  type RegisteredGpu,
  registeredType,
  SCORE_ANNOTATION,
} from './protocol.js';
import type { HamiTopologyScores } from './topology-score.js';

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

/** Annotation values to write; null removes the annotation. */
type Annotations = Record<string, string | null>;

export class HamiRegistrar {
  /** what the node should carry; a key left out is left as it is on the node */
  private wanted: Annotations = {};
  /** the values last written successfully */
  private readonly published: Annotations = {};
  private running: Promise<void> | undefined;
  private readonly backoff: Backoff;
  private readonly stopping = new AbortController();
  private readonly logger: Logger;

  constructor(private readonly options: HamiRegistrarOptions) {
    this.logger = options.logger.child({ node: options.nodeName });
    this.backoff = new Backoff({ initialMs: 500, maxMs: 30_000, ...options.retry, unref: true });
  }

  /**
   * The GPUs to register now, and their pair scores when `topologyScore` is on (undefined: the score
   * annotation is left alone); patches the node with whichever value changes.
   */
  update(gpus: readonly RegisteredGpu[], topology?: HamiTopologyScores): void {
    const wanted: Annotations = { [REGISTER_ANNOTATION]: encodeRegisterAnnotation(gpus) };
    if (topology) {
      wanted[SCORE_ANNOTATION] = encodeScoreAnnotation(topology.scores);
      if (topology.asymmetric.length > 0 && this.wanted[SCORE_ANNOTATION] !== wanted[SCORE_ANNOTATION]) {
        this.logger.warn(
          { pairs: topology.asymmetric.map((pair) => pair.join(' <-> ')) },
          'only one GPU of these pairs reports NVLinks to the other (a failing link or driver?): scored 0, as HAMi does',
        );
      }
    }
    this.want(wanted);
  }

  /** HAMi mode turned off: the scheduler must no longer see GPUs (or scores) here. */
  withdraw(): void {
    this.want({ [REGISTER_ANNOTATION]: null, [SCORE_ANNOTATION]: null });
  }

  /** Resolves once the wanted values are written (or the registrar stopped); for tests and shutdown. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  stop(): void {
    this.stopping.abort();
  }

  private want(values: Annotations): void {
    this.wanted = values;
    if (!this.running) this.running = this.publishLoop().finally(() => (this.running = undefined));
  }

  /** The wanted values the node does not carry yet. */
  private changes(): Annotations | undefined {
    const changed = Object.entries(this.wanted).filter(([key, value]) => this.published[key] !== value);
    return changed.length === 0 ? undefined : Object.fromEntries(changed);
  }

  /** Writes until the node carries the latest wanted values; one patch at a time. */
  private async publishLoop(): Promise<void> {
    const { signal } = this.stopping;
    for (let patch = this.changes(); patch && !signal.aborted; patch = this.changes()) {
      try {
        await this.options.client.patchNodeAnnotations(this.options.nodeName, patch, signal);
        Object.assign(this.published, patch);
        this.backoff.reset();
        this.logger.info(
          { annotations: patch },
          patch[REGISTER_ANNOTATION] === null ? 'HAMi registration removed' : 'HAMi node annotations updated',
        );
      } catch (err) {
        if (signal.aborted) return;
        const retryInMs = this.backoff.next();
        this.logger.warn({ err, retryInMs }, 'cannot write the HAMi node annotations; retrying');
        await this.backoff.pause(retryInMs, signal);
      }
    }
  }
}
