/**
 * Split slices in real containers: the plugin's Allocate answer (through the kubelet simulator) is
 * given to podman as is, and a stand-in libvgpu.so reports from inside each process what HAMi-core
 * would see. Host layouts as nodes have them: HAMi's installer, a versioned library, none, and
 * preload files naming other paths.
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ContainerAllocateResponse__Output } from '../../src/kubelet-api/proto.js';
import { metricValue, type RunningPluginNode, tempDir, usePluginNodes } from '../helpers/plugin-node.js';
import { openPodmanOrReason, type Podman } from './podman.js';

const podman = await openPodmanOrReason();
const GPU = 'nvidia.com/gpu';
const ENFORCED = /^vgpu_agent_split_limits_enforced\{resource="nvidia.com\/gpu"\}/;
/** Three processes (the shell and two probes), each dynamically linked: the preload must reach all. */
const SCRIPT =
  'probe loaded; probe env CUDA_DEVICE_MEMORY_LIMIT_0 CUDA_DEVICE_SM_LIMIT CUDA_DEVICE_MEMORY_SHARED_CACHE';

const startNode = usePluginNodes();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  if (typeof podman !== 'string') await podman.close();
});

interface HostLayout {
  /** file name in hookPath → stand-in version it reports */
  libraries?: Record<string, string>;
  /** ld.so.preload text; HOOK is replaced by hookPath */
  preload?: string;
}

async function hookDir(harness: Podman, layout: HostLayout): Promise<string> {
  const { dir, remove } = await tempDir('vgpu-hook-');
  cleanups.push(remove);
  for (const [name, version] of Object.entries(layout.libraries ?? {}))
    await copyFile(await harness.buildStandin(version), path.join(dir, name));
  if (layout.preload !== undefined)
    await writeFile(path.join(dir, 'ld.so.preload'), layout.preload.replaceAll('HOOK', dir));
  return dir;
}

/** A one-GPU node (so every slice shares the GPU), 4 slices of the T4's 15360 MiB. */
async function splitNode(hook: string): Promise<RunningPluginNode> {
  const running = await startNode('single-t4', {
    config: `sharing:\n  split:\n    hookPath: ${hook}\n    resources: [{name: ${GPU}, count: 4}]\n`,
  });
  await running.kubelet.waitFor((s) => s.get(GPU)?.devices.length === 4);
  return running;
}

/** The stand-in's `libvgpu: version=… process=sh uid=1000 …` lines, one per process it was loaded in. */
function reports(lines: string[]): Record<string, string>[] {
  return lines
    .filter((l) => l.startsWith('libvgpu: '))
    .map((line) =>
      Object.fromEntries(
        line
          .slice('libvgpu: '.length)
          .split(' ')
          .map((pair) => pair.split('=') as [string, string]),
      ),
    );
}

function cacheOf(response: ContainerAllocateResponse__Output): string {
  return response.envs!.CUDA_DEVICE_MEMORY_SHARED_CACHE!;
}

