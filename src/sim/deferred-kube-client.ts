/**
 * The demo's API access: the plugin gets its Kubernetes client when it starts, but the demo starts the
 * simulated API server only in the HAMi step (so the other steps do not pay for loading it). Until
 * `connect`, every call is rejected naming why; nothing calls it before then: only HAMi mode uses it.
 */
import type {
  AnnotationPatch,
  HamiKubeClient,
  HamiPod,
  KubeNode,
  NodeMetadataPatch,
  NodeWatchEvent,
  WatchRequest,
} from '../kube/client.js';

export class DeferredKubeClient implements HamiKubeClient {
  private client: HamiKubeClient | undefined;

  connect(client: HamiKubeClient): void {
    this.client = client;
  }

  async getNode(name: string, signal: AbortSignal): Promise<KubeNode> {
    return this.target().getNode(name, signal);
  }

  async watchNodes(request: WatchRequest): Promise<AsyncIterable<NodeWatchEvent>> {
    return this.target().watchNodes(request);
  }

  async patchNodeMetadata(name: string, patch: NodeMetadataPatch, signal: AbortSignal): Promise<KubeNode> {
    return this.target().patchNodeMetadata(name, patch, signal);
  }

  async getPod(namespace: string, name: string, signal: AbortSignal): Promise<HamiPod> {
    return this.target().getPod(namespace, name, signal);
  }

  async listPodsOnNode(nodeName: string, signal: AbortSignal): Promise<HamiPod[]> {
    return this.target().listPodsOnNode(nodeName, signal);
  }

  async patchPodAnnotations(
    namespace: string,
    name: string,
    annotations: AnnotationPatch,
    signal: AbortSignal,
  ): Promise<HamiPod> {
    return this.target().patchPodAnnotations(namespace, name, annotations, signal);
  }

  async patchNodeAnnotations(
    name: string,
    annotations: AnnotationPatch,
    signal: AbortSignal,
    resourceVersion?: string,
  ): Promise<KubeNode> {
    return this.target().patchNodeAnnotations(name, annotations, signal, resourceVersion);
  }

  private target(): HamiKubeClient {
    if (!this.client) throw new Error("the demo's simulated API server is not started yet");
    return this.client;
  }
}
