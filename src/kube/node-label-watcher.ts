/**
 * Follows one label of this agent's own Node through the API: a GET, then a watch selected by
 * `metadata.name` that resumes from the last resourceVersion, re-reads the Node when that version has
 * expired (410 Gone), and retries with capped exponential backoff while the API is unreachable. It never
 * throws once started; it logs the first failure of a streak and the recovery.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { KubeApiError, type KubeClient, type KubeNode, type NodeWatchEvent } from './client.js';
import { inClusterClient } from './in-cluster.js';

export interface NodeLabelWatcherOptions {
  nodeName: string;
  labelKey: string;
  /** Called when the label's value changes after `start` resolved; undefined = label removed. */
  onChange: (value: string | undefined, previous: string | undefined) => void;
  logger: Logger;
  /** default: the pod's service account (`inClusterClient`) */
  client?: KubeClient;
  /** backoff between failed attempts: doubles from initialMs up to maxMs, ±20% jitter */
  retry?: { initialMs?: number; maxMs?: number };
  /** how long the API server keeps one watch open; default 5–10 min, spread like client-go's */
  watchTimeoutSeconds?: number;
}

export class NodeLabelWatcher {
  private readonly abort = new AbortController();
  private loop: Promise<void> = Promise.resolve();
  private current: string | undefined;
  private readOnce = false;
  private reporting = false;
  private failures = 0;
  /** where the watch resumes: from the last GET, event or bookmark; undefined = read the Node again */
  private resourceVersion: string | undefined;

  private constructor(
    private readonly options: NodeLabelWatcherOptions,
    private readonly client: KubeClient,
  ) {}

  /**
   * Starts following the label. Resolves after the first attempt to read the Node, successful or not
   * (then `synced` is false, and the value is reported through `onChange` once the API answers).
   * Rejects only when no client can be made (not in a pod, no service account token).
   */
  static async start(options: NodeLabelWatcherOptions): Promise<NodeLabelWatcher> {
    const watcher = new NodeLabelWatcher(options, options.client ?? (await inClusterClient()));
    await new Promise<void>((firstAttemptDone) => {
      watcher.loop = watcher.run(() => {
        watcher.reporting = true;
        firstAttemptDone();
      });
    });
    return watcher;
  }

  /** The label's value as last read; undefined when absent or not read yet. */
  get value(): string | undefined {
    return this.current;
  }

  /** Whether the Node has been read at least once. */
  get synced(): boolean {
    return this.readOnce;
  }

  /** Ends the watch and the retries; no callback runs once this resolves. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(firstAttemptDone: () => void): Promise<void> {
    const { nodeName, logger } = this.options;
    const signal = this.abort.signal;
    let done = false;
    const attempted = () => {
      if (!done) firstAttemptDone();
      done = true;
    };
    while (!signal.aborted) {
      let watchOpenedAt: number | undefined;
      let freshRead = false;
      try {
        if (this.resourceVersion === undefined) {
          freshRead = true;
          const node = await this.client.getNode(nodeName, signal);
          this.observe(node);
          this.resourceVersion = node.metadata.resourceVersion;
          this.recovered();
          attempted();
        }
        const events = await this.client.watchNodes({
          fieldSelector: `metadata.name=${nodeName}`,
          resourceVersion: this.resourceVersion,
          timeoutSeconds: this.options.watchTimeoutSeconds ?? Math.round(300 * (1 + Math.random())),
          signal,
        });
        watchOpenedAt = Date.now();
        this.recovered();
        await this.follow(events);
        // The server ended the watch (its timeout): resume from where it stopped.
      } catch (error) {
        if (signal.aborted) break;
        attempted();
        if (isGone(error)) {
          this.resourceVersion = undefined;
          // Gone right after a fresh read would loop without a pause: then it counts as a failure.
          if (!freshRead) {
            logger.debug({ node: nodeName }, 'node watch expired (410 Gone): reading the node again');
            continue;
          }
        }
        // A watch that ran for a while and dropped (API server restart, idle proxy): reconnect at once.
        const initialMs = this.options.retry?.initialMs ?? 1000;
        if (watchOpenedAt !== undefined && Date.now() - watchOpenedAt >= initialMs) {
          logger.debug({ node: nodeName, err: message(error) }, 'node watch dropped: reconnecting');
          continue;
        }
        this.failed(error);
        await sleep(this.backoffMs(), undefined, { signal }).catch(() => undefined);
      }
    }
    attempted();
  }

  /** Applies the watch's events until the server ends it. An ERROR event (410 Gone…) is thrown. */
  private async follow(events: AsyncIterable<NodeWatchEvent>): Promise<void> {
    for await (const event of events) {
      if (event.type === 'ERROR') {
        const status = event.object;
        throw new KubeApiError(
          status.code ?? 0,
          `node watch: ${status.message ?? 'error event'}`,
          status.reason,
        );
      }
      this.resourceVersion = event.object.metadata.resourceVersion || this.resourceVersion;
      if (event.type === 'BOOKMARK') continue;
      if (event.type === 'DELETED') {
        this.options.logger.warn(
          { node: this.options.nodeName },
          'this node was deleted from the API; keeping the last label value',
        );
        continue;
      }
      this.observe(event.object);
    }
  }

  private observe(node: KubeNode): void {
    this.readOnce = true;
    const value = node.metadata.labels?.[this.options.labelKey];
    const previous = this.current;
    if (value === previous) return;
    this.current = value;
    this.options.logger.debug(
      {
        node: this.options.nodeName,
        label: this.options.labelKey,
        value: value ?? null,
        previous: previous ?? null,
      },
      'node label changed',
    );
    if (!this.reporting || this.abort.signal.aborted) return;
    try {
      this.options.onChange(value, previous);
    } catch (error) {
      this.options.logger.error({ err: error }, 'node label change handler failed');
    }
  }

  private failed(error: unknown): void {
    this.failures++;
    const { logger, nodeName } = this.options;
    if (this.failures === 1) {
      logger.warn(
        { node: nodeName, err: message(error) },
        `cannot read node ${nodeName} from the Kubernetes API; retrying with backoff (next log when it recovers)`,
      );
    } else {
      logger.debug(
        { node: nodeName, err: message(error), failures: this.failures },
        'Kubernetes API still failing',
      );
    }
  }

  private recovered(): void {
    if (this.failures === 0) return;
    this.options.logger.info(
      { node: this.options.nodeName, failures: this.failures },
      `Kubernetes API reachable again after ${this.failures} failed attempt(s)`,
    );
    this.failures = 0;
  }

  private backoffMs(): number {
    const initial = this.options.retry?.initialMs ?? 1000;
    const max = this.options.retry?.maxMs ?? 30_000;
    const base = Math.min(max, initial * 2 ** Math.min(this.failures - 1, 20));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }
}

function isGone(error: unknown): boolean {
  return error instanceof KubeApiError && (error.status === 410 || error.reason === 'Expired');
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
