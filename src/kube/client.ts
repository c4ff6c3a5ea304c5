/**
 * The Kubernetes API calls the agent makes, and nothing else: read one Node and watch that Node (the
 * plugin's config label), merge-patch that Node's labels (GPU feature labels, `--node-labels api`), list
 * and watch the pods on this node (the monitor's names); every list and watch is field-selected to this
 * node, never cluster-wide. Each call is a method, and the chart's RBAC grants exactly these
 * (test/chart/rbac.test.ts): a new call comes as a method of its own with its grant. Only the fields the
 * agent reads are typed. HAMi mode (src/hami/) adds its own block: get, list and annotation patches of
 * pods, annotation patches of the Node (granted with the chart's kubeApi.hami).
 * Plain node:http(s) rather than @kubernetes/client-node: its
 * 2.x needs Node >= 22.19 (undici 8) and 1.x installs 72 packages / 72 MB, more than double the agent's
 * runtime dependencies, for GET and merge-patch requests whose protocol fits here.
 */
import http from 'node:http';
import https from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { KubeApiError } from './errors.js';

export { KubeApiError };

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

/** A container's status, as far as the monitor reads it: which runtime container it is now. */
export interface KubeContainerStatus {
  name: string;
  /** `<runtime>://<id>` (`containerd://…`, `cri-o://…`, `docker://…`); absent until it was created */
  containerID?: string;
}

/** The part of a Pod object the monitor reads. */
export interface KubePod extends KubeObject {
  metadata: KubeObject['metadata'] & {
    uid: string;
    namespace: string;
    annotations?: Record<string, string>;
  };
  status?: {
    containerStatuses?: KubeContainerStatus[];
    initContainerStatuses?: KubeContainerStatus[];
    ephemeralContainerStatuses?: KubeContainerStatus[];
  };
}
export type PodWatchEvent = WatchEvent<KubePod>;

/** One page of a list: the objects and the version they were read at (`continue` for the next page). */
export interface KubeList<T> {
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

export interface ListPodsRequest {
  /** `spec.nodeName=<node>`: the list must stay scoped to this node */
  fieldSelector: string;
  /** at most this many pods per page */
  limit: number;
  /** the token of the previous page */
  continue?: string;
  signal: AbortSignal;
}

export interface WatchRequest {
  /** `metadata.name=<node>` / `spec.nodeName=<node>`: the watch must stay scoped to this node */
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
  watchNodes(request: WatchRequest): Promise<AsyncIterable<NodeWatchEvent>>;
  /** Merge-patches the Node's labels and annotations; resolves with the Node as patched. */
  patchNodeMetadata(name: string, patch: NodeMetadataPatch, signal: AbortSignal): Promise<KubeNode>;
}

/** The pods of one node, for the monitor's names. */
export interface PodClient {
  listPods(request: ListPodsRequest): Promise<KubeList<KubePod>>;
  /** Resolves once the API accepted the watch; the iterable ends when the server closes it. */
  watchPods(request: WatchRequest): Promise<AsyncIterable<PodWatchEvent>>;
}

// --- HAMi scheduler mode (src/hami/): the pod being bound and the annotations of the protocol. ---

/** The part of a Pod that HAMi mode reads (its spec and phase; the monitor reads KubePod). */
export interface HamiPod extends KubeObject {
  metadata: KubeObject['metadata'] & {
    namespace: string;
    uid: string;
    annotations?: Record<string, string>;
  };
  spec: { nodeName?: string; initContainers?: KubeContainer[]; containers: KubeContainer[] };
  status?: { phase?: string };
}

export interface KubeContainer {
  name: string;
  env?: { name: string; value?: string }[];
  resources?: { limits?: Record<string, string | number> };
}

/** Annotation values to set; null removes the annotation (JSON merge patch). */
export type AnnotationPatch = Record<string, string | null>;

/** The calls HAMi mode adds; the chart grants them only where the mode is used (see docs). */
export interface HamiKubeClient extends KubeClient {
  getPod(namespace: string, name: string, signal: AbortSignal): Promise<HamiPod>;
  /** The pods bound to a node (`spec.nodeName`): HAMi's fallback when the node lock names no pod. */
  listPodsOnNode(nodeName: string, signal: AbortSignal): Promise<HamiPod[]>;
  patchPodAnnotations(
    namespace: string,
    name: string,
    annotations: AnnotationPatch,
    signal: AbortSignal,
  ): Promise<HamiPod>;
  /**
   * With `resourceVersion`, the patch applies only to that version of the Node (409 Conflict
   * otherwise): how the node lock is released without removing a lock taken meanwhile.
   */
  patchNodeAnnotations(
    name: string,
    annotations: AnnotationPatch,
    signal: AbortSignal,
    resourceVersion?: string,
  ): Promise<KubeNode>;
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

export class HttpKubeClient implements KubeClient, PodClient, HamiKubeClient {
  private readonly server: URL;

