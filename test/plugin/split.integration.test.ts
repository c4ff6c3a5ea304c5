/**
 * Split slices end to end: HAMi-core env values to the MiB (per GPU when a container's slices span
 * GPUs of different sizes, with packed spill-over and several entries per name), and the HAMi-core
 * contract read from the host's hookPath (the library mounted where ld.so.preload names it) with its
 * metric and warnings. test/container/ starts real containers with these answers.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fixtureNode } from '../helpers/fixture-nodes.js';
import { metricValue, tempDir, usePluginNodes } from '../helpers/plugin-node.js';

const GPU = 'nvidia.com/gpu';
/** HAMi-core's lock directory, the same host directory in every container */
const HAMI_LOCK_DIR = '/tmp/vgpulock';
const ENFORCED = /^vgpu_agent_split_limits_enforced\{resource="nvidia.com\/gpu"\}/;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const startNode = usePluginNodes();
const start = (config: string) => startNode('dgx-a100', { config });

interface HostLayout {
  libraries?: string[];
  /** ld.so.preload text; `HOOK` is replaced by the directory */
  preload?: string;
}

/** A hookPath directory laid out like a node's. */
async function hookDir(layout: HostLayout): Promise<string> {
  const { dir, remove } = await tempDir('vgpu-hook-');
  cleanups.push(remove);
  for (const file of layout.libraries ?? []) await writeFile(path.join(dir, file), '');
  if (layout.preload !== undefined)
    await writeFile(path.join(dir, 'ld.so.preload'), layout.preload.replaceAll('HOOK', dir));
  return dir;
}

/** What HAMi's vgpu-init.sh leaves: the library copied in, a preload line naming it there. */
const HAMI_INSTALLER: HostLayout = {
  libraries: ['libvgpu.so', 'libvgpu.so.v2.4.1', 'libvgpu.so.v2.10.0'],
  preload: 'HOOK/libvgpu.so\n',
};

const splitConfig = (hook: string, count = 4, memoryScaling = 1) => `
sharing:
  split:
    hookPath: ${hook}
    resources: [{name: nvidia.com/gpu, count: ${count}, memoryScaling: ${memoryScaling}}]
`;

const warningsAbout = (logs: Record<string, unknown>[], text: string) =>
  logs.filter((l) => l.level === 40 && String(l.msg).includes(text));

