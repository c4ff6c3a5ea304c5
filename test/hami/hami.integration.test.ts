/**
 * HAMi scheduler mode end to end: the agent on a simulated node (mock NVML through koffi, kubelet
 * simulator over real gRPC sockets) against a fake API server holding the annotations exactly as
 * HAMi's scheduler writes them (formats from HAMi v2.10's pkg/device and pkg/util/nodelock, and its
 * tests: `<uuid>,NVIDIA,<MiB>,<cores>:` per device, `;` per container, lock `<RFC3339>,<ns>,<pod>`).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type HamiPod, HttpKubeClient } from '../../src/kube/client.js';
import { createLogger } from '../../src/log.js';
import { SplitDirectories } from '../../src/monitor/split-directories.js';
import { goRfc3339, HamiApiSimulator, scheduledPod } from '../../src/sim/hami-api.js';
import { PluginEndpoint } from '../../src/sim/plugin-endpoint.js';
import { fixtureNode } from '../helpers/fixture-nodes.js';
import { type RunningPluginNode, tempDir, usePluginNodes } from '../helpers/plugin-node.js';

const NODE = 'gpu-node-1';
const GPU = 'nvidia.com/gpu';
const REGISTER = 'hami.io/node-nvidia-register';
const SCORE = 'hami.io/node-nvidia-score';
const LOCK = 'hami.io/mutex.lock';
const TO_ALLOCATE = 'hami.io/vgpu-devices-to-allocate';
const PHASE = 'hami.io/bind-phase';
/** dgx-a100's GPUs 0–2 */
const G0 = 'GPU-a7942715-1318-6ca6-69f2-9aad70a8a8fd';
const G1 = 'GPU-6a58171b-627f-eace-6507-82fafa084229';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
const startNode = usePluginNodes();

/** A hookPath laid out as HAMi's vgpu-init.sh leaves it. */
async function hookDir(): Promise<string> {
  const { dir, remove } = await tempDir('vgpu-hami-hook-');
  cleanups.push(remove);
  await writeFile(path.join(dir, 'libvgpu.so'), '');
  await writeFile(path.join(dir, 'ld.so.preload'), `${dir}/libvgpu.so\n`);
  return dir;
}

async function start(hami = '{deviceSplitCount: 4}') {
  const api = await HamiApiSimulator.start(NODE);
  cleanups.push(() => api.close());
  const hook = await hookDir();
  const config = `sharing: {hami: {hookPath: ${hook}, ${hami.slice(1, -1)}}}`;
  const client = new HttpKubeClient({ server: api.url });
  const running = await startNode('dgx-a100', { config, kube: { client, nodeName: NODE } });
  await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
  return { api, hook, running, kubelet: running.kubelet };
}

/** HAMi's scheduler on a node in UTC+8: Go writes the zone offset into the lock's time. */
const SCHEDULER_ZONE_MINUTES = 8 * 60;

function pod(name: string, toAllocate: string | undefined, spec: Partial<HamiPod['spec']> = {}): HamiPod {
  const p = scheduledPod({ name, nodeName: NODE, toAllocate });
  return { ...p, spec: { ...p.spec, ...spec } };
}

/** The scheduler binds `p` here: the pod and the node lock naming it. */
function bind(api: HamiApiSimulator, p: HamiPod, lockAgeMs = 0): void {
  api.bind(p, { lockAgeMs, zoneOffsetMinutes: SCHEDULER_ZONE_MINUTES });
}

