/**
 * A simulated Kubernetes API server for HAMi mode, as the node sees it once HAMi's scheduler has done
 * its part: one Node (GET, and JSON merge PATCH of its annotations with the resourceVersion
 * precondition: 409 when stale) and the pods the scheduler has bound to it (GET, annotation PATCH,
 * list by `spec.nodeName`). Anything else is refused (403), in particular a pod list not scoped to
 * this node. Every request is recorded with its body, so a test can read back the exact strings the
 * agent wrote. The demo and the interop tests play HAMi's scheduler through `bind` and
 * `scheduledPod`, with the annotations in the scheduler's formats (HAMi v2.10, pkg/device and
 * pkg/util/nodelock): `<uuid>,NVIDIA,<MiB>,<cores>:` per device, `;` per container, the node lock
 * `<RFC3339>,<namespace>,<pod>`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HamiPod, KubeContainer, KubeNode } from '../kube/client.js';

export interface RecordedCall {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
}

type Annotations = Record<string, string>;

export class HamiApiSimulator {
  readonly calls: RecordedCall[] = [];
  readonly pods = new Map<string, HamiPod>();
  nodeAnnotations: Annotations = {};
  /** the next PATCH of the Node answers 409 once (someone else wrote the Node meanwhile) */
  conflictOnce = false;
  private version = 1;

  private constructor(
    private readonly server: http.Server,
    readonly nodeName: string,
  ) {}

  static async start(nodeName: string): Promise<HamiApiSimulator> {
    const server = http.createServer();
    const api = new HamiApiSimulator(server, nodeName);
    server.on('request', (req, res) => api.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  addPod(pod: HamiPod): void {
    this.pods.set(`${pod.metadata.namespace}/${pod.metadata.name}`, pod);
  }

  /**
   * The scheduler's Bind of `pod` to this node: the pod, and the node lock naming it, taken `lockAgeMs`
   * ago (`zoneOffsetMinutes`: the scheduler's time zone, which Go writes into the time).
   */
  bind(pod: HamiPod, options: { lockAgeMs?: number; zoneOffsetMinutes?: number } = {}): void {
    this.addPod(pod);
    const time = new Date(Date.now() - (options.lockAgeMs ?? 0));
    this.nodeAnnotations[NODE_LOCK] =
      `${goRfc3339(time, options.zoneOffsetMinutes ?? 0)},${pod.metadata.namespace},${pod.metadata.name}`;
  }

  pod(namespace: string, name: string): HamiPod {
    return this.pods.get(`${namespace}/${name}`)!;
  }

  /** Node PATCH bodies, in order. */
  nodePatches(): unknown[] {
    return this.calls
      .filter((c) => c.method === 'PATCH' && c.path.startsWith('/api/v1/nodes/'))
      .map((c) => c.body);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private node(): KubeNode {
    return {
      metadata: {
        name: this.nodeName,
        resourceVersion: String(this.version),
        annotations: { ...this.nodeAnnotations },
      },
    };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    let text = '';
    req.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const body = text === '' ? undefined : JSON.parse(text);
      this.calls.push({
        method: req.method ?? '',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        body,
      });
      const [code, answer] = this.answer(req.method ?? '', url, body, req.headers['content-type']);
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
  }

  private answer(
    method: string,
    url: URL,
    body: unknown,
    contentType: string | undefined,
  ): [number, unknown] {
    const status = (code: number, message: string): [number, unknown] => [
      code,
      { kind: 'Status', status: 'Failure', code, message },
    ];
    if (method === 'PATCH' && contentType !== 'application/merge-patch+json')
      return status(415, 'merge patch only');
    if (url.pathname === `/api/v1/nodes/${this.nodeName}`) {
      if (method === 'GET') return [200, this.node()];
      if (method === 'PATCH') return this.patchNode(body as PatchBody, status);
    }
    const podMatch = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(url.pathname);
    if (podMatch) {
      const pod = this.pods.get(`${podMatch[1]}/${podMatch[2]}`);
      if (!pod) return status(404, `pods "${podMatch[2]}" not found`);
      if (method === 'GET') return [200, pod];
      if (method === 'PATCH') {
        pod.metadata.annotations = merge(
          pod.metadata.annotations ?? {},
          (body as PatchBody).metadata.annotations,
        );
        return [200, pod];
      }
    }
    if (method === 'GET' && url.pathname === '/api/v1/pods') {
      if (url.searchParams.get('fieldSelector') !== `spec.nodeName=${this.nodeName}`)
        return status(403, 'refused: pod list not scoped to this node');
      return [200, { items: [...this.pods.values()].filter((p) => p.spec.nodeName === this.nodeName) }];
    }
    return status(403, `refused: ${method} ${url.pathname}`);
  }

  private patchNode(
    body: PatchBody,
    status: (code: number, m: string) => [number, unknown],
  ): [number, unknown] {
    const precondition = body.metadata.resourceVersion;
    if (this.conflictOnce || (precondition !== undefined && precondition !== String(this.version))) {
      this.conflictOnce = false;
      return status(409, 'the object has been modified');
    }
    this.nodeAnnotations = merge(this.nodeAnnotations, body.metadata.annotations);
    this.version++;
    return [200, this.node()];
  }
}

interface PatchBody {
  metadata: { annotations: Record<string, string | null>; resourceVersion?: string };
}

function merge(current: Annotations, patch: Record<string, string | null>): Annotations {
  const out = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = value;
  }
  return out;
}

// --- HAMi's scheduler side ------------------------------------------------------------------------

const NODE_LOCK = 'hami.io/mutex.lock';
const TO_ALLOCATE = 'hami.io/vgpu-devices-to-allocate';

/** One GPU of a container as the scheduler decided it. */
export interface ScheduledDevice {
  uuid: string;
  memoryMiB: number;
  cores: number;
}

/** `hami.io/vgpu-devices-to-allocate`: per container (init containers first) its devices. */
export function schedulerDecision(containers: readonly (readonly ScheduledDevice[])[]): string {
  return containers
    .map((devices) => `${devices.map((d) => `${d.uuid},NVIDIA,${d.memoryMiB},${d.cores}:`).join('')};`)
    .join('');
}

export interface ScheduledPodOptions {
  name: string;
  namespace?: string;
  nodeName: string;
  /** the decision (`schedulerDecision`); undefined: the annotation is missing */
  toAllocate: string | undefined;
  containers?: KubeContainer[];
  initContainers?: KubeContainer[];
}

/** A Pending pod as HAMi's scheduler leaves it when it binds it: its decision, bind phase allocating. */
export function scheduledPod(options: ScheduledPodOptions): HamiPod {
  const decision: Annotations =
    options.toAllocate === undefined
      ? {}
      : { [TO_ALLOCATE]: options.toAllocate, 'hami.io/vgpu-devices-allocated': options.toAllocate };
  return {
    metadata: {
      name: options.name,
      namespace: options.namespace ?? 'default',
      uid: `uid-${options.name}`,
      resourceVersion: '1',
      annotations: {
        ...decision,
        'hami.io/vgpu-node': options.nodeName,
        'hami.io/vgpu-time': '1700000000',
        'hami.io/bind-time': '1700000000',
        'hami.io/bind-phase': 'allocating',
      },
    },
    spec: {
      nodeName: options.nodeName,
      containers: options.containers ?? [{ name: 'main' }],
      ...(options.initContainers ? { initContainers: options.initContainers } : {}),
    },
    status: { phase: 'Pending' },
  };
}

/** Go's `time.Format(time.RFC3339)` in a zone `offsetMinutes` east of UTC (`Z` for UTC). */
export function goRfc3339(time: Date, offsetMinutes: number): string {
  const local = new Date(time.getTime() + offsetMinutes * 60_000).toISOString().slice(0, 19);
  if (offsetMinutes === 0) return `${local}Z`;
  const abs = Math.abs(offsetMinutes);
  const zone = `${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${local}${offsetMinutes < 0 ? '-' : '+'}${zone}`;
}
