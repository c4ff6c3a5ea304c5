/** How the host's HAMi-core files are read: the preload list as glibc parses it, library versions, verdicts. */
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../log.js';
import {
  describeEnforcement,
  detectHamiCore,
  type HamiCoreHost,
  installAdvice,
  limitsEnforced,
  parsePreloadList,
  preloadPlan,
} from '../runtime/hami-core-host.js';
import { SplitAllocator } from './split-allocation.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function hookDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-hook-unit-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

const host = (entries: string[] | null, library: string | null = '/h/libvgpu.so'): HamiCoreHost => ({
  hookPath: '/h',
  library,
  preload: entries === null ? null : { file: '/h/ld.so.preload', entries },
});

describe('parsePreloadList', () => {
  it('splits on spaces, tabs, newlines and colons, and drops # comments to the end of the line', () => {
    expect(
      parsePreloadList('/a.so /b.so\t/c.so:/d.so\n\n# /commented.so\n/e.so#tail /not.so\n/f.so'),
    ).toEqual(['/a.so', '/b.so', '/c.so', '/d.so', '/e.so', '/f.so']);
    expect(parsePreloadList('')).toEqual([]);
  });
});

describe('preloadPlan', () => {
  it('serves absolute libvgpu paths, once each, and lists the rest', () => {
    expect(
      preloadPlan(
        host([
          '/usr/local/vgpu/libvgpu.so',
          '/usr/local/vgpu//libvgpu.so',
          '/opt/libvgpu.so.v2.9.0',
          'libvgpu.so',
          '/usr/lib/libvgpu.so.bak',
          '/usr/lib/libfoo.so',
        ]),
      ),
    ).toEqual({
      libraryPaths: ['/usr/local/vgpu/libvgpu.so', '/opt/libvgpu.so.v2.9.0'],
      otherEntries: ['libvgpu.so', '/usr/lib/libvgpu.so.bak', '/usr/lib/libfoo.so'],
    });
  });

  it('plans nothing without a preload file', () => {
    expect(preloadPlan(host(null))).toEqual({ libraryPaths: [], otherEntries: [] });
  });

  it('is enforced only with a library, a preload file and a libvgpu entry', () => {
    expect(limitsEnforced(host(['/h/libvgpu.so']))).toBe(true);
    expect(limitsEnforced(host(['/h/libvgpu.so'], null))).toBe(false);
    expect(limitsEnforced(host(null))).toBe(false);
    expect(limitsEnforced(host(['/usr/lib/libfoo.so']))).toBe(false);
    expect(limitsEnforced(host([]))).toBe(false);
  });

  it('says in one line why not', () => {
    expect(describeEnforcement(host(['/h/libvgpu.so']))).toBe(
      'limits enforced: /h/ld.so.preload names /h/libvgpu.so, served by /h/libvgpu.so',
    );
    expect(describeEnforcement(host([]))).toBe(
      'limits NOT enforced: /h/ld.so.preload names nothing, no absolute path to a libvgpu.so; the library found is /h/libvgpu.so',
    );
    expect(describeEnforcement(host(['/h/libvgpu.so', '/opt/libvgpu.so.2.5.0']))).toBe(
      'limits enforced: /h/ld.so.preload names /h/libvgpu.so, /opt/libvgpu.so.2.5.0, served by /h/libvgpu.so',
    );
  });

  it('advises the install that makes the limits hold', () => {
    expect(installAdvice('/usr/local/vgpu')).toBe(
      "install HAMi-core with HAMi's vgpu-init.sh, or copy libvgpu.so into /usr/local/vgpu and write " +
        '/usr/local/vgpu/ld.so.preload containing /usr/local/vgpu/libvgpu.so',
    );
  });
});

describe('detectHamiCore', () => {
  it('takes the highest versioned library (HAMi names them after its image tag) and reads the preload file', async () => {
    const dir = await hookDir({
      'libvgpu.so': '',
      'libvgpu.so.v2.9.0': '',
      'libvgpu.so.v2.10.0': '',
      'libvgpu.so.2.4.1': '',
      'libvgpu.so.v2.10.0.bak~': '',
      'ld.so.preload': `${'/x/libvgpu.so'}\n`,
    });
    expect(await detectHamiCore(dir)).toEqual({
      hookPath: dir,
      library: path.join(dir, 'libvgpu.so.v2.10.0'),
      preload: { file: path.join(dir, 'ld.so.preload'), entries: ['/x/libvgpu.so'] },
    });
  });

  it('compares versions by their numbers: a longer version of the same prefix is newer, whatever its suffix', async () => {
    const dir = await hookDir({
      'libvgpu.so.v2.10-rc1': '',
      'libvgpu.so.2.10.1': '',
      'libvgpu.so.2.9.9': '',
    });
    expect((await detectHamiCore(dir)).library).toBe(path.join(dir, 'libvgpu.so.2.10.1'));
  });

  it('an ld.so.preload it cannot read counts as none', async () => {
    const dir = await hookDir({ 'libvgpu.so': '' });
    await mkdir(path.join(dir, 'ld.so.preload'));
    expect(await detectHamiCore(dir)).toEqual({
      hookPath: dir,
      library: path.join(dir, 'libvgpu.so'),
      preload: null,
    });
  });

  it('falls back to libvgpu.so, and reports nothing for a missing directory', async () => {
    const dir = await hookDir({ 'libvgpu.so': '' });
    expect(await detectHamiCore(dir)).toEqual({
      hookPath: dir,
      library: path.join(dir, 'libvgpu.so'),
      preload: null,
    });
    const missing = path.join(dir, 'missing');
    expect(await detectHamiCore(missing)).toEqual({ hookPath: missing, library: null, preload: null });
  });
});

describe('SplitAllocator lock directory', () => {
  it('is created, or re-opened to every user, on each Allocate', async () => {
    const dir = await hookDir({ 'libvgpu.so': '', 'ld.so.preload': '/h/libvgpu.so\n' });
    const lockDir = path.join(dir, 'vgpulock');
    const allocator = new SplitAllocator(
      await detectHamiCore(dir),
      createLogger({ level: 'silent' }),
      lockDir,
    );
    const response = { envs: {}, mounts: [] };
    await allocator.extend([], response, 'nvidia.com/gpu');
    expect((await stat(lockDir)).mode & 0o777).toBe(0o777);
    await chmod(lockDir, 0o755);
    await allocator.extend([], { envs: {}, mounts: [] }, 'nvidia.com/gpu');
    expect((await stat(lockDir)).mode & 0o777).toBe(0o777);
    expect(response.mounts).toContainEqual({
      container_path: '/tmp/vgpulock',
      host_path: lockDir,
      read_only: false,
    });
  });
});
