/**
 * A fake Kubernetes API serving one Node: `GET /api/v1/nodes/<name>` and the field-selected watch
 * `GET /api/v1/nodes?fieldSelector=metadata.name=<name>&watch=true&resourceVersion=<rv>` as
 * newline-delimited JSON events. It keeps an event history so a watch resumes from its resourceVersion,
 * answers an expired one with an ERROR 410 event (as the real API does), applies a JSON merge patch of
 * the Node's labels and annotations (`PATCH /api/v1/nodes/<name>`, merge-patch content type only), and
 * refuses anything else, in particular a cluster-wide list or watch.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeNode, NodeWatchEvent } from '../../src/kube/client.js';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
}

export class FakeKubeApi {
  readonly requests: RecordedRequest[] = [];
  /** when set, every request gets this HTTP status */
  failWith: number | undefined;
  private version = 100;
  private labels: Record<string, string>;
  private annotations: Record<string, string> = {};
  private history: { version: number; event: NodeWatchEvent }[] = [];
  /** watches from before this version get 410 Gone */
  private oldestVersion = 0;
  private readonly watches = new Set<http.ServerResponse>();

  private constructor(
    private readonly server: http.Server,
    readonly nodeName: string,
    labels: Record<string, string>,
  ) {
    this.labels = { ...labels };
  }

  static async start(nodeName: string, labels: Record<string, string>, port = 0): Promise<FakeKubeApi> {
    const server = http.createServer();
    const api = new FakeKubeApi(server, nodeName, labels);
    server.on('request', (req, res) => api.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get openWatches(): number {
    return this.watches.size;
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

  /** Changes the Node's labels: a MODIFIED event to every open watch. */
  setLabels(labels: Record<string, string>): void {
    this.labels = { ...labels };
    this.publish({ type: 'MODIFIED', object: this.node() });
  }

  /** A bookmark: only the resourceVersion moves. */
  bookmark(): void {
    this.version++;
    const event: NodeWatchEvent = {
      type: 'BOOKMARK',
      object: { metadata: { name: '', resourceVersion: String(this.version) } },
    };
    for (const res of this.watches) res.write(`${JSON.stringify(event)}\n`);
  }

  /** Forgets the history (etcd compaction): watches resuming from an older version get 410. */
  compact(): void {
    this.oldestVersion = this.version;
    this.history = [];
  }

  /** Breaks every open watch connection without ending the response (API server restart). */
  dropWatches(): void {
    for (const res of this.watches) res.socket?.destroy();
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

  private publish(event: NodeWatchEvent & { type: 'MODIFIED' }): void {
    this.version++;
    event.object.metadata.resourceVersion = String(this.version);
    this.history.push({ version: this.version, event });
    for (const res of this.watches) res.write(`${JSON.stringify(event)}\n`);
  }

  /** A JSON merge patch of metadata.labels / metadata.annotations; anything else in it is refused. */
  private patch(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    status: (code: number, message: string) => void,
  ): void {
    if (req.headers['content-type'] !== 'application/merge-patch+json') {
      status(415, `unsupported patch type ${req.headers['content-type']}`);
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
        status(422, `only metadata.labels and metadata.annotations are patched here: ${body}`);
        return;
      }
      this.labels = mergePatch(this.labels, labels);
      this.annotations = mergePatch(this.annotations, annotations);
      this.publish({ type: 'MODIFIED', object: this.node() });
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
    const status = (code: number, message: string) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', status: 'Failure', code, message }));
    };
    if (this.failWith !== undefined) {
      status(this.failWith, `injected failure ${this.failWith}`);
      return;
    }
    if (req.method === 'PATCH' && url.pathname === `/api/v1/nodes/${this.nodeName}`) {
      this.patch(req, res, status);
      return;
    }
    if (req.method !== 'GET') {
      status(405, `${req.method} is not served here`);
      return;
    }
    if (url.pathname === `/api/v1/nodes/${this.nodeName}`) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.node()));
      return;
    }
    const scoped = query.fieldSelector === `metadata.name=${this.nodeName}`;
    if (url.pathname !== '/api/v1/nodes' || query.watch !== 'true' || !scoped) {
      status(403, `refused: ${req.url} is not a watch of node ${this.nodeName}`);
      return;
    }
    const from = Number(query.resourceVersion);
    res.writeHead(200, { 'content-type': 'application/json' });
    if (from < this.oldestVersion) {
      const gone: NodeWatchEvent = {
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
    for (const { version, event } of this.history)
      if (version > from) res.write(`${JSON.stringify(event)}\n`);
    this.watches.add(res);
    res.on('close', () => this.watches.delete(res));
  }
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
