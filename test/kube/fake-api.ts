/**
 * A fake Kubernetes API serving one Node and the pods on it, over HTTP or HTTPS:
 * - `GET /api/v1/nodes/<name>` and the field-selected watch
 *   `GET /api/v1/nodes?fieldSelector=metadata.name=<name>&watch=true&resourceVersion=<rv>`;
 * - the pods of that node, `GET /api/v1/pods?fieldSelector=spec.nodeName=<name>&limit=<n>` in pages
 *   (`continue`), and their watch (`&watch=true&resourceVersion=<rv>`).
 * Watches are newline-delimited JSON events. One event history (one resourceVersion sequence, as etcd
 * keeps) lets a watch resume from its version; an expired version gets an ERROR 410 event (a watch) or
 * a 410 status (an expired `continue`), as the real API answers. It applies a JSON merge patch of the
 * Node's labels and annotations (`PATCH /api/v1/nodes/<name>`, merge-patch content type only). Anything
 * else is refused, in particular a cluster-wide list or watch.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KubeNode, KubeObject, KubePod, WatchEvent } from '../../src/kube/client.js';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
}

export interface FakeKubeApiOptions {
  port?: number;
  /** serve HTTPS with this key and certificate (PEM) */
  tls?: { key: string | Buffer; cert: string | Buffer };
}

type Resource = 'nodes' | 'pods';
type ObjectChange = { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: KubeObject };

export class FakeKubeApi {
  readonly requests: RecordedRequest[] = [];
  /** when set, every request gets this HTTP status */
  failWith: number | undefined;
  private version = 100;
  private labels: Record<string, string>;
  private readonly pods = new Map<string, KubePod>();
  private history: { version: number; resource: Resource; event: ObjectChange }[] = [];
  /** watches (and list continuations) from before this version get 410 Gone */
  private annotations: Record<string, string> = {};
  private oldestVersion = 0;
  private readonly watches = new Map<http.ServerResponse, Resource>();

  private constructor(
    private readonly server: http.Server,
    readonly nodeName: string,
    labels: Record<string, string>,
    private readonly secure: boolean,
  ) {
    this.labels = { ...labels };
  }

