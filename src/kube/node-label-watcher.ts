/**
 * Follows one label of this agent's own Node through the API, on the shared list/watch loop
 * (list-watch.ts): a GET of the Node, then a watch selected by `metadata.name` that resumes from the
 * last resourceVersion, reads the Node again when that version has expired (410 Gone), and retries
 * with backoff while the API is unreachable.
 */
import type { Logger } from 'pino';
import type { KubeClient, KubeNode, ObjectEvent } from './client.js';
import { inClusterClient } from './in-cluster.js';
import { ListWatch } from './list-watch.js';

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
  private current: string | undefined;
  private readOnce = false;
  private reporting = false;
  private stopped = false;
  private readonly logger: Logger;
  private readonly listWatch: ListWatch<KubeNode>;

  private constructor(
    private readonly options: NodeLabelWatcherOptions,
    client: KubeClient,
  ) {
    const { nodeName } = options;
    this.logger = options.logger.child({ node: nodeName });
    this.listWatch = new ListWatch<KubeNode>({
      source: {
        async list(signal) {
          const node = await client.getNode(nodeName, signal);
          return { objects: [node], resourceVersion: node.metadata.resourceVersion };
        },
        watch: (request) => client.watchNodes({ fieldSelector: `metadata.name=${nodeName}`, ...request }),
      },
      description: `node ${nodeName}`,
      watchName: 'node watch',
      onList: ([node]) => node && this.observe(node),
      onEvent: (event) => this.onEvent(event),
      logger: this.logger,
      retry: options.retry,
      watchTimeoutSeconds: options.watchTimeoutSeconds,
    });
  }

  /**
   * Starts following the label. Resolves after the first attempt to read the Node, successful or not
   * (then `synced` is false, and the value is reported through `onChange` once the API answers).
   * Rejects only when no client can be made (not in a pod, no service account token).
   */
  static async start(options: NodeLabelWatcherOptions): Promise<NodeLabelWatcher> {
    const watcher = new NodeLabelWatcher(options, options.client ?? (await inClusterClient()));
    await watcher.listWatch.start();
    watcher.reporting = true;
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
    this.stopped = true;
    await this.listWatch.stop();
  }

  private onEvent(event: ObjectEvent<KubeNode>): void {
    if (event.type === 'DELETED') {
      this.logger.warn('this node was deleted from the API; keeping the last label value');
      return;
    }
    this.observe(event.object);
  }

  private observe(node: KubeNode): void {
    this.readOnce = true;
    const value = node.metadata.labels?.[this.options.labelKey];
    const previous = this.current;
    if (value === previous) return;
    this.current = value;
    this.logger.debug(
      { label: this.options.labelKey, value: value ?? null, previous: previous ?? null },
      'node label changed',
    );
    if (!this.reporting || this.stopped) return;
    try {
      this.options.onChange(value, previous);
    } catch (err) {
      this.logger.error({ err }, 'node label change handler failed');
    }
  }
}
