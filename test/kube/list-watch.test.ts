/**
 * The shared list/watch loop on a collection: the pods of one node, as the monitor will follow them.
 * A small API serves `GET /api/v1/pods?fieldSelector=spec.nodeName=node-a` (list and watch) from an
 * event history, answers an expired resourceVersion with an ERROR 410 event, and refuses any request
 * that is not scoped to the node.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpKubeClient, type KubeObject, type WatchEvent } from '../../src/kube/client.js';
import { fieldSelectedCollection, ListWatch } from '../../src/kube/list-watch.js';
import { createLogger } from '../../src/log.js';

const SELECTOR = 'spec.nodeName=node-a';
const pod = (name: string, rv: number): KubeObject => ({
  metadata: { name, namespace: 'default', resourceVersion: String(rv) },
});

/** Pods of node-a: list, watch from a version, 410 for versions before `oldest`. */
class FakePodsApi {
  readonly requests: Record<string, string>[] = [];
  version = 10;
  oldest = 0;
  pods = new Map<string, KubeObject>([['a', pod('a', 10)]]);
  private history: { version: number; event: WatchEvent<KubeObject> }[] = [];
  private readonly watches = new Set<http.ServerResponse>();
  private readonly server = http.createServer((req, res) => this.handle(req, res));

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  publish(type: 'ADDED' | 'DELETED', name: string): void {
    const object = pod(name, ++this.version);
    if (type === 'ADDED') this.pods.set(name, object);
    else this.pods.delete(name);
    const event = { type, object };
    this.history.push({ version: this.version, event });
    for (const res of this.watches) res.write(`${JSON.stringify(event)}\n`);
  }

  /** The API server ends every watch (its timeout, a restart). */
  endWatches(): void {
    for (const res of this.watches) res.end();
    this.watches.clear();
  }

  /** etcd compaction: resuming from before now gets 410. */
  compact(): void {
    this.oldest = this.version;
    this.history = [];
  }

  get openWatches(): number {
    return this.watches.size;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    this.requests.push(query);
    if (url.pathname !== '/api/v1/pods' || query.fieldSelector !== SELECTOR) {
      res.writeHead(403).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    if (query.watch !== 'true') {
      const items = [...this.pods.values()];
      res.end(JSON.stringify({ metadata: { resourceVersion: String(this.version) }, items }));
      return;
    }
    const from = Number(query.resourceVersion);
    if (from < this.oldest) {
      res.end(
        `${JSON.stringify({ type: 'ERROR', object: { code: 410, reason: 'Expired', message: 'too old' } })}\n`,
      );
      return;
    }
    for (const { version, event } of this.history)
      if (version > from) res.write(`${JSON.stringify(event)}\n`);
    this.watches.add(res);
    res.on('close', () => this.watches.delete(res));
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function followPods() {
  const api = new FakePodsApi();
  const server = await api.listen();
  cleanups.push(() => api.close());
  const client = new HttpKubeClient({ server, requestTimeoutMs: 2000 });
  const lists: string[][] = [];
  const events: string[] = [];
  const listWatch = new ListWatch<KubeObject>({
    source: fieldSelectedCollection(client, '/api/v1/pods', SELECTOR),
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
  return { api, lists, events, listWatch };
}

describe('ListWatch over the pods of this node', () => {
  it('lists, then watches from the list resourceVersion, every request selected by spec.nodeName', async () => {
    const { api, lists, events } = await followPods();
    expect(lists).toEqual([['a']]);
    await expect.poll(() => api.openWatches).toBe(1);
    api.publish('ADDED', 'b');
    api.publish('DELETED', 'a');
    await expect.poll(() => events).toEqual(['ADDED b', 'DELETED a']);
    expect(api.requests.map((q) => [q.watch ?? 'list', q.resourceVersion ?? ''])).toEqual([
      ['list', ''],
      ['true', '10'],
    ]);
    expect(api.requests.every((q) => q.fieldSelector === SELECTOR)).toBe(true);
  });

  it('lists again when the version it resumes from has expired (410 Gone), with the full set', async () => {
    const { api, lists } = await followPods();
    await expect.poll(() => api.openWatches).toBe(1);
    api.endWatches();
    api.publish('ADDED', 'b'); // while no watch is open
    api.compact();
    await expect.poll(() => lists).toEqual([['a'], ['a', 'b']]);
    expect(api.requests.map((q) => q.watch ?? 'list')).toEqual(['list', 'true', 'true', 'list', 'true']);
    await expect.poll(() => api.openWatches).toBe(1);
  });

  it('stop() ends the watch; no callback after it', async () => {
    const { api, events, listWatch } = await followPods();
    await expect.poll(() => api.openWatches).toBe(1);
    await listWatch.stop();
    await expect.poll(() => api.openWatches).toBe(0);
    api.publish('ADDED', 'c');
    expect(events).toEqual([]);
  });
});