describe.skipIf(typeof podman === 'string')('split slices in a container (podman)', () => {
  const harness = podman as Podman;

  it("HAMi's installer layout: libvgpu.so is preloaded in every process, sees the limits, writes its cache", async () => {
    const hook = await hookDir(harness, {
      libraries: { 'libvgpu.so': 'installer' },
      preload: 'HOOK/libvgpu.so\n',
    });
    const running = await splitNode(hook);
    const { response } = await running.kubelet.allocate(GPU, 1);
    const result = await harness.run(response, SCRIPT);
    expect(result.stderr).not.toMatch(/ld\.so|ERROR/);
    const seen = reports(result.lines);
    expect(seen.map((r) => r.process).sort()).toEqual(['probe', 'probe', 'sh']);
    for (const report of seen)
      expect(report).toEqual({
        version: 'installer',
        process: report.process,
        uid: '1000',
        mem0: '3840m',
        sm: '25',
        cache: 'ok',
        lock: 'ok',
      });
    expect(result.lines).toContain('loaded yes');
    expect(result.lines).toContain(`CUDA_DEVICE_MEMORY_SHARED_CACHE=${cacheOf(response)}`);
    // The cache file is in the container's host directory, where the monitor reads it.
    const cache = path.join(
      hook,
      'containers',
      path.basename(cacheOf(response), '.cache'),
      path.basename(cacheOf(response)),
    );
    expect((await readFile(cache, 'utf8')).split('\n').filter(Boolean)).toHaveLength(3);
    expect(await metricValue(running, ENFORCED)).toBe(1);
  });

  it('two containers on one GPU share the lock directory and keep separate cache directories', async () => {
    const hook = await hookDir(harness, {
      libraries: { 'libvgpu.so': 'installer' },
      preload: 'HOOK/libvgpu.so\n',
    });
    const running = await splitNode(hook);
    const first = await running.kubelet.allocate(GPU, 1);
    const second = await running.kubelet.allocate(GPU, 1);
    expect(new Set([...first.deviceIds, ...second.deviceIds].map((id) => id.split('::')[0])).size).toBe(1);
    await harness.run(first.response, 'probe loaded');
    const result = await harness.run(second.response, `probe ls /tmp/vgpulock; probe ls ${hook}`);
    const lockFiles = result.lines
      .filter((l) => l.startsWith('/tmp/vgpulock: '))
      .map((l) => l.split(': ')[1]);
    expect(lockFiles).toEqual(
      expect.arrayContaining([
        `${path.basename(cacheOf(first.response))}.lock`,
        `${path.basename(cacheOf(second.response))}.lock`,
      ]),
    );
    const ownDir = result.lines.filter((l) => l.startsWith(`${hook}: `)).map((l) => l.split(': ')[1]);
    expect(ownDir).toContain(path.basename(cacheOf(second.response)));
    expect(ownDir).not.toContain(path.basename(cacheOf(first.response)));
  });

  it('a versioned library: the highest libvgpu.so.<version> is the one preloaded', async () => {
    const hook = await hookDir(harness, {
      libraries: {
        'libvgpu.so': 'unversioned',
        'libvgpu.so.v2.9.0': 'v2.9.0',
        'libvgpu.so.v2.10.0': 'v2.10.0',
      },
      preload: 'HOOK/libvgpu.so\n',
    });
    const running = await splitNode(hook);
    const result = await harness.run((await running.kubelet.allocate(GPU, 1)).response, SCRIPT);
    expect(result.stderr).not.toMatch(/ld\.so|ERROR/);
    expect(reports(result.lines).map((r) => r.version)).toEqual(['v2.10.0', 'v2.10.0', 'v2.10.0']);
  });

  it('no library on the host: no ld.so errors, the limits are still set, the metric says 0', async () => {
    const hook = await hookDir(harness, { preload: 'HOOK/libvgpu.so\n' });
    const running = await splitNode(hook);
    const result = await harness.run((await running.kubelet.allocate(GPU, 1)).response, SCRIPT);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(reports(result.lines)).toEqual([]);
    expect(result.lines).toEqual(
      expect.arrayContaining(['loaded no', 'CUDA_DEVICE_MEMORY_LIMIT_0=3840m', 'CUDA_DEVICE_SM_LIMIT=25']),
    );
    expect(await metricValue(running, ENFORCED)).toBe(0);
  });

  it('a preload file naming another path: the library is mounted there and preloaded', async () => {
    const hook = await hookDir(harness, {
      libraries: { 'libvgpu.so': 'elsewhere' },
      preload: '/opt/hami/libvgpu.so\n',
    });
    const running = await splitNode(hook);
    const result = await harness.run((await running.kubelet.allocate(GPU, 1)).response, SCRIPT);
    expect(result.stderr).not.toMatch(/ld\.so|ERROR/);
    expect(reports(result.lines).map((r) => `${r.version} ${r.cache}`)).toEqual(
      Array(3).fill('elsewhere ok'),
    );
    expect(await metricValue(running, ENFORCED)).toBe(1);
  });

  it('a preload file naming only another library: not mounted, no ld.so errors, metric 0 and a warning', async () => {
    const hook = await hookDir(harness, {
      libraries: { 'libvgpu.so': 'unused' },
      preload: '/usr/lib/libother.so\n',
    });
    const running = await splitNode(hook);
    const result = await harness.run((await running.kubelet.allocate(GPU, 1)).response, SCRIPT);
    expect(result.stderr).toBe('');
    expect(result.lines).toEqual(expect.arrayContaining(['loaded no', 'CUDA_DEVICE_SM_LIMIT=25']));
    expect(await metricValue(running, ENFORCED)).toBe(0);
    const warnings = running.logs.filter(
      (l) => l.level === 40 && String(l.msg).includes('/usr/lib/libother.so'),
    );
    expect(warnings).toHaveLength(1);
  });
});
