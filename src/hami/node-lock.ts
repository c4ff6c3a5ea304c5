/**
 * Releasing HAMi's node lock (`hami.io/mutex.lock`) the way HAMi's plugin does: only a lock held by
 * the pod (or in the legacy form, or with `pod` undefined: a lock that names no live pod), removed
 * with the Node's resourceVersion as precondition so that a lock the scheduler took meanwhile for
 * another pod is never removed; a conflict reads the Node again, a few times.
 */
import type { HamiKubeClient, KubeNode } from '../kube/client.js';
import { lockHeldBy, NODE_LOCK_ANNOTATION } from './protocol.js';

const ATTEMPTS = 5;

type Api = <T>(call: (signal: AbortSignal) => Promise<T>) => Promise<T>;

export async function releaseNodeLock(
  client: HamiKubeClient,
  nodeName: string,
  pod: { namespace: string; name: string } | undefined,
  api: Api,
): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const node: KubeNode = await api((signal) => client.getNode(nodeName, signal));
    const value = node.metadata.annotations?.[NODE_LOCK_ANNOTATION];
    if (value === undefined) return;
    if (pod && !lockHeldBy(value, pod.namespace, pod.name)) return;
    try {
      await api((signal) =>
        client.patchNodeAnnotations(
          nodeName,
          { [NODE_LOCK_ANNOTATION]: null },
          signal,
          node.metadata.resourceVersion,
        ),
      );
      return;
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}
