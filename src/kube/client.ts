/**
 * The Kubernetes API calls the agent makes, and nothing else: read one Node, watch that Node (a
 * field-selected watch, never the whole node list), and merge-patch that Node's labels and annotations
 * (GPU feature labels, `--node-labels api`). Each call is a method, and the chart's RBAC grants
 * exactly these (test/chart/rbac.test.ts): another call (the pods on this node, for the monitor) comes
 * as a method of its own with its grant. Plain node:http(s) rather than @kubernetes/client-node: its
 * 2.x needs Node >= 22.19 (undici 8) and 1.x installs 72 packages / 72 MB, more than double the agent's
 * runtime dependencies, for requests whose protocol fits here.
 */
import http from 'node:http';
import https from 'node:https';
import { StringDecoder } from 'node:string_decoder';

/** The part of any object the agent reads: which version of it this is. */
export interface KubeObject {
  metadata: { name: string; resourceVersion: string; namespace?: string };
}

/** The part of a Node object the agent reads. */
export interface KubeNode extends KubeObject {
  metadata: KubeObject['metadata'] & {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
}

/** A JSON merge patch of a Node's metadata: a value sets the key, null removes it, absent keys stay. */
export interface NodeMetadataPatch {
  labels?: Record<string, string | null>;
  annotations?: Record<string, string | null>;
}

/** `metav1.Status`, as the API sends it with errors and in ERROR watch events. */
export interface KubeStatus {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

/** A change of one object. */
export type ObjectEvent<T> = { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: T };
/** What a watch stream carries: changes, bookmarks (only the version moves) and errors. */
export type WatchEvent<T> =
  | ObjectEvent<T>
  | { type: 'BOOKMARK'; object: T }
  | { type: 'ERROR'; object: KubeStatus };
export type NodeWatchEvent = WatchEvent<KubeNode>;

export interface WatchNodesRequest {
  /** `metadata.name=<node>`: the watch must stay scoped to this node */
  fieldSelector: string;
  /** resume after this version (from the last GET, event or bookmark) */
  resourceVersion: string;
  /** the API server ends the watch after this long; the caller reconnects */
  timeoutSeconds: number;
  signal: AbortSignal;
}

export interface KubeClient {
  getNode(name: string, signal: AbortSignal): Promise<KubeNode>;
  /** Resolves once the API accepted the watch; the iterable ends when the server closes it. */
  watchNodes(request: WatchNodesRequest): Promise<AsyncIterable<NodeWatchEvent>>;
  /** Merge-patches the Node's labels and annotations; resolves with the Node as patched. */
  patchNodeMetadata(name: string, patch: NodeMetadataPatch, signal: AbortSignal): Promise<KubeNode>;
}

/** The API answered with an error status (or not at all, status 0). */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

export interface HttpKubeClientOptions {
  /** `https://10.96.0.1:443` in a pod; `http://127.0.0.1:port` for a test server */
  server: string;
  /** PEM of the cluster CA */
  ca?: string | Buffer;
  /** the bearer token, read on every request: bound service account tokens are rotated in place */
  token?: () => Promise<string | undefined>;
  /** for a GET, and for a watch's silence beyond its own timeout */
  requestTimeoutMs?: number;
}

/** A single object or event line larger than this is not something a Node object produces. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

export class HttpKubeClient implements KubeClient {
  private readonly server: URL;

  constructor(private readonly options: HttpKubeClientOptions) {
    this.server = new URL(options.server);
  }

  async getNode(name: string, signal: AbortSignal): Promise<KubeNode> {
    const response = await this.request(`/api/v1/nodes/${encodeURIComponent(name)}`, signal);
    return parseJson(await readBody(response), `node ${name}`) as KubeNode;
  }

  async watchNodes(request: WatchNodesRequest): Promise<AsyncIterable<NodeWatchEvent>> {
    const query = new URLSearchParams({
      fieldSelector: request.fieldSelector,
      watch: 'true',
      resourceVersion: request.resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(request.timeoutSeconds),
    });
    // The server sends nothing between events; allow its own timeout plus a margin before calling it dead.
    const idleMs = request.timeoutSeconds * 1000 + (this.options.requestTimeoutMs ?? 10_000);
    const response = await this.request(`/api/v1/nodes?${query}`, request.signal, idleMs);
    return watchEvents<KubeNode>(response);
  }

  async patchNodeMetadata(name: string, patch: NodeMetadataPatch, signal: AbortSignal): Promise<KubeNode> {
    const path = `/api/v1/nodes/${encodeURIComponent(name)}`;
    const body = { contentType: 'application/merge-patch+json', text: JSON.stringify({ metadata: patch }) };
    const response = await this.request(path, signal, undefined, body);
    return parseJson(await readBody(response), `node ${name}`) as KubeNode;
  }

  /** A GET, or a PATCH when `patch` is given. */
  private async request(
    path: string,
    signal: AbortSignal,
    idleMs?: number,
    patch?: { contentType: string; text: string },
  ): Promise<http.IncomingMessage> {
    const token = await this.options.token?.();
    const secure = this.server.protocol === 'https:';
    const transport = secure ? https : http;
    const url = new URL(path, this.server);
    const timeout = idleMs ?? this.options.requestTimeoutMs ?? 10_000;
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = transport.request(url, {
        method: patch ? 'PATCH' : 'GET',
        signal,
        headers: {
          accept: 'application/json',
          'user-agent': 'vgpu-agent',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(patch ? { 'content-type': patch.contentType } : {}),
        },
        ...(secure && this.options.ca ? { ca: this.options.ca } : {}),
      });
      req.setTimeout(timeout, () =>
        req.destroy(new KubeApiError(0, `no answer from ${this.server.origin} within ${timeout} ms`)),
      );
      req.once('response', resolve);
      req.once('error', (error) =>
        reject(
          error instanceof KubeApiError || signal.aborted
            ? error
            : new KubeApiError(0, `cannot reach ${this.server.origin}: ${error.message}`),
        ),
      );
      req.end(patch?.text);
    });
    const status = response.statusCode ?? 0;
    if (status >= 200 && status < 300) return response;
    const text = await readBody(response).catch(() => '');
    throw statusError(status, text, `${patch ? 'PATCH' : 'GET'} ${url.pathname}`);
  }
}