describe('split slices', () => {
  it("HAMi's installer layout: the newest library is mounted where ld.so.preload names it", async () => {
    const hook = await hookDir(HAMI_INSTALLER);
    const running = await start(splitConfig(hook, 3));
    const { kubelet } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 24);
    const { deviceIds, response } = await kubelet.allocate(GPU, 2);
    const gpus = new Set(deviceIds.map((id) => id.split('::')[0]));
    expect(gpus.size).toBe(1);
    const [gpuUuid] = [...gpus];
    // 81920 MiB / 3 = 27306 MiB a slice (floor); 100 / 3 = 33 % a slice.
    expect(response.envs).toMatchObject({
      NVIDIA_VISIBLE_DEVICES: gpuUuid,
      CUDA_DEVICE_MEMORY_LIMIT_0: '54612m',
      CUDA_DEVICE_SM_LIMIT: '66',
      CUDA_DEVICE_SM_LIMIT_0: '66',
    });
    const cache = response.envs!.CUDA_DEVICE_MEMORY_SHARED_CACHE!;
    expect(cache).toMatch(new RegExp(`^${hook}/[0-9a-f-]{36}\\.cache$`));
    const hostDir = path.join(hook, 'containers', path.basename(cache, '.cache'));
    expect(response.mounts).toEqual([
      { container_path: hook, host_path: hostDir, read_only: false },
      { container_path: `${hook}/libvgpu.so`, host_path: `${hook}/libvgpu.so.v2.10.0`, read_only: true },
      { container_path: '/etc/ld.so.preload', host_path: `${hook}/ld.so.preload`, read_only: true },
      { container_path: HAMI_LOCK_DIR, host_path: HAMI_LOCK_DIR, read_only: false },
    ]);
    expect((await stat(hostDir)).mode & 0o777).toBe(0o777);
    expect((await stat(HAMI_LOCK_DIR)).mode & 0o777).toBe(0o777);
    const allocation = JSON.parse(await readFile(path.join(hostDir, 'allocation.json'), 'utf8'));
    expect(allocation.deviceIds.sort()).toEqual([...deviceIds].sort());
    // The monitor reports these as the container's limits (src/monitor/split-directories.ts).
    expect(allocation.limits).toEqual([{ uuid: gpuUuid, memoryMiB: 54612, corePercent: 66 }]);
    expect(await metricValue(running, ENFORCED)).toBe(1);
    expect(warningsAbout(running.logs, 'ld.so.preload')).toEqual([]);
  });

  it('applies memoryScaling (oversubscription) to the MiB', async () => {
    const { kubelet } = await start(splitConfig(await hookDir(HAMI_INSTALLER), 4, 1.5));
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    const { response } = await kubelet.allocate(GPU, 1);
    expect(response.envs).toMatchObject({ CUDA_DEVICE_MEMORY_LIMIT_0: '30720m', CUDA_DEVICE_SM_LIMIT: '25' });
  });

  it('without HAMi-core: still advertises slices, sets the limits, mounts nothing, warns once', async () => {
    const hook = await hookDir({});
    const running = await start(splitConfig(hook));
    const { kubelet } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    const first = await kubelet.allocate(GPU, 1);
    await kubelet.allocate(GPU, 1);
    expect(first.response.envs).toMatchObject({
      CUDA_DEVICE_MEMORY_LIMIT_0: '20480m',
      CUDA_DEVICE_SM_LIMIT: '25',
    });
    expect(first.response.envs).not.toHaveProperty('CUDA_DEVICE_MEMORY_SHARED_CACHE');
    expect(first.response.mounts).toEqual([]);
    const warnings = warningsAbout(running.logs, 'NOT enforced');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain(`${hook}/ld.so.preload does not exist`);
    expect(warnings[0]!.msg).toContain(`no libvgpu.so was found in ${hook}`);
    expect(warnings[0]!.msg).toContain(`containing ${hook}/libvgpu.so`);
    expect(await metricValue(running, ENFORCED)).toBe(0);
  });

  it('a preload file naming a library that is not there: nothing mounted, the warning names both', async () => {
    const hook = await hookDir({ preload: 'HOOK/libvgpu.so\n' });
    const running = await start(splitConfig(hook));
    await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    expect((await running.kubelet.allocate(GPU, 1)).response.mounts).toEqual([]);
    const [warning, ...more] = warningsAbout(running.logs, 'NOT enforced');
    expect(more).toEqual([]);
    expect(warning!.msg).toContain(
      `${hook}/ld.so.preload names ${hook}/libvgpu.so, but no libvgpu.so was found`,
    );
    expect(await metricValue(running, ENFORCED)).toBe(0);
  });

  it('a preload file naming only another library: not enforced, the warning names what it names', async () => {
    const hook = await hookDir({ libraries: ['libvgpu.so'], preload: '/usr/lib/libother.so libvgpu.so\n' });
    const running = await start(splitConfig(hook));
    await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    expect((await running.kubelet.allocate(GPU, 1)).response.mounts).toEqual([]);
    const [warning] = warningsAbout(running.logs, 'NOT enforced');
    expect(warning!.msg).toContain(`names /usr/lib/libother.so libvgpu.so, no absolute path to a libvgpu.so`);
    expect(warning!.msg).toContain(`the library found is ${hook}/libvgpu.so`);
    expect(await metricValue(running, ENFORCED)).toBe(0);
  });

  it('serves every libvgpu path the preload file names, read as glibc reads it, and warns of the others', async () => {
    const hook = await hookDir({
      libraries: ['libvgpu.so.2.5.0'],
      preload:
        '# HAMi-core\n/opt/hami/libvgpu.so:/usr/lib/libother.so\t/opt/hami/libvgpu.so.2.5.0 # pinned\n',
    });
    const running = await start(splitConfig(hook));
    await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    const { response } = await running.kubelet.allocate(GPU, 1);
    expect(response.mounts?.slice(1, 3)).toEqual([
      { container_path: '/opt/hami/libvgpu.so', host_path: `${hook}/libvgpu.so.2.5.0`, read_only: true },
      {
        container_path: '/opt/hami/libvgpu.so.2.5.0',
        host_path: `${hook}/libvgpu.so.2.5.0`,
        read_only: true,
      },
    ]);
    const [warning, ...more] = warningsAbout(running.logs, 'also names');
    expect(more).toEqual([]);
    expect(warning!.msg).toContain(`${hook}/ld.so.preload also names /usr/lib/libother.so`);
    expect(await metricValue(running, ENFORCED)).toBe(1);
  });

  it('the library without a preload file is not enforced', async () => {
    const hook = await hookDir({ libraries: ['libvgpu.so'] });
    const running = await start(splitConfig(hook));
    await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    const [warning] = warningsAbout(running.logs, 'NOT enforced');
    expect(warning!.msg).toContain(`${hook}/ld.so.preload does not exist`);
    expect(warning!.msg).toContain(`the library found is ${hook}/libvgpu.so`);
    expect(await metricValue(running, ENFORCED)).toBe(0);
  });

  it('re-detects HAMi-core when a config reload applies', async () => {
    const hook = await hookDir({});
    const running = await startNode('dgx-a100', { configMap: { default: splitConfig(hook, 4) } });
    await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    expect(await metricValue(running, ENFORCED)).toBe(0);
    await writeFile(path.join(hook, 'libvgpu.so'), '');
    await writeFile(path.join(hook, 'ld.so.preload'), `${hook}/libvgpu.so\n`);
    await running.configMap!.write({ default: splitConfig(hook, 5) });
    await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 40, { timeoutMs: 10_000 });
    expect(await metricValue(running, ENFORCED)).toBe(1);
    const { response } = await running.kubelet.allocate(GPU, 1);
    expect(response.mounts?.[1]).toEqual({
      container_path: `${hook}/libvgpu.so`,
      host_path: `${hook}/libvgpu.so`,
      read_only: true,
    });
  });
});

