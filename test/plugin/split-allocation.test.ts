/**
 * SplitAllocator on a temp hookPath: what it tells people when HAMi-core is missing or its preload
 * file names more than libvgpu, that its mounts come after the ones a response already has, and that
 * a lock directory it cannot create costs a warning, not the allocation.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { gpuTarget } from '../../src/devices/mig-strategy.js';
import type { AdvertisedDevice } from '../../src/devices/resource-types.js';
import { createLogger } from '../../src/log.js';
import { SplitAllocator } from '../../src/plugin/split-allocation.js';
import { detectHamiCore } from '../../src/runtime/hami-core-host.js';
import { gpu } from '../helpers/inventory.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function hookDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-split-unit-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files))
    await writeFile(path.join(dir, name), text.replaceAll('HOOK', dir));
  return dir;
}

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

const slice: AdvertisedDevice = {
  id: `${gpu(0).uuid}::0`,
  target: gpuTarget(gpu(0)),
  share: 0,
  slice: { memoryMiB: 20480, corePercent: 25 },
};

describe('SplitAllocator', () => {
  it('without HAMi-core: one warning naming the hookPath, the preload file and the library found', async () => {
    const dir = await hookDir({ 'libvgpu.so': '' });
    const { logger, lines } = capturingLogger();
    const allocator = new SplitAllocator(await detectHamiCore(dir), logger, path.join(dir, 'lock'));
    expect(allocator.enforced).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 40,
      hookPath: dir,
      preload: null,
      library: path.join(dir, 'libvgpu.so'),
    });
    expect(lines[0]!.msg).toMatch(
      /^split slices are advertised but their memory and compute limits are NOT enforced/,
    );
  });

  it('a preload file naming other libraries too: one warning listing them', async () => {
    const dir = await hookDir({
      'libvgpu.so': '',
      'ld.so.preload': 'HOOK/libvgpu.so /usr/lib/a.so:/usr/lib/b.so\n',
    });
    const { logger, lines } = capturingLogger();
    const allocator = new SplitAllocator(await detectHamiCore(dir), logger, path.join(dir, 'lock'));
    expect(allocator.enforced).toBe(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 40,
      preload: { file: path.join(dir, 'ld.so.preload') },
      otherEntries: ['/usr/lib/a.so', '/usr/lib/b.so'],
      msg:
        `${path.join(dir, 'ld.so.preload')} also names /usr/lib/a.so /usr/lib/b.so: it is mounted as ` +
        '/etc/ld.so.preload, so every split container image must have those files or ld.so prints an error in each process',
    });
  });

  it('adds its mounts after those the response already has', async () => {
    const dir = await hookDir({ 'libvgpu.so': '', 'ld.so.preload': 'HOOK/libvgpu.so\n' });
    const allocator = new SplitAllocator(
      await detectHamiCore(dir),
      capturingLogger().logger,
      path.join(dir, 'lock'),
    );
    const existing = { container_path: '/var/run/nvidia-container-devices/GPU-0', host_path: '/dev/null' };
    const response = {
      envs: { NVIDIA_VISIBLE_DEVICES: '/var/run/nvidia-container-devices' },
      mounts: [existing],
    };
    await allocator.extend([slice], response, 'nvidia.com/gpu');
    expect(response.mounts[0]).toEqual(existing);
    expect(response.mounts.map((m) => m.container_path)).toEqual([
      existing.container_path,
      dir,
      path.join(dir, 'libvgpu.so'),
      '/etc/ld.so.preload',
      '/tmp/vgpulock',
    ]);
    expect(response.envs).toMatchObject({
      NVIDIA_VISIBLE_DEVICES: '/var/run/nvidia-container-devices',
      CUDA_DEVICE_MEMORY_LIMIT_0: '20480m',
    });
  });

  it('a lock directory it cannot create is a warning; the container still gets its answer', async () => {
    const dir = await hookDir({ 'libvgpu.so': '', 'ld.so.preload': 'HOOK/libvgpu.so\n', 'a-file': '' });
    const { logger, lines } = capturingLogger();
    // Under a regular file: mkdir fails with ENOTDIR, whoever runs the test.
    const lockDir = path.join(dir, 'a-file', 'vgpulock');
    const allocator = new SplitAllocator(await detectHamiCore(dir), logger, lockDir);
    const response = { envs: {}, mounts: [] };
    await allocator.extend([slice], response, 'nvidia.com/gpu');
    expect(response.mounts).toContainEqual({
      container_path: '/tmp/vgpulock',
      host_path: lockDir,
      read_only: false,
    });
    const warning = lines.find(
      (l) => l.msg === 'cannot prepare HAMi-core lock directory for split containers',
    );
    expect(warning).toMatchObject({ level: 40, dir: lockDir, err: { code: 'ENOTDIR' } });
  });
});
