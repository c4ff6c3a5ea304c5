/** Split slices end to end: HAMi-core env values to the MiB, mounts when the library is present. */
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, usePluginNodes } from '../helpers/plugin-node.js';

const GPU = 'nvidia.com/gpu';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const startNode = usePluginNodes();
const start = (config: string) => startNode('dgx-a100', { config });

async function hookDir(withLibrary: boolean): Promise<string> {
  const { dir, remove } = await tempDir('vgpu-hook-');
  cleanups.push(remove);
  if (withLibrary) {
    for (const file of ['libvgpu.so', 'libvgpu.so.2.4.1', 'libvgpu.so.2.10.0'])
      await writeFile(path.join(dir, file), '');
    await writeFile(path.join(dir, 'ld.so.preload'), `${dir}/vgpu/libvgpu.so\n`);
  }
  return dir;
}

const splitConfig = (hook: string, count = 4, memoryScaling = 1) => `
sharing:
  split:
    hookPath: ${hook}
    resources: [{name: nvidia.com/gpu, count: ${count}, memoryScaling: ${memoryScaling}}]
`;

describe('split slices', () => {
  it('two slices land on one GPU with summed memory and compute limits, and HAMi-core is mounted', async () => {
    const hook = await hookDir(true);
    const { kubelet, node, agent } = await start(splitConfig(hook, 3));
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 24);
    const { deviceIds, response } = await kubelet.allocate(GPU, 2);
    const gpus = new Set(deviceIds.map((id) => id.split('::')[0]));
    expect(gpus.size).toBe(1);
    const [gpuUuid] = [...gpus];
    expect(node.state.devices.map((d) => d.uuid)).toContain(gpuUuid);
    // 81920 MiB / 3 = 27306 MiB a slice (floor); 100 / 3 = 33 % a slice.
    expect(response.envs).toMatchObject({
      NVIDIA_VISIBLE_DEVICES: gpuUuid,
      CUDA_DEVICE_MEMORY_LIMIT_0: '54612m',
      CUDA_DEVICE_SM_LIMIT: '66',
      CUDA_DEVICE_SM_LIMIT_0: '66',
    });
    const cache = response.envs!.CUDA_DEVICE_MEMORY_SHARED_CACHE!;
    expect(cache).toMatch(new RegExp(`^${hook}/vgpu/[0-9a-f-]{36}\\.cache$`));
    const allocation = path.basename(cache, '.cache');
    const hostDir = path.join(hook, 'containers', allocation);
    expect(response.mounts).toEqual([
      { container_path: `${hook}/vgpu`, host_path: hostDir, read_only: false },
      { container_path: `${hook}/vgpu/libvgpu.so`, host_path: `${hook}/libvgpu.so.2.10.0`, read_only: true },
      { container_path: '/etc/ld.so.preload', host_path: `${hook}/ld.so.preload`, read_only: true },
      { container_path: '/tmp/vgpulock', host_path: '/tmp/vgpulock', read_only: false },
    ]);
    expect((await stat(hostDir)).mode & 0o777).toBe(0o777);
    expect(
      JSON.parse(await readFile(path.join(hostDir, 'allocation.json'), 'utf8')).deviceIds.sort(),
    ).toEqual([...deviceIds].sort());
    const metrics = await agent.metrics.registry.metrics();
    expect(metrics).toContain('vgpu_agent_split_limits_enforced{resource="nvidia.com/gpu"} 1');
  });

  it('applies memoryScaling (oversubscription) to the MiB', async () => {
    const { kubelet } = await start(splitConfig(await hookDir(true), 4, 1.5));
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    const { response } = await kubelet.allocate(GPU, 1);
    expect(response.envs).toMatchObject({ CUDA_DEVICE_MEMORY_LIMIT_0: '30720m', CUDA_DEVICE_SM_LIMIT: '25' });
  });

  it('without HAMi-core: still advertises slices, sets the env, warns once and says so in a metric', async () => {
    const running = await start(splitConfig(await hookDir(false)));
    const { kubelet, agent, logs } = running;
    await kubelet.waitFor((s) => s.get(GPU)?.devices.length === 32);
    const first = await kubelet.allocate(GPU, 1);
    await kubelet.allocate(GPU, 1);
    expect(first.response.envs).toMatchObject({
      CUDA_DEVICE_MEMORY_LIMIT_0: '20480m',
      CUDA_DEVICE_SM_LIMIT: '25',
    });
    expect(first.response.mounts).toEqual([]);
    expect(logs.filter((l) => String(l.msg).includes('NOT enforced'))).toHaveLength(1);
    expect(await agent.metrics.registry.metrics()).toContain(
      'vgpu_agent_split_limits_enforced{resource="nvidia.com/gpu"} 0',
    );
  });
});