describe('HAMi mode: registration', () => {
  it('publishes the v2.8+ JSON exactly as HAMi encodes it, and again only when a GPU turns unhealthy', async () => {
    const { api, running } = await start(
      '{deviceSplitCount: 4, deviceMemoryScaling: 1.5, deviceCoreScaling: 2}',
    );
    await running.agent.hamiRegistrationSettled();
    const gpus = running.node.state.devices;
    const entry = (i: number, healthy = true) =>
      `{"id":"${gpus[i]!.uuid}",${i === 0 ? '' : `"index":${i},`}"count":4,"devmem":122880,"devcore":200,` +
      `"type":"NVIDIA A100-SXM4-80GB",${gpus[i]!.numaNode ? `"numa":${gpus[i]!.numaNode},` : ''}"mode":"hami-core"` +
      `${healthy ? ',"health":true' : ''}}`;
    expect(api.nodeAnnotations[REGISTER]).toBe(`[${gpus.map((_, i) => entry(i)).join(',')}]`);
    const state = await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    expect(
      state
        .get(GPU)!
        .devices.map((d) => d.ID)
        .slice(0, 5),
    ).toEqual([`${G0}-0`, `${G0}-1`, `${G0}-2`, `${G0}-3`, `${G1}-0`]);

    await running.node.injectEvent({ uuid: gpus[2]!.uuid, xid: 48 });
    await running.kubelet.waitFor((s) => s.get(GPU)!.devices.some((d) => d.health === 'Unhealthy'));
    await running.agent.hamiRegistrationSettled();
    expect(api.nodeAnnotations[REGISTER]).toBe(`[${gpus.map((_, i) => entry(i, i !== 2)).join(',')}]`);
    expect(api.nodePatches()).toHaveLength(2);
  });
});

describe('HAMi mode: topology scores (sharing.hami.topologyScore)', () => {
  /** nvlink-across-numa with HAMi mode from a ConfigMap (followed live); `hami` is the sharing.hami body. */
  async function startScored(hami: string, annotations: Record<string, string> = {}) {
    const api = await HamiApiSimulator.start(NODE);
    cleanups.push(() => api.close());
    api.nodeAnnotations = { ...annotations };
    const hook = await hookDir();
    const configOf = (body: string | null) => ({
      default: body === null ? 'version: v1' : `sharing: {hami: {hookPath: ${hook}, ${body}}}`,
    });
    const state = await fixtureNode('nvlink-across-numa');
    const client = new HttpKubeClient({ server: api.url });
    const running = await startNode(state, { configMap: configOf(hami), kube: { client, nodeName: NODE } });
    await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 40);
    await running.agent.hamiRegistrationSettled();
    const reload = async (body: string | null) => {
      const applied = appliedReloads(running);
      await running.configMap!.write(configOf(body));
      await expect.poll(() => appliedReloads(running), { timeout: 10_000 }).toBe(applied + 1);
      await running.agent.hamiRegistrationSettled();
    };
    return { api, running, reload, gpus: state.devices.map((d) => d.uuid) };
  }
  const appliedReloads = (running: RunningPluginNode) =>
    running.logs.filter((l) => l.msg === 'config reloaded and applied').length;

  it("enabled: written with the register annotation in HAMi's JSON, patched again only when it changes", async () => {
    const { api, running, reload, gpus } = await startScored('topologyScore: true');
    const [g0, g1, g2, g3] = gpus as [string, string, string, string];
    // HAMi's pair scores: 100 per NVLink (pairs 0-2 and 1-3 have 4) + 50 same PCIe switch, 10 across CPUs.
    const scores =
      `[{"uuid":"${g0}","score":{"${g1}":50,"${g2}":410,"${g3}":10}},` +
      `{"uuid":"${g1}","score":{"${g0}":50,"${g2}":10,"${g3}":410}},` +
      `{"uuid":"${g2}","score":{"${g0}":410,"${g1}":10,"${g3}":50}},` +
      `{"uuid":"${g3}","score":{"${g0}":10,"${g1}":410,"${g2}":50}}]`;
    expect(api.nodeAnnotations[SCORE]).toBe(scores);
    expect(api.nodePatches()).toEqual([
      { metadata: { annotations: { [REGISTER]: api.nodeAnnotations[REGISTER], [SCORE]: scores } } },
    ]);

    // A GPU turning Unhealthy changes the registration, not the scores: only the register is patched.
    await running.node.injectEvent({ uuid: g1, xid: 48 });
    await running.kubelet.waitFor((s) => s.get(GPU)!.devices.some((d) => d.health === 'Unhealthy'));
    await running.agent.hamiRegistrationSettled();
    expect(api.nodePatches()).toHaveLength(2);
    expect(Object.keys((api.nodePatches()[1] as PatchBody).metadata.annotations)).toEqual([REGISTER]);

    // Turned off by a reload: left as it is, as HAMi's plugin leaves it; HAMi mode off: both removed.
    await reload('topologyScore: false');
    expect(api.nodePatches()).toHaveLength(2);
    expect(api.nodeAnnotations[SCORE]).toBe(scores);
    await reload(null);
    expect(api.nodeAnnotations).not.toHaveProperty(REGISTER);
    expect(api.nodeAnnotations).not.toHaveProperty(SCORE);
  });

  it('disabled (the default): never written, and a score annotation already on the node is left alone', async () => {
    const stale = '[{"uuid":"GPU-from-hami","score":{}}]';
    const { api, reload } = await startScored('deviceSplitCount: 10', { [SCORE]: stale });
    expect(api.nodeAnnotations[REGISTER]).toBeDefined();
    expect(api.nodeAnnotations[SCORE]).toBe(stale);
    expect(api.nodePatches()).toEqual([
      { metadata: { annotations: { [REGISTER]: api.nodeAnnotations[REGISTER] } } },
    ]);

    // Turned on by a reload: the scores are written at once, the registration being unchanged.
    await reload('deviceSplitCount: 10, topologyScore: true');
    expect(api.nodePatches()).toHaveLength(2);
    expect(JSON.parse(api.nodeAnnotations[SCORE]!)).toHaveLength(4);
  });
});

