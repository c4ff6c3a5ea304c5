/**
 * The shared list/watch loop on a collection (the pods of one node, as the monitor will follow them),
 * driven by an in-memory source with the API's semantics: a list answers every object and the version
 * it was read at, a watch replays the history after a version and follows new events, and a watch from
 * a compacted version gets an ERROR 410 event. The HTTP path is the node-label watch's tests.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { KubeObject, WatchEvent } from '../../src/kube/client.js';
import { ListWatch, type ListWatchSource } from '../../src/kube/list-watch.js';
import { createLogger } from '../../src/log.js';

const pod = (name: string, rv: number): KubeObject => ({
  metadata: { name, namespace: 'default', resourceVersion: String(rv) },
});

/** One watch stream: events pushed to it, ended by the "server" or by the caller's abort. */
class Stream {
  private readonly queue: WatchEvent<KubeObject>[] = [];
  private wake: (() => void) | undefined;
  ended = false;

  constructor(signal: AbortSignal) {
    signal.addEventListener('abort', () => this.end(), { once: true });
  }

  push(event: WatchEvent<KubeObject>): void {
    this.queue.push(event);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *events(): AsyncGenerator<WatchEvent<KubeObject>> {
    for (;;) {
      const next = this.queue.shift();
      if (next) yield next;
      else if (this.ended) return;
      else await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

class FakePods implements ListWatchSource<KubeObject> {
  readonly calls: string[] = [];
  private version = 10;
  private oldest = 0;
  private readonly pods = new Map<string, KubeObject>([['a', pod('a', 10)]]);
  private history: { version: number; event: WatchEvent<KubeObject> }[] = [];
  private readonly streams = new Set<Stream>();

  async list() {
    this.calls.push('list');
    return { objects: [...this.pods.values()], resourceVersion: String(this.version) };
  }

  async watch(request: { resourceVersion: string; signal: AbortSignal }) {
    this.calls.push(`watch ${request.resourceVersion}`);
    const stream = new Stream(request.signal);
    const from = Number(request.resourceVersion);
    if (from < this.oldest) {
      stream.push({ type: 'ERROR', object: { code: 410, reason: 'Expired', message: 'too old' } });
      stream.end();
    } else {
      for (const { version, event } of this.history) if (version > from) stream.push(event);
      this.streams.add(stream);
    }
    return stream.events();
  }

  get openWatches(): number {
    return [...this.streams].filter((s) => !s.ended).length;
  }

  publish(type: 'ADDED' | 'DELETED', name: string): void {
    const object = pod(name, ++this.version);
    if (type === 'ADDED') this.pods.set(name, object);
    else this.pods.delete(name);
    this.history.push({ version: this.version, event: { type, object } });
    for (const stream of this.streams) stream.push({ type, object });
  }

  /** The API server ends every watch (its timeout, a restart). */
  endWatches(): void {
    for (const stream of this.streams) stream.end();
    this.streams.clear();
  }

  /** etcd compaction: resuming from before now gets 410. */
  compact(): void {
    this.oldest = this.version;
    this.history = [];
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function followPods() {
  const source = new FakePods();
  const lists: string[][] = [];
  const events: string[] = [];
  const listWatch = new ListWatch<KubeObject>({
    source,
    description: 'pods on node node-a',
    watchName: 'pod watch',
    onList: (pods) => lists.push(pods.map((p) => p.metadata.name)),
    onEvent: (event) => events.push(`${event.type} ${event.object.metadata.name}`),
    logger: createLogger({ level: 'silent' }),
    retry: { initialMs: 20, maxMs: 100 },
    watchTimeoutSeconds: 60,
  });
  await listWatch.start();
  cleanups.push(() => listWatch.stop());
  return { source, lists, events, listWatch };
}

describe('ListWatch over a collection', () => {
  it('lists, then watches from the version the list was read at', async () => {
    const { source, lists, events } = await followPods();
    expect(lists).toEqual([['a']]);
    await expect.poll(() => source.openWatches).toBe(1);
    source.publish('ADDED', 'b');
    source.publish('DELETED', 'a');
    await expect.poll(() => events).toEqual(['ADDED b', 'DELETED a']);
    expect(source.calls).toEqual(['list', 'watch 10']);
  });

  it('resumes an ended watch from the last event, and lists again when that version expired (410)', async () => {
    const { source, lists, events } = await followPods();
    await expect.poll(() => source.openWatches).toBe(1);
    source.publish('ADDED', 'b');
    await expect.poll(() => events).toEqual(['ADDED b']);
    source.endWatches();
    source.publish('ADDED', 'c'); // while no watch is open
    source.compact();
    await expect.poll(() => lists).toEqual([['a'], ['a', 'b', 'c']]);
    expect(source.calls).toEqual(['list', 'watch 10', 'watch 11', 'list', 'watch 12']);
    await expect.poll(() => source.openWatches).toBe(1);
  });

  it('stop() ends the watch; no callback after it', async () => {
    const { source, events, listWatch } = await followPods();
    await expect.poll(() => source.openWatches).toBe(1);
    await listWatch.stop();
    expect(source.openWatches).toBe(0);
    source.publish('ADDED', 'c');
    expect(events).toEqual([]);
  });
});