/**
 * Two GPUs of different sizes (80 GB and 40 GB): a limit computed from the wrong GPU, or from the
 * slices of every GPU, cannot pass for the right one.
 */
describe('split slices on several GPUs', () => {
  const twoSizes = async (config: string) => {
    const state = await fixtureNode('two-sizes');
    const running = await startNode(state, { config });
    const [big, small] = state.devices.map((d) => d.uuid) as [string, string];
    return { running, kubelet: running.kubelet, big, small };
  };
  const slices = (uuid: string, ...n: number[]) => n.map((i) => `${uuid}::${i}`);

  it('each GPU of a container gets its own slices in its own CUDA_DEVICE_MEMORY_LIMIT_<i>', async () => {
    const { kubelet, big, small } = await twoSizes(splitConfig(await hookDir({}), 4));
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 8);
    // Two slices of the 40 GB GPU, then one of the 80 GB GPU: NVIDIA_VISIBLE_DEVICES follows that order.
    const { response } = await kubelet.allocateIds(GPU, [...slices(small, 0, 1), ...slices(big, 3)]);
    expect(response.envs).toMatchObject({
      NVIDIA_VISIBLE_DEVICES: `${small},${big}`,
      CUDA_DEVICE_MEMORY_LIMIT_0: '20480m', // 2 × 40960 / 4
      CUDA_DEVICE_SM_LIMIT_0: '50',
      CUDA_DEVICE_MEMORY_LIMIT_1: '20480m', // 1 × 81920 / 4
      CUDA_DEVICE_SM_LIMIT_1: '25',
      CUDA_DEVICE_SM_LIMIT: '50',
    });
    expect(response.envs).not.toHaveProperty('CUDA_DEVICE_MEMORY_LIMIT_2');
  });

  it('packed: a request larger than any GPU fills one GPU, spills the rest to the next, each limited apart', async () => {
    const { kubelet, big, small } = await twoSizes(
      `flags: {plugin: {sharedDevicesAllocationPolicy: packed}}\n${splitConfig(await hookDir({}), 4)}`,
    );
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 8);
    const { deviceIds, response } = await kubelet.allocate(GPU, 5);
    // distributed would give 3 + 2; packed fills the first GPU (UUID order) and spills 1.
    expect(deviceIds.filter((id) => id.startsWith(big))).toHaveLength(4);
    expect(deviceIds.filter((id) => id.startsWith(small))).toHaveLength(1);
    expect(response.envs).toMatchObject({
      NVIDIA_VISIBLE_DEVICES: `${big},${small}`,
      CUDA_DEVICE_MEMORY_LIMIT_0: '81920m',
      CUDA_DEVICE_SM_LIMIT_0: '100',
      CUDA_DEVICE_MEMORY_LIMIT_1: '10240m',
      CUDA_DEVICE_SM_LIMIT_1: '25',
    });
  });

  it('several split entries for one name: each GPU sliced by the entry that selects it', async () => {
    const hook = await hookDir({});
    const { kubelet, big, small } = await twoSizes(`
sharing:
  split:
    hookPath: ${hook}
    resources:
      - {name: nvidia.com/gpu, devices: [0], count: 2}
      - {name: nvidia.com/gpu, devices: [1], count: 8, memoryScaling: 2}
`);
    const state = await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 10);
    expect(state.get(GPU)!.devices.map((d) => d.ID)).toEqual([
      ...slices(big, 0, 1),
      ...slices(small, 0, 1, 2, 3, 4, 5, 6, 7),
    ]);
    const onBig = await kubelet.allocateIds(GPU, slices(big, 0));
    expect(onBig.response.envs).toMatchObject({
      CUDA_DEVICE_MEMORY_LIMIT_0: '40960m', // 81920 / 2
      CUDA_DEVICE_SM_LIMIT: '50',
    });
    const onSmall = await kubelet.allocateIds(GPU, slices(small, 0));
    expect(onSmall.response.envs).toMatchObject({
      CUDA_DEVICE_MEMORY_LIMIT_0: '10240m', // 40960 × 2 / 8
      CUDA_DEVICE_SM_LIMIT: '12',
    });
  });
});