interface PatchBody {
  metadata: { annotations: Record<string, string | null> };
}

describe('HAMi mode: Allocate from the scheduler decision', () => {
  it("leaves a directory the monitor joins to the container through kubelet's IDs, with the decided limits", async () => {
    const { api, hook, kubelet, running } = await start();
    bind(api, pod('p1', `${G1},NVIDIA,3000,30:;`));
    const { deviceIds } = await kubelet.allocate(GPU, 1);
    const names = { namespace: 'default', pod: 'p1', container: 'main' };
    const directories = new SplitDirectories({
      hookPath: hook,
      assignments: { assignments: async () => [{ names, resource: GPU, deviceIds }] },
      gpus: running.node.state.devices.map((d, index) => ({ uuid: d.uuid, index })),
      logger: createLogger({ level: 'silent' }),
    });
    const [usage, ...others] = await directories.scan();
    expect(others).toEqual([]);
    expect(usage).toMatchObject({
      names,
      allocation: 'uid-p1_main',
      device: { uuid: G1 },
      memoryLimitBytes: 3000 * 1024 * 1024,
      smLimitRatio: 0.3,
    });
  });

  it('one container: its GPU with gpumem/gpucores limits and HAMi-core mounts; then success and the lock released', async () => {
    const { api, hook, kubelet } = await start();
    bind(api, pod('p1', `${G1},NVIDIA,3000,30:;`));
    const { response } = await kubelet.allocate(GPU, 1);
    expect(response.envs).toMatchObject({
      NVIDIA_VISIBLE_DEVICES: G1,
      CUDA_DEVICE_MEMORY_LIMIT_0: '3000m',
      CUDA_DEVICE_SM_LIMIT: '30',
    });
    expect(response.envs).not.toHaveProperty('CUDA_OVERSUBSCRIBE');
    // HAMi's plugin names the file at random; here after its directory, where the monitor reads it
    expect(response.envs!.CUDA_DEVICE_MEMORY_SHARED_CACHE).toBe(`${hook}/uid-p1_main.cache`);
    expect(response.mounts).toEqual([
      { container_path: hook, host_path: `${hook}/containers/uid-p1_main`, read_only: false },
      { container_path: `${hook}/libvgpu.so`, host_path: `${hook}/libvgpu.so`, read_only: true },
      { container_path: '/etc/ld.so.preload', host_path: `${hook}/ld.so.preload`, read_only: true },
      { container_path: '/tmp/vgpulock', host_path: '/tmp/vgpulock', read_only: false },
    ]);
    const after = api.pod('default', 'p1').metadata.annotations!;
    expect(after[TO_ALLOCATE]).toBe(';;');
    expect(after[PHASE]).toBe('success');
    expect(api.nodeAnnotations).not.toHaveProperty(LOCK);
  });

  it('init container first, a container without GPUs skipped, several GPUs per container; lock held until the last', async () => {
    const { api, kubelet } = await start();
    const annotation = `${G0},NVIDIA,1000,10:;;${G1},NVIDIA,2000,20:${G0},NVIDIA,3000,20:;`;
    bind(
      api,
      pod('p2', annotation, {
        initContainers: [{ name: 'init' }],
        containers: [{ name: 'sidecar' }, { name: 'train' }],
      }),
    );
    const init = await kubelet.allocate(GPU, 1);
    expect(init.response.envs).toMatchObject({
      NVIDIA_VISIBLE_DEVICES: G0,
      CUDA_DEVICE_MEMORY_LIMIT_0: '1000m',
    });
    expect(api.pod('default', 'p2').metadata.annotations![PHASE]).toBe('allocating');
    expect(api.nodeAnnotations[LOCK]).toMatch(/,default,p2$/);
    expect(api.pod('default', 'p2').metadata.annotations![TO_ALLOCATE]).toBe(
      `;;${G1},NVIDIA,2000,20:${G0},NVIDIA,3000,20:;;`,
    );

    const train = await kubelet.allocate(GPU, 2);
    expect(train.response.envs).toMatchObject({
      NVIDIA_VISIBLE_DEVICES: `${G1},${G0}`,
      CUDA_DEVICE_MEMORY_LIMIT_0: '2000m',
      CUDA_DEVICE_MEMORY_LIMIT_1: '3000m',
      CUDA_DEVICE_SM_LIMIT: '20',
    });
    expect(train.response.mounts![0]!.host_path).toMatch(/containers\/uid-p2_train$/);
    expect(api.pod('default', 'p2').metadata.annotations![PHASE]).toBe('success');
    expect(api.nodeAnnotations).not.toHaveProperty(LOCK);
  });

  it('oversubscription, priority, disableCoreLimit, log level and CUDA_DISABLE_CONTROL', async () => {
    const { api, kubelet } = await start(
      '{deviceSplitCount: 4, deviceMemoryScaling: 2, disableCoreLimit: true, libCudaLogLevel: 3}',
    );
    bind(
      api,
      pod('p3', `${G0},NVIDIA,100000,0:;`, {
        containers: [
          {
            name: 'main',
            env: [{ name: 'CUDA_DISABLE_CONTROL', value: 'true' }],
            resources: { limits: { 'nvidia.com/priority': '0', 'nvidia.com/gpu': '1' } },
          },
        ],
      }),
    );
    const { response } = await kubelet.allocate(GPU, 1);
    expect(response.envs).toMatchObject({
      CUDA_DEVICE_MEMORY_LIMIT_0: '100000m',
      CUDA_DEVICE_SM_LIMIT: '0',
      CUDA_OVERSUBSCRIBE: 'true',
      CUDA_TASK_PRIORITY: '0',
      GPU_CORE_UTILIZATION_POLICY: 'disable',
      LIBCUDA_LOG_LEVEL: '3',
    });
    expect(response.mounts!.map((m) => m.container_path)).not.toContain('/etc/ld.so.preload');
  });

  it("HAMi's fallback: no lock, the Pending pod in bind phase allocating on this node", async () => {
    const { api, kubelet } = await start();
    api.addPod({ ...pod('other', `${G0},NVIDIA,1,1:;`), status: { phase: 'Running' } });
    api.addPod(pod('p4', `${G1},NVIDIA,4000,40:;`));
    const { response } = await kubelet.allocate(GPU, 1);
    expect(response.envs).toMatchObject({ NVIDIA_VISIBLE_DEVICES: G1, CUDA_DEVICE_MEMORY_LIMIT_0: '4000m' });
    expect(api.pod('default', 'p4').metadata.annotations![PHASE]).toBe('success');
  });
});

