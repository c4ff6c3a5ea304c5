/**
 * GPU feature labels patched onto this agent's own Node (`--node-labels api`). One JSON merge patch sets
 * the labels and removes those the agent set before and no longer wants; which ones it set is kept on
 * the Node itself, in the annotation `vgpu-agent.io/node-labels`, so an agent that restarts still knows
 * them. A label the agent never set is never removed (an admin's, another tool's).
 */
import type { LabelSink, NodeLabelMap } from '../plugin/node-label-publisher.js';
import type { KubeClient } from './client.js';

/** Comma-separated keys of the labels this agent put on the Node. */
export const OWNED_LABELS_ANNOTATION = 'vgpu-agent.io/node-labels';

export class NodeLabelPatcher implements LabelSink {
  /** Keys the agent owns on the Node; undefined until read from its annotation. */
  private owned: Set<string> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly nodeName: string,
  ) {}

  get description(): string {
    return `labels of node ${this.nodeName}`;
  }

  async publish(labels: NodeLabelMap, signal: AbortSignal): Promise<void> {
    const owned = this.owned ?? (await this.readOwned(signal));
    const patch: Record<string, string | null> = { ...labels };
    for (const key of owned) if (!(key in labels)) patch[key] = null;
    const keys = Object.keys(labels).sort();
    await this.client.patchNodeMetadata(
      this.nodeName,
      { labels: patch, annotations: { [OWNED_LABELS_ANNOTATION]: keys.length > 0 ? keys.join(',') : null } },
      signal,
    );
    this.owned = new Set(keys);
  }

  /** Labels stay when the agent stops: a restart must not make them flap for the scheduler. */
  async close(): Promise<void> {}

  private async readOwned(signal: AbortSignal): Promise<Set<string>> {
    const node = await this.client.getNode(this.nodeName, signal);
    const text = node.metadata.annotations?.[OWNED_LABELS_ANNOTATION] ?? '';
    return new Set(text.split(',').filter((key) => key !== ''));
  }
}