  static async start(
    nodeName: string,
    labels: Record<string, string>,
    options: FakeKubeApiOptions = {},
  ): Promise<FakeKubeApi> {
    const server = options.tls ? https.createServer(options.tls) : http.createServer();
    const api = new FakeKubeApi(server, nodeName, labels, options.tls !== undefined);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => api.handle(req, res));
    await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
    return api;
  }

  get url(): string {
    return `${this.secure ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get openWatches(): number {
    return this.watches.size;
  }

  /** Open watches of one resource. */
  openWatchesOf(resource: Resource): number {
    return [...this.watches.values()].filter((r) => r === resource).length;
  }

  get resourceVersion(): string {
    return String(this.version);
  }

  /** The Node's labels as they are now. */
  get nodeLabels(): Record<string, string> {
    return { ...this.labels };
  }

  get nodeAnnotations(): Record<string, string> {
    return { ...this.annotations };
  }

  /** Sets the Node's annotations (no event: a test's starting point). */
  setAnnotations(annotations: Record<string, string>): void {
    this.annotations = { ...annotations };
  }

  /** Changes the Node's labels: a MODIFIED event to every open node watch. */
  setLabels(labels: Record<string, string>): void {
    this.labels = { ...labels };
    this.publish('nodes', { type: 'MODIFIED', object: this.node() });
  }

  /** Creates or replaces a pod of this node (by uid): ADDED or MODIFIED to every open pod watch. */
  putPod(pod: Omit<KubePod, 'metadata'> & { metadata: Omit<KubePod['metadata'], 'resourceVersion'> }): void {
    const type = this.pods.has(pod.metadata.uid) ? 'MODIFIED' : 'ADDED';
    const stored = structuredClone(pod) as KubePod;
    this.pods.set(pod.metadata.uid, stored);
    this.publish('pods', { type, object: stored });
  }

  /** Deletes a pod: DELETED to every open pod watch. */
  deletePod(uid: string): void {
    const pod = this.pods.get(uid);
    if (!pod) return;
    this.pods.delete(uid);
    this.publish('pods', { type: 'DELETED', object: pod });
  }

  /** A bookmark: only the resourceVersion moves. */
  bookmark(): void {
    this.version++;
    const event: WatchEvent<KubeObject> = {
      type: 'BOOKMARK',
      object: { metadata: { name: '', resourceVersion: String(this.version) } },
    };
    for (const res of this.watches.keys()) res.write(`${JSON.stringify(event)}\n`);
  }

  /** Forgets the history (etcd compaction): watches resuming from an older version get 410. */
  compact(): void {
    this.oldestVersion = this.version;
    this.history = [];
  }

  /** Breaks every open watch connection without ending the response (API server restart). */
  dropWatches(): void {
    for (const res of this.watches.keys()) res.socket?.destroy();
    this.watches.clear();
  }

  async close(): Promise<void> {
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private node(): KubeNode {
    return {
      metadata: {
        name: this.nodeName,
        resourceVersion: String(this.version),
        labels: { ...this.labels },
        annotations: { ...this.annotations },
      },
    };
  }

  private publish(resource: Resource, event: ObjectChange): void {
    this.version++;
    event.object.metadata.resourceVersion = String(this.version);
    const copy = structuredClone(event);
    this.history.push({ version: this.version, resource, event: copy });
    for (const [res, watched] of this.watches)
      if (watched === resource) res.write(`${JSON.stringify(copy)}\n`);
  }

  /** A JSON merge patch of metadata.labels / metadata.annotations; anything else in it is refused. */
  private patch(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.headers['content-type'] !== 'application/merge-patch+json') {
      sendStatus(res, 415, `unsupported patch type ${req.headers['content-type']}`);
      return;
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      const { metadata, ...rest } = JSON.parse(body) as { metadata?: Record<string, unknown> };
      const { labels, annotations, ...other } = metadata ?? {};
      if (Object.keys(rest).length > 0 || Object.keys(other).length > 0) {
        sendStatus(res, 422, `only metadata.labels and metadata.annotations are patched here: ${body}`);
        return;
      }
      this.labels = mergePatch(this.labels, labels);
      this.annotations = mergePatch(this.annotations, annotations);
      this.publish('nodes', { type: 'MODIFIED', object: this.node() });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.node()));
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      authorization: req.headers.authorization,
    });
    if (this.failWith !== undefined) {
      sendStatus(res, this.failWith, `injected failure ${this.failWith}`);
      return;
    }
    if (req.method === 'PATCH' && url.pathname === `/api/v1/nodes/${this.nodeName}`) {
      this.patch(req, res);
      return;
    }
    if (req.method !== 'GET') {
      sendStatus(res, 405, `${req.method} is not served here`);
      return;
    }
    if (url.pathname === `/api/v1/nodes/${this.nodeName}`) {
      sendJson(res, this.node());
      return;
    }
    const resource = this.scopedCollection(url.pathname, query);
    if (!resource) {
      sendStatus(res, 403, `refused: ${req.url} is not scoped to node ${this.nodeName}`);
      return;
    }
    if (query.watch === 'true') this.watch(res, resource, Number(query.resourceVersion));
    else if (resource === 'pods') this.listPods(res, query);
    else sendStatus(res, 403, `refused: ${req.url} lists nodes`);
  }

  /** Which collection a list or watch reads, when it is selected to this node; undefined otherwise. */
  private scopedCollection(path: string, query: Record<string, string>): Resource | undefined {
    if (path === '/api/v1/nodes' && query.fieldSelector === `metadata.name=${this.nodeName}`) return 'nodes';
    if (path === '/api/v1/pods' && query.fieldSelector === `spec.nodeName=${this.nodeName}`) return 'pods';
    return undefined;
  }

  /** One page: `continue` is `<offset>:<version of the list>`, expired once that version is compacted. */
  private listPods(res: http.ServerResponse, query: Record<string, string>): void {
    const limit = Number(query.limit) || Number.POSITIVE_INFINITY;
    const [offsetText, versionText] = (query.continue ?? `0:${this.version}`).split(':');
    const listVersion = Number(versionText);
    if (listVersion < this.oldestVersion) {
      sendStatus(res, 410, 'The provided continue parameter is too old', 'Expired');
      return;
    }
    const offset = Number(offsetText);
    const all = [...this.pods.values()];
    const items = all.slice(offset, offset + limit);
    const more = offset + items.length < all.length;
    sendJson(res, {
      kind: 'PodList',
      metadata: {
        resourceVersion: String(listVersion),
        ...(more ? { continue: `${offset + items.length}:${listVersion}` } : {}),
      },
      items,
    });
  }

  private watch(res: http.ServerResponse, resource: Resource, from: number): void {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders(); // as the API server does: the watch is open before its first event
    if (from < this.oldestVersion) {
      const gone: WatchEvent<KubeObject> = {
        type: 'ERROR',
        object: {
          kind: 'Status',
          code: 410,
          reason: 'Expired',
          message: `too old resource version: ${from}`,
        },
      };
      res.end(`${JSON.stringify(gone)}\n`);
      return;
    }
    for (const entry of this.history)
      if (entry.resource === resource && entry.version > from) res.write(`${JSON.stringify(entry.event)}\n`);
    this.watches.set(res, resource);
    res.on('close', () => this.watches.delete(res));
  }
}

function sendJson(res: http.ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function sendStatus(res: http.ServerResponse, code: number, message: string, reason?: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({ kind: 'Status', status: 'Failure', code, message, ...(reason ? { reason } : {}) }),
  );
}

/** RFC 7386 on a flat string map: null removes a key, a string sets it. */
function mergePatch(current: Record<string, string>, patch: unknown): Record<string, string> {
  const merged = { ...current };
  for (const [key, value] of Object.entries((patch ?? {}) as Record<string, string | null>)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}