describe('HAMi mode: concurrent pods', () => {
  /** The annotation PATCH bodies sent for one pod, in order. */
  const podPatches = (api: HamiApiSimulator, name: string) =>
    api.calls
      .filter((c) => c.method === 'PATCH' && c.path === `/api/v1/namespaces/default/pods/${name}`)
      .map((c) => (c.body as { metadata: { annotations: Record<string, string> } }).metadata.annotations);

  it('pods bound in succession through the node lock each get their own devices and limits; each pod written once', async () => {
    const { api, kubelet } = await start();
    const served = [];
    for (const [name, gpu, mib, cores] of [
      ['a', G0, 1000, 10],
      ['b', G1, 2000, 25],
    ] as const) {
      bind(api, pod(name, `${gpu},NVIDIA,${mib},${cores}:;`));
      const { response } = await kubelet.allocate(GPU, 1);
      expect(response.envs).toMatchObject({
        NVIDIA_VISIBLE_DEVICES: gpu,
        CUDA_DEVICE_MEMORY_LIMIT_0: `${mib}m`,
        CUDA_DEVICE_SM_LIMIT: String(cores),
      });
      expect(response.mounts![0]!.host_path).toMatch(new RegExp(`/containers/uid-${name}_main$`));
      expect(api.nodeAnnotations).not.toHaveProperty(LOCK);
      served.push({ ...api.pod('default', name).metadata.annotations });
    }
    // a's annotations were left as they were once a was served; each pod got its two writes only
    expect(api.pod('default', 'a').metadata.annotations).toEqual(served[0]);
    for (const name of ['a', 'b']) {
      expect(podPatches(api, name)).toEqual([{ [TO_ALLOCATE]: ';;' }, { [PHASE]: 'success' }]);
    }
    expect(served[1]![TO_ALLOCATE]).toBe(';;');
  });

  it('two Allocate calls at once with the lock naming one pod: that pod served once, the other call refused, nothing locked', async () => {
    const { api, running, kubelet } = await start();
    const { endpoint, devices } = kubelet.resource(GPU)!;
    // two kubelet connections of their own, each with one Allocate in flight
    const clients = [0, 1].map(() => new PluginEndpoint(path.join(running.pluginDir, endpoint)));
    cleanups.push(async () => {
      for (const client of clients) client.close();
    });
    bind(api, pod('a', `${G1},NVIDIA,3000,30:;`));
    const results = await Promise.allSettled(clients.map((client, i) => client.allocate([devices[i]!.ID])));

    const served = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    expect(served).toHaveLength(1);
    expect(served[0]!.envs).toMatchObject({
      NVIDIA_VISIBLE_DEVICES: G1,
      CUDA_DEVICE_MEMORY_LIMIT_0: '3000m',
      CUDA_DEVICE_SM_LIMIT: '30',
    });
    expect(refused).toHaveLength(1);
    expect(refused[0]!.message).toMatch(/HAMi allocation for node gpu-node-1 failed: no pod being bound/);
    expect(api.pod('default', 'a').metadata.annotations![PHASE]).toBe('success');
    expect(podPatches(api, 'a')).toEqual([{ [TO_ALLOCATE]: ';;' }, { [PHASE]: 'success' }]);
    expect(api.nodeAnnotations).not.toHaveProperty(LOCK);
    expect(api.nodePatches().filter((b) => JSON.stringify(b).includes(LOCK))).toHaveLength(1);
  });
});

