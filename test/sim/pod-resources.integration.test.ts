/**
 * The kubelet simulator's PodResources lister, read through real gRPC on its Unix socket the way the
 * monitor reads kubelet's: the plugin runs on the mock node, the simulator admits containers, and
 * List, Get and GetAllocatableResources answer from those admissions and the plugin's device list.
 */
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  type ContainerDevices__Output,
  type PodResources__Output,
  PodResourcesListerClient,
  unixTarget,
} from '../../src/kubelet-api/proto.js';
import type { KubeletSimulator } from '../../src/sim/kubelet.js';
import { usePluginNodes } from '../helpers/plugin-node.js';

const GPU = 'nvidia.com/gpu';
const start = usePluginNodes();

function lister(socket: string) {
  const client = new PodResourcesListerClient(unixTarget(socket), grpc.credentials.createInsecure());
  const call = <T>(rpc: (callback: grpc.requestCallback<T>) => void) =>
    new Promise<T>((resolve, reject) => rpc((err, value) => (err ? reject(err) : resolve(value!))));
  return {
    list: () => call<{ pod_resources: PodResources__Output[] }>((cb) => client.List({}, cb)),
    get: (namespace: string, name: string) =>
      call<{ pod_resources: PodResources__Output | null }>((cb) =>
        client.Get({ pod_namespace: namespace, pod_name: name }, cb),
      ),
    allocatable: () =>
      call<{ devices: ContainerDevices__Output[] }>((cb) => client.GetAllocatableResources({}, cb)),
    close: () => client.close(),
  };
}

/** `<id>@numa<n>` per entry: what a reader of PodResources joins on. */
const described = (devices: ContainerDevices__Output[]) =>
  devices.map(
    (d) => `${d.resource_name} ${d.device_ids.join(',')}@numa${d.topology?.nodes.map((n) => n.ID)}`,
  );

function pods(response: { pod_resources: PodResources__Output[] }) {
  return response.pod_resources.map((p) => ({
    pod: `${p.namespace}/${p.name}`,
    containers: p.containers.map((c) => ({ name: c.name, devices: described(c.devices) })),
  }));
}

/** What PodResources should say of these IDs, from the NUMA nodes the plugin reported to kubelet. */
function expected(kubelet: KubeletSimulator, ids: string[]): string[] {
  const devices = kubelet.resource(GPU)!.devices;
  return ids.map((id) => `${GPU} ${id}@numa${devices.find((d) => d.ID === id)!.topology!.nodes[0]!.ID}`);
}

describe('PodResources from the kubelet simulator', () => {
  it('lists admitted containers by pod, gets one pod, and lists every allocatable device with its NUMA node', async () => {
    const { kubelet, podResourcesSocket } = await start('dgx-a100', { podResources: true });
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 8);
    const trainer = await kubelet.allocate(GPU, 2, {
      container: { namespace: 'ml', pod: 'train-a', container: 'trainer' },
    });
    const sidecar = await kubelet.allocate(GPU, 1, {
      container: { namespace: 'ml', pod: 'train-a', container: 'sidecar' },
    });
    const unnamed = await kubelet.allocate(GPU, 1);
    const client = lister(podResourcesSocket!);
    try {
      expect(pods(await client.list())).toEqual([
        {
          pod: 'ml/train-a',
          containers: [
            { name: 'trainer', devices: expected(kubelet, trainer.deviceIds) },
            { name: 'sidecar', devices: expected(kubelet, sidecar.deviceIds) },
          ],
        },
        {
          pod: 'default/pod-3',
          containers: [{ name: 'main', devices: expected(kubelet, unnamed.deviceIds) }],
        },
      ]);
      const one = await client.get('ml', 'train-a');
      expect(one.pod_resources?.containers.map((c) => c.name)).toEqual(['trainer', 'sidecar']);
      await expect(client.get('ml', 'absent')).rejects.toMatchObject({
        code: grpc.status.UNKNOWN,
        details: 'pod absent in namespace ml not found',
      });
      const all = kubelet.resource(GPU)!.devices.map((d) => d.ID);
      expect(described((await client.allocatable()).devices)).toEqual(expected(kubelet, all));
    } finally {
      client.close();
    }
  });

  it('forgets released devices, and answers again after a kubelet restart with what was checkpointed', async () => {
    const { kubelet, podResourcesSocket } = await start('single-t4', { podResources: true });
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 1);
    const pod = { namespace: 'ml', pod: 'infer-b', container: 'server' };
    const { deviceIds } = await kubelet.allocate(GPU, 1, { container: pod });
    const before = lister(podResourcesSocket!);
    expect(pods(await before.list()).map((p) => p.pod)).toEqual(['ml/infer-b']);
    before.close();

    await kubelet.restart();
    const after = lister(podResourcesSocket!);
    try {
      expect(pods(await after.list()).map((p) => p.pod)).toEqual(['ml/infer-b']);
      kubelet.release(GPU, deviceIds);
      expect(pods(await after.list())).toEqual([]);
    } finally {
      after.close();
    }
  });
});