/** `request`: `GET /api/v1/nodes/x`, as the API server saw it. */
function statusError(status: number, body: string, request: string): KubeApiError {
  let detail: KubeStatus = {};
  try {
    detail = JSON.parse(body) as KubeStatus;
  } catch {
    // not a Status object (a proxy's page): the HTTP status says enough
  }
  const hint =
    status === 401
      ? ' (the service account token was refused)'
      : status === 403
        ? ` (the service account needs ${request.startsWith('PATCH') ? 'patch' : 'get and watch'} on nodes)`
        : '';
  const message = detail.message ?? (body.trim().slice(0, 200) || `HTTP ${status}`);
  return new KubeApiError(status, `${request}: ${status} ${message}${hint}`, detail.reason);
}

async function readBody(response: http.IncomingMessage): Promise<string> {
  const decoder = new StringDecoder('utf8');
  let text = '';
  for await (const chunk of response) {
    text += decoder.write(chunk as Buffer);
    if (text.length > MAX_BODY_BYTES) {
      response.destroy();
      throw new KubeApiError(0, `answer larger than ${MAX_BODY_BYTES} bytes`);
    }
  }
  return text + decoder.end();
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new KubeApiError(0, `${what}: the API answered with something that is not JSON`);
  }
}

/** A watch is newline-delimited JSON events; a stream that breaks mid-way throws from the iteration. */
async function* watchEvents<T>(response: http.IncomingMessage): AsyncGenerator<WatchEvent<T>> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  try {
    for await (const chunk of response) {
      pending += decoder.write(chunk as Buffer);
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line !== '') yield parseJson(line, 'watch event') as WatchEvent<T>;
        newline = pending.indexOf('\n');
      }
      if (pending.length > MAX_BODY_BYTES) throw new KubeApiError(0, 'watch event too large');
    }
  } finally {
    // The consumer stopped early (break, or an error): release the connection.
    response.destroy();
  }
}