describe('HAMi mode: every failure names the pod, sets bind phase failed and releases the lock', () => {
  const failures: [string, (api: HamiApiSimulator) => void, number, RegExp][] = [
    [
      'lock expired',
      (api) => bind(api, pod('f1', `${G0},NVIDIA,1,1:;`), 6 * 60_000),
      1,
      /pod default\/f1 failed: node lock .* expired/,
    ],
    [
      'no annotation',
      (api) => bind(api, pod('f2', undefined)),
      1,
      /pod default\/f2 failed: the pod has no hami\.io\/vgpu-devices-to-allocate/,
    ],
    [
      'malformed annotation',
      (api) => bind(api, pod('f3', `${G0},NVIDIA,lots,1:;`)),
      1,
      /pod default\/f3 failed: .*invalid memory field "lots"/,
    ],
    [
      'GPU not on this node',
      (api) => bind(api, pod('f4', 'GPU-00000000-0000-0000-0000-000000000000,NVIDIA,1,1:;')),
      1,
      /pod default\/f4 failed: GPU GPU-0{8}-.* is not on this node/,
    ],
    [
      'device count differs from kubelet',
      (api) => bind(api, pod('f5', `${G0},NVIDIA,1,1:;`)),
      2,
      /pod default\/f5 failed: device number not matched/,
    ],
  ];

  it.each(failures)('%s', async (_, setUp, count, message) => {
    const { api, kubelet } = await start();
    setUp(api);
    const name = [...api.pods.keys()][0]!;
    await expect(kubelet.allocate(GPU, count)).rejects.toThrow(message);
    expect(api.pods.get(name)!.metadata.annotations![PHASE]).toBe('failed');
    expect(api.nodeAnnotations).not.toHaveProperty(LOCK);
  });

  it('an unhealthy (lost) GPU', async () => {
    const { api, running, kubelet } = await start();
    await running.node.setLost(G1, true);
    await running.kubelet.waitFor((s) => s.get(GPU)!.devices.some((d) => d.health === 'Unhealthy'));
    bind(api, pod('f6', `${G1},NVIDIA,1,1:;`));
    await expect(kubelet.allocate(GPU, 1)).rejects.toThrow(/pod default\/f6 failed: GPU .* is Unhealthy/);
    expect(api.pod('default', 'f6').metadata.annotations![PHASE]).toBe('failed');
    expect(api.nodeAnnotations).not.toHaveProperty(LOCK);
  });

  it('no pod being bound: the error names the node; a lock naming a missing pod is released', async () => {
    const { api, kubelet } = await start();
    await expect(kubelet.allocate(GPU, 1)).rejects.toThrow(
      /HAMi allocation for node gpu-node-1 failed: no pod being bound/,
    );
    api.nodeAnnotations[LOCK] = `${goRfc3339(new Date(), SCHEDULER_ZONE_MINUTES)},default,gone`;
    await expect(kubelet.allocate(GPU, 1)).rejects.toThrow(/names pod default\/gone, which does not exist/);
    expect(api.nodeAnnotations).not.toHaveProperty(LOCK);
  });

  it('a lock another pod took meanwhile is not removed (resourceVersion precondition, retried)', async () => {
    const { api, kubelet } = await start();
    bind(api, pod('g1', `${G0},NVIDIA,1,1:;`));
    api.conflictOnce = true;
    await kubelet.allocate(GPU, 1);
    expect(api.nodeAnnotations).not.toHaveProperty(LOCK);
    const releases = api.nodePatches().filter((b) => JSON.stringify(b).includes(LOCK));
    expect(releases).toHaveLength(2);
    expect(releases[1]).toEqual({
      metadata: { annotations: { [LOCK]: null }, resourceVersion: expect.any(String) },
    });
  });
});