  constructor(private readonly options: HttpKubeClientOptions) {
    this.server = new URL(options.server);
  }

  async getNode(name: string, signal: AbortSignal): Promise<KubeNode> {
    const response = await this.request(`/api/v1/nodes/${encodeURIComponent(name)}`, signal);
    return parseJson(await readBody(response), `node ${name}`) as KubeNode;
  }

  watchNodes(request: WatchRequest): Promise<AsyncIterable<NodeWatchEvent>> {
    return this.watch<KubeNode>('nodes', request);
  }

  async listPods(request: ListPodsRequest): Promise<KubeList<KubePod>> {
    const query = new URLSearchParams({ fieldSelector: request.fieldSelector, limit: String(request.limit) });
    if (request.continue) query.set('continue', request.continue);
    const response = await this.request(`/api/v1/pods?${query}`, request.signal);
    return parseJson(await readBody(response), `pods (${request.fieldSelector})`) as KubeList<KubePod>;
  }

  watchPods(request: WatchRequest): Promise<AsyncIterable<PodWatchEvent>> {
    return this.watch<KubePod>('pods', request);
  }

  private async watch<T>(resource: string, request: WatchRequest): Promise<AsyncIterable<WatchEvent<T>>> {
    const query = new URLSearchParams({
      fieldSelector: request.fieldSelector,
      watch: 'true',
      resourceVersion: request.resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(request.timeoutSeconds),
    });
    // The server sends nothing between events; allow its own timeout plus a margin before calling it dead.
    const idleMs = request.timeoutSeconds * 1000 + (this.options.requestTimeoutMs ?? 10_000);
    const response = await this.request(`/api/v1/${resource}?${query}`, request.signal, idleMs);
    return watchEvents<T>(response);
  }

  async patchNodeMetadata(name: string, patch: NodeMetadataPatch, signal: AbortSignal): Promise<KubeNode> {
    const path = `/api/v1/nodes/${encodeURIComponent(name)}`;
    const response = await this.request(
      path,
      signal,
      undefined,
      mergePatch(JSON.stringify({ metadata: patch })),
    );
    return parseJson(await readBody(response), `node ${name}`) as KubeNode;
  }

  // --- HAMi scheduler mode ---

  async getPod(namespace: string, name: string, signal: AbortSignal): Promise<HamiPod> {
    const response = await this.request(podPath(namespace, name), signal);
    return parseJson(await readBody(response), `pod ${namespace}/${name}`) as HamiPod;
  }

  async listPodsOnNode(nodeName: string, signal: AbortSignal): Promise<HamiPod[]> {
    const query = new URLSearchParams({ fieldSelector: `spec.nodeName=${nodeName}` });
    const response = await this.request(`/api/v1/pods?${query}`, signal);
    const list = parseJson(await readBody(response), `pods on node ${nodeName}`) as { items?: HamiPod[] };
    return list.items ?? [];
  }

  async patchPodAnnotations(
    namespace: string,
    name: string,
    annotations: AnnotationPatch,
    signal: AbortSignal,
  ): Promise<HamiPod> {
    const body = JSON.stringify({ metadata: { annotations } });
    const response = await this.request(podPath(namespace, name), signal, undefined, mergePatch(body));
    return parseJson(await readBody(response), `pod ${namespace}/${name}`) as HamiPod;
  }

  async patchNodeAnnotations(
    name: string,
    annotations: AnnotationPatch,
    signal: AbortSignal,
    resourceVersion?: string,
  ): Promise<KubeNode> {
    const metadata = resourceVersion === undefined ? { annotations } : { annotations, resourceVersion };
    const path = `/api/v1/nodes/${encodeURIComponent(name)}`;
    const response = await this.request(path, signal, undefined, mergePatch(JSON.stringify({ metadata })));
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
          ...(patch === undefined ? {} : { 'content-type': 'application/merge-patch+json' }),
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

const podPath = (namespace: string, name: string) =>
  `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;

const mergePatch = (text: string) => ({ contentType: 'application/merge-patch+json', text });

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
        ? ` (the service account needs ${forbiddenHint(request)})`
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

/** The grant a 403 lacks, named by the request the agent made. */
function forbiddenHint(request: string): string {
  const [method, path = ''] = request.split(' ');
  if (path.startsWith('/api/v1/pods')) return 'list and watch on pods';
  if (path.includes('/pods/')) return 'get and patch on pods (HAMi mode: kubeApi.hami)';
  if (method === 'PATCH') return 'patch on nodes';
  return 'get and watch on nodes';
}
