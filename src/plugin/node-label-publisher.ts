/**
 * Keeps the node's GPU feature labels current (`--node-labels nfd|api`): the plugin agent hands it the
 * node's state after start, every config applied and every health change; it computes the labels
 * (devices/node-labels.ts) and writes them to its sink (an NFD feature file, or the Node through the
 * API) only when they differ from those last written. One write at a time; a failed write is retried
 * with backoff, always with the newest labels.
 */
import type { Logger } from 'pino';
import { Backoff } from '../backoff.js';
import type { HealthState } from '../devices/health-state.js';
import { type HostLabelFacts, type NodeLabelInput, nodeLabels } from '../devices/node-labels.js';

export type NodeLabelMap = Readonly<Record<string, string>>;

/** Where labels go. */
export interface LabelSink {
  /** for logs: `NFD feature file /etc/…/vgpu-agent`, `labels of node gpu-1` */
  readonly description: string;
  /** Puts exactly these labels on the node, replacing those published before. */
  publish(labels: NodeLabelMap, signal: AbortSignal): Promise<void>;
  /** The agent stops. */
  close(): Promise<void>;
}

/** Xid 79: the GPU has fallen off the bus. */
const XID_FALLEN_OFF_BUS = 79;

/**
 * GPUs that are gone rather than faulty: NVML no longer answers for them (marked by the health probe,
 * no Xid) or they reported falling off the bus. A GPU unhealthy from another Xid still counts, as in GFD.
 */
export function lostDevices(health: HealthState): Set<string> {
  return new Set(
    health
      .records()
      .filter((r) => r.xid === undefined || r.xid === XID_FALLEN_OFF_BUS)
      .map((r) => r.uuid),
  );
}

export interface NodeLabelPublisherOptions {
  sink: LabelSink;
  host: HostLabelFacts;
  logger: Logger;
  retry?: { initialMs?: number; maxMs?: number };
}

export class NodeLabelPublisher {
  private desired: NodeLabelMap | undefined;
  private publishedKey: string | undefined;
  /** the warnings last logged: the same ones are not logged again on every health change */
  private warnedKey = '[]';
  private running: Promise<void> | undefined;
  private readonly backoff: Backoff;
  private readonly stopping = new AbortController();
  private readonly logger: Logger;

  constructor(private readonly options: NodeLabelPublisherOptions) {
    this.logger = options.logger.child({ labels: options.sink.description });
    this.backoff = new Backoff({
      initialMs: options.retry?.initialMs ?? 1000,
      maxMs: options.retry?.maxMs ?? 60_000,
      jitter: 0.2,
    });
  }

  /** The labels for this state of the node; written unless they are those written last. */
  update(state: Omit<NodeLabelInput, 'host'>): void {
    if (this.stopping.signal.aborted) return;
    const { labels, warnings } = nodeLabels({ ...state, host: this.options.host });
    const warnedKey = JSON.stringify(warnings);
    if (warnedKey !== this.warnedKey) for (const warning of warnings) this.logger.warn(warning);
    this.warnedKey = warnedKey;
    this.desired = labels;
    this.running ??= this.publishLoop().finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves when the newest labels are written, or the publisher stopped. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Stops retrying, waits for a write in flight, then closes the sink (the NFD file is removed). */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.backoff.wake();
    await this.running;
    await this.options.sink
      .close()
      .catch((err: unknown) => this.logger.warn({ err }, 'closing the label output failed'));
  }

  private async publishLoop(): Promise<void> {
    const { signal } = this.stopping;
    while (!signal.aborted && this.desired) {
      const labels = this.desired;
      const key = JSON.stringify(labels);
      if (key === this.publishedKey) return;
      try {
        await this.options.sink.publish(labels, signal);
        this.publishedKey = key;
        this.backoff.reset();
        this.logger.info({ count: Object.keys(labels).length }, 'GPU feature labels published');
      } catch (err) {
        if (signal.aborted) return;
        const retryMs = this.backoff.next();
        this.logger.warn({ err, retryMs }, 'publishing GPU feature labels failed; retrying');
        await this.backoff.pause(retryMs, signal);
      }
    }
  }
}
