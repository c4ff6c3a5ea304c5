/**
 * GPU feature labels through the running plugin on a mock node (real koffi binding, mock NVML, config
 * followed from a ConfigMap volume): as an NFD feature file, and patched onto the Node of a fake API
 * server. Labels follow config reloads and GPU loss and recovery, are written only when they change,
 * and the API mode removes only labels it set itself.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpKubeClient } from '../../src/kube/client.js';
import { NodeLabelPatcher, OWNED_LABELS_ANNOTATION } from '../../src/kube/node-label-patcher.js';
import { NfdFeatureFile } from '../../src/runtime/nfd-feature-file.js';
import { type PluginNode, startPluginNode } from '../helpers/plugin-node.js';
import { FakeKubeApi } from '../kube/fake-api.js';

const TIME_SLICED = 'sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}';
const RECOVER_FAST = 'health: {recoverAfterSeconds: 1}';

let pluginNode: PluginNode | undefined;
let api: FakeKubeApi | undefined;
let dir: string | undefined;

afterEach(async () => {
  await pluginNode?.stop();
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  pluginNode = api = dir = undefined;
});

/** The feature file as NFD's local source reads it: `key=value` lines, `#` comments. */
async function featureFile(file: string): Promise<Record<string, string> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  return Object.fromEntries(
    lines.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

const publishes = (node: PluginNode) =>
  node.logs.filter((l) => l.msg === 'GPU feature labels published').length;

describe('--node-labels nfd', () => {
  it('writes the feature file, follows a config reload and a lost GPU, and removes it on stop', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nfd-'));
    const featuresDir = path.join(dir, 'features.d');
    const sink = new NfdFeatureFile(featuresDir);
    pluginNode = await startPluginNode('dgx-a100', {
      configMap: { default: RECOVER_FAST },
      nodeLabels: { sink },
    });
    const labels = () => featureFile(sink.file);
    await expect.poll(labels, { timeout: 10_000 }).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB',
      'nvidia.com/gpu.count': '8',
      'nvidia.com/gpu.replicas': '1',
      'nvidia.com/gpu.machine': 'vgpu-agent-mock-node',
      'nvidia.com/gpu.mode': 'compute',
    });

    await pluginNode.configMap!.write({ default: `${RECOVER_FAST}\n${TIME_SLICED}` });
    await expect.poll(labels, { timeout: 10_000 }).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB-SHARED',
      'nvidia.com/gpu.replicas': '4',
      'nvidia.com/gpu.sharing-strategy': 'time-slicing',
    });

    const gpu5 = pluginNode.node.state.devices[5]!.uuid;
    await pluginNode.node.setLost(gpu5, true);
    await expect.poll(labels, { timeout: 10_000 }).toMatchObject({ 'nvidia.com/gpu.count': '7' });
    await pluginNode.node.setLost(gpu5, false);
    await expect.poll(labels, { timeout: 10_000 }).toMatchObject({ 'nvidia.com/gpu.count': '8' });
    await expect.poll(() => publishes(pluginNode!), { timeout: 10_000 }).toBe(4);

    // An Xid makes a GPU Unhealthy, which GFD does not label: nothing is written.
    await pluginNode.node.injectEvent({ uuid: pluginNode.node.state.devices[2]!.uuid, xid: 48 });
    await expect
      .poll(() => pluginNode!.logs.some((l) => l.msg === 'device marked Unhealthy' && l.xid === 48), {
        timeout: 10_000,
      })
      .toBe(true);
    expect(publishes(pluginNode)).toBe(4);
    expect(await readdir(featuresDir)).toEqual(['vgpu-agent']); // no temp file left behind

    const stopping = pluginNode;
    pluginNode = undefined;
    await stopping.stop();
    expect(await labels()).toBeUndefined();
  });
});

describe('--node-labels api', () => {
  it('patches the Node, removes only labels it set, and keeps everyone else’s', async () => {
    api = await FakeKubeApi.start('gpu-node-1', {
      'kubernetes.io/hostname': 'gpu-node-1',
      team: 'ml',
      // NVIDIA's operator owns this one: same domain, never set by the agent
      'nvidia.com/gpu.deploy.driver': 'true',
      // set by an earlier run of the agent (its annotation says so), no longer produced
      'nvidia.com/gpu.stale': 'x',
    });
    api.setAnnotations({ [OWNED_LABELS_ANNOTATION]: 'nvidia.com/gpu.stale,nvidia.com/gpu.count' });
    const client = new HttpKubeClient({ server: api.url, requestTimeoutMs: 2000 });
    api.failWith = 503; // the API is down at first: retried
    pluginNode = await startPluginNode('mixed-mig', {
      configMap: { default: 'flags: {migStrategy: mixed}' },
      nodeLabels: { sink: new NodeLabelPatcher(client, 'gpu-node-1') },
    });
    await expect.poll(() => api!.requests.length, { timeout: 10_000 }).toBeGreaterThan(1);
    api.failWith = undefined;
    const firstServed = api.requests.length;
    await expect
      .poll(() => api!.nodeLabels, { timeout: 10_000 })
      .toMatchObject({
        'nvidia.com/mig.strategy': 'mixed',
        'nvidia.com/mig-3g.20gb.count': '1',
        'nvidia.com/mig-2g.10gb.count': '2',
        'nvidia.com/gpu.count': '2',
      });
    const labels = api.nodeLabels;
    expect(labels).toMatchObject({ team: 'ml', 'nvidia.com/gpu.deploy.driver': 'true' });
    expect(labels['nvidia.com/gpu.stale']).toBeUndefined();
    const owned = api.nodeAnnotations[OWNED_LABELS_ANNOTATION]!.split(',');
    expect(owned).toEqual(
      Object.keys(labels)
        .filter((k) => k.startsWith('nvidia.com/') && k !== 'nvidia.com/gpu.deploy.driver')
        .sort(),
    );

    // MIG strategy none: the MIG labels no longer apply and go; the others stay.
    await pluginNode.configMap!.write({ default: 'version: v1' });
    await expect.poll(() => api!.nodeLabels['nvidia.com/mig.strategy'], { timeout: 10_000 }).toBeUndefined();
    const after = api.nodeLabels;
    expect(Object.keys(after).filter((k) => k.startsWith('nvidia.com/mig-'))).toEqual([]);
    expect(after).toMatchObject({
      team: 'ml',
      'kubernetes.io/hostname': 'gpu-node-1',
      'nvidia.com/gpu.deploy.driver': 'true',
      'nvidia.com/gpu.count': '2',
    });
    expect(api.nodeAnnotations[OWNED_LABELS_ANNOTATION]).not.toContain('mig-');
    // One read of the Node (which labels it set before), then one patch per change.
    expect(api.requests.slice(firstServed).map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /api/v1/nodes/gpu-node-1',
      'PATCH /api/v1/nodes/gpu-node-1',
      'PATCH /api/v1/nodes/gpu-node-1',
    ]);
    await expect.poll(() => publishes(pluginNode!), { timeout: 10_000 }).toBe(2);
  });
});
